"""The demo pipeline: a daily sales summary for four regions.

It shows the everyday shapes of a workflow: a fan-out (one extract per region), a flaky task that
fails its first try and succeeds on retry, a fan-in, a branch that publishes only when the numbers are
complete, a bash task, and a final report that runs whichever branch was taken.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

from nbflow import dag, task
from nbflow.operators import BashOperator, EmptyOperator

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

    @task(trigger_rule="none_failed_min_one_success")
    def report(summary: dict, ds: str, run_id: str) -> str:
        """Write the report and return its path."""
        from nbflow.settings import get_settings

        folder = Path(get_settings().artifacts_folder) / "demo_pipeline"
        folder.mkdir(parents=True, exist_ok=True)
        rows = "".join(f"<tr><td>{r}</td><td>{t:,.2f}</td></tr>" for r, t in summary["totals"].items())
        path = folder / f"report-{ds}.html"
        path.write_text(
            f"<html><body><h1>Sales {ds}</h1><p>run {run_id}</p><table>{rows}</table>"
            f"<p><b>Total: {summary['grand_total']:,.2f} EUR</b></p></body></html>",
            encoding="utf-8",
        )
        return str(path)

    summary = summarise([extract(region) for region in REGIONS], fetch_exchange_rate())
    complete(summary) >> [publish, hold]
    [publish, hold] >> report(summary)


demo_pipeline()
