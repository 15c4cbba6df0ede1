"""What a running task sees and what runs around it, in the worker where it runs: ``dag_run`` in the
context and templates, and ``on_execute_callback``. Real runs on every executor and database."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from nbflow import DAG, dag, task
from nbflow.operators import BashOperator
from nbflow.engine.runs import run_dag


@pytest.fixture(params=["inline", "thread", "process"])
def executor(request: pytest.FixtureRequest) -> str:
    return request.param


def test_dag_run_reaches_the_task_and_its_templates_in_the_worker(settings, executor: str) -> None:
    @dag(start_date="2024-01-01", schedule="@daily", timezone="UTC")
    def reads_its_run():
        @task
        def look(dag_run=None) -> dict:
            return {"run_id": dag_run.run_id, "run_type": dag_run.run_type, "dag_id": dag_run.dag_id,
                    "conf": dag_run.conf, "logical_date": dag_run.logical_date.isoformat(),
                    "start": dag_run.data_interval_start.isoformat(), "end": dag_run.data_interval_end.isoformat(),
                    "started": dag_run.start_date is not None, "pid": os.getpid()}

        look()
        BashOperator(task_id="echo", bash_command="echo '{{ dag_run.conf[\"region\"] }} {{ dag_run.run_id }}'")

    run = run_dag(reads_its_run(), settings=settings, executor=executor, logical_date="2024-03-05",
                  conf={"region": "eu"})
    assert run.state == "success", run.errors
    seen = run.outputs["look"]
    assert seen["run_id"] == run.run_id and seen["run_type"] == "test" and seen["dag_id"] == "reads_its_run"
    assert seen["conf"] == {"region": "eu"} and seen["started"]
    assert seen["logical_date"] == "2024-03-05T00:00:00+00:00"
    assert (seen["start"], seen["end"]) == ("2024-03-04T00:00:00+00:00", "2024-03-05T00:00:00+00:00")
    assert (seen["pid"] != os.getpid()) is (executor == "process")
    assert run.outputs["echo"] == f"eu {run.run_id}"


def _record(path: str):
    def callback(context) -> None:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"task": context["task"].task_id, "pid": os.getpid(),
                                     "try": context["ti"].try_number, "ds": context["ds"]}) + "\n")
    return callback


def test_on_execute_callback_runs_right_before_execute_where_the_task_runs(settings, executor: str, tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    order = tmp_path / "order.txt"

    with DAG("announced", start_date="2024-01-01", timezone="UTC",
             default_args={"on_execute_callback": _record(str(calls))}) as d:
        BashOperator(task_id="work", bash_command=f"test -s {calls} && echo executed >> {order}")

    run = run_dag(d, settings=settings, executor=executor, logical_date="2024-02-01")
    assert run.state == "success", run.errors
    [call] = [json.loads(line) for line in calls.read_text().splitlines()]
    assert call["task"] == "work" and call["try"] == 1 and call["ds"] == "2024-02-01"
    assert (call["pid"] != os.getpid()) is (executor == "process")
    assert order.read_text() == "executed\n"  # the callback had written before the command ran


def test_a_failing_on_execute_callback_is_logged_and_the_task_succeeds(settings, executor: str, tmp_path: Path) -> None:
    def broken(context) -> None:
        raise RuntimeError("pager is down")

    @dag(start_date="2024-01-01", timezone="UTC")
    def tolerant():
        @task(on_execute_callback=[broken, _record(str(tmp_path / "after.jsonl"))])
        def work() -> int:
            return 42

        work()

    run = run_dag(tolerant(), settings=settings, executor=executor)
    assert run.state == "success" and run.outputs["work"] == 42
    log = Path(run.log_paths["work"]).read_text()
    assert "on_execute_callback broken raised; the task goes on" in log and "RuntimeError: pager is down" in log
    assert (tmp_path / "after.jsonl").exists()  # the next callback of the list still ran


def test_dag_run_in_failure_callbacks(settings, tmp_path: Path) -> None:
    seen: list[tuple[str, str, dict]] = []

    def on_failure(context) -> None:
        seen.append((context["dag_run"].run_id, context["dag_run"].run_type, context["dag_run"].conf))

    with DAG("fails", start_date="2024-01-01", timezone="UTC") as d:
        BashOperator(task_id="boom", bash_command="exit 3", on_failure_callback=on_failure)

    run = run_dag(d, settings=settings, executor="thread", conf={"k": 1})
    assert run.state == "failed"
    assert seen == [(run.run_id, "test", {"k": 1})]
    assert run.start_date is not None and run.start_date.astimezone(timezone.utc) <= datetime.now(timezone.utc)
