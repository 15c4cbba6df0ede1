"""The demo pipeline: a daily sales summary for four regions.

It shows the everyday shapes of a workflow: a fan-out (one extract per region), a flaky task that
fails its first try and succeeds on retry, a fan-in, a branch that publishes only when the numbers are
complete, a bash task, and a report notebook, run with the summary as its parameters and rendered to
HTML, that runs whichever branch was taken.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

from nbflow import dag, task
from nbflow.operators import BashOperator, EmptyOperator, NotebookOperator

REGIONS = ["north", "south", "east", "west"]


@dag(
    schedule="0 6 * * *",
    start_date="2024-01-01",
    timezone="Europe/Berlin",
    tags=["demo"],
    default_args={"retries": 2, "retry_delay": timedelta(milliseconds=200)},
)
def demo_pipeline():
    """Daily sales summary per region, published as an HTML report."""

    @task
    def extract(region: str, ds: str) -> list[int]:
        """Pretend to download the day's orders of one region."""
        seed = hashlib.sha256(f"{region}/{ds}".encode()).digest()
        orders = [10 + byte % 90 for byte in seed[:6]]
        print(f"{region}: {len(orders)} orders on {ds}")
        return orders

    @task
    def fetch_exchange_rate(ti) -> float:
        """A flaky upstream service: the first try fails, the retry succeeds."""
        if ti.try_number == 1:
            raise ConnectionError("rate service timed out (the demo fails the first try on purpose)")
        return 1.08

    @task
    def summarise(per_region: list[list[int]], rate: float) -> dict:
        totals = {region: round(sum(orders) * rate, 2) for region, orders in zip(REGIONS, per_region)}
        return {"totals": totals, "grand_total": round(sum(totals.values()), 2), "regions": len(totals)}

    @task.branch
    def complete(summary: dict) -> str:
        return "publish" if summary["regions"] == len(REGIONS) else "hold"

    publish = BashOperator(task_id="publish", bash_command="echo 'publishing the summary of {{ ds }}'")
    hold = EmptyOperator(task_id="hold")

    summary = summarise([extract(region) for region in REGIONS], fetch_exchange_rate())
    complete(summary) >> [publish, hold]
    # The report is a notebook run with parameters: the summary arrives in it as a Python dict, and
    # its HTML rendering is the pipeline's deliverable.
    report = NotebookOperator(
        task_id="report",
        notebook=str(Path(__file__).with_name("demo_report.ipynb")),
        parameters={"summary": summary, "ds": "{{ ds }}", "expected_regions": len(REGIONS)},
        report="html",
        trigger_rule="none_failed_min_one_success",
    )
    [publish, hold] >> report


demo_pipeline()
