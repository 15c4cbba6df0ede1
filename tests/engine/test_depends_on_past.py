"""depends_on_past and wait_for_downstream: a task instance starts only when the same task (and, with
wait_for_downstream, its direct downstream) in the DAG's previous run by logical date is done; until
then it waits in state ``none``, and it goes on when that run's instance is done, here or elsewhere.
Real runs: the scheduler stepped with tick(), backfills, dag.test(), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nbflow import DAG
from nbflow.engine.controls import mark
from nbflow.engine.runs import backfill, run_dag
from nbflow.engine.scheduler import Scheduler
from nbflow.operators import BashOperator, PythonOperator
from nbflow.settings import load_settings
from nbflow.store import Store


@pytest.fixture
def settings(nbflow_home: Path, store_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NBFLOW_DATABASE_URL", store_url)
    monkeypatch.setenv("NBFLOW_POLL_INTERVAL", "0")  # every tick looks at the store
    return load_settings()


@pytest.fixture
def store(settings) -> Any:
    opened = Store.open(settings)
    try:
        yield opened
    finally:
        opened.close()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def states_by_day(store: Store, dag_id: str) -> list[dict[str, str]]:
    runs = sorted(store.list_runs(dag_id, limit=None), key=lambda r: r["logical_date"])
    return [{ti["task_id"]: ti["state"] for ti in store.get_task_instances(r["id"])} | {"run": r["state"]}
            for r in runs]


def settle(scheduler: Scheduler, now: datetime, done, timeout: float = 20.0) -> None:
    """Tick at ``now`` until ``done()`` holds."""
    deadline = time.monotonic() + timeout
    while not done():
        scheduler.tick(now)
        assert time.monotonic() < deadline, f"not settled: {scheduler._detail()}"
        scheduler._wait(0.02)


def _fails_on(day: str):
    def work(ds: str) -> str:
        if ds == day:
            raise RuntimeError(f"bad data on {ds}")
        return ds
    return work


def test_a_task_waits_in_none_while_its_previous_instance_failed_then_goes_on(settings, store) -> None:
    with DAG("dop", schedule="@daily", start_date="2024-01-01", catchup=True, timezone="UTC",
             max_active_runs=1) as d:
        t = PythonOperator(task_id="t", python_callable=_fails_on("2024-01-01"), depends_on_past=True)
        t >> BashOperator(task_id="after", bash_command="echo {{ ds }}")
    host = Scheduler(settings=settings, store=store, executor="thread", dags=[d])
    try:
        now = utc(2024, 1, 2, 12)
        settle(host, now, lambda: len(store.list_runs("dop", limit=None)) == 2
               and states_by_day(store, "dop")[1]["run"] == "running")
        for _ in range(5):  # however often the host looks, the second run's t waits
            host.tick(now)
        first, second = states_by_day(store, "dop")
        assert first == {"t": "failed", "after": "upstream_failed", "run": "failed"}
        assert second == {"t": "none", "after": "none", "run": "running"}
        [event] = [e for e in store.list_events("dop") if e["kind"] == "waiting_on_past"]
        assert event["task_id"] == "t" and event["detail"] == {
            "previous_run_id": "scheduled__2024-01-01T00:00:00+00:00", "waiting_for": {"t": "failed"}}

        mark(d, "scheduled__2024-01-01T00:00:00+00:00", ["t"], "success", store=store)
        settle(host, now, lambda: states_by_day(store, "dop")[1]["run"] == "success")
        assert states_by_day(store, "dop")[1] == {"t": "success", "after": "success", "run": "success"}
    finally:
        host.close()


def test_wait_for_downstream_waits_for_the_previous_runs_direct_downstream(settings, store) -> None:
    with DAG("wfd", schedule="@daily", start_date="2024-01-01", catchup=True, timezone="UTC") as d:
        a = BashOperator(task_id="a", bash_command="echo {{ ds }}", wait_for_downstream=True)
        b = PythonOperator(task_id="b", python_callable=_fails_on("2024-01-01"))
        a >> b
    host = Scheduler(settings=settings, store=store, executor="thread", dags=[d])
    try:
        _wait_for_downstream(host, d, store)
    finally:
        host.close()


def _wait_for_downstream(host: Scheduler, d: DAG, store: Store) -> None:
    now = utc(2024, 1, 2, 12)
    settle(host, now, lambda: [r["run"] for r in states_by_day(store, "wfd")] == ["failed", "running"]
           and any(e["kind"] == "waiting_on_past" for e in store.list_events("wfd")))
    host.tick(now)
    # a succeeded on the first day, but its downstream b failed: a waits
    assert states_by_day(store, "wfd") == [{"a": "success", "b": "failed", "run": "failed"},
                                           {"a": "none", "b": "none", "run": "running"}]
    # one event when it began to wait (both runs started together, so the first day had not run yet)
    [event] = [e for e in store.list_events("wfd") if e["kind"] == "waiting_on_past"]
    assert event["task_id"] == "a" and set(event["detail"]["waiting_for"]) <= {"a", "b"}
    mark(d, "scheduled__2024-01-01T00:00:00+00:00", ["b"], "success", store=store)
    settle(host, now, lambda: states_by_day(store, "wfd")[1]["run"] == "success")


def test_backfill_runs_go_one_after_another_through_a_depends_on_past_task(settings, tmp_path: Path) -> None:
    spans = tmp_path / "spans.jsonl"

    def slow(ds: str) -> str:
        started = time.time()
        time.sleep(0.3)
        with open(spans, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"ds": ds, "start": started, "end": time.time()}) + "\n")
        return ds

    with DAG("serial", schedule="@daily", start_date="2024-01-01", timezone="UTC", max_active_runs=3) as d:
        PythonOperator(task_id="slow", python_callable=slow, depends_on_past=True)
    runs = backfill(d, "2024-01-01", "2024-01-03", executor="thread", settings=settings)
    assert [r.state for r in runs] == ["success"] * 3
    done = sorted((json.loads(line) for line in spans.read_text().splitlines()), key=lambda s: s["start"])
    assert [s["ds"] for s in done] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert all(later["start"] >= earlier["end"] for earlier, later in zip(done, done[1:]))


def test_runs_before_the_tasks_start_date_and_test_runs_are_not_waited_for(settings, store) -> None:
    with DAG("late", schedule="@daily", start_date="2024-01-01", timezone="UTC") as d:
        PythonOperator(task_id="t", python_callable=_fails_on("2024-01-01"), depends_on_past=True,
                       start_date="2024-01-02")
    [first] = backfill(d, "2024-01-01", "2024-01-01", executor="thread", settings=settings)
    assert first.task_states == {"t": "failed"}
    # the first day is before t's start_date: the second day's t does not wait for it
    [second] = backfill(d, "2024-01-02", "2024-01-02", executor="thread", settings=settings)
    assert second.task_states == {"t": "success"}

    with DAG("trial", schedule="@daily", start_date="2024-01-01", timezone="UTC") as d2:
        PythonOperator(task_id="t", python_callable=_fails_on("2024-01-01"), depends_on_past=True)
    assert backfill(d2, "2024-01-01", "2024-01-01", executor="thread", settings=settings)[0].state == "failed"
    # a dag.test() run is a trial, as in Airflow: it neither waits for earlier runs nor is waited for
    assert run_dag(d2, settings=settings, executor="thread", logical_date="2024-01-02").state == "success"
    assert run_dag(d2, settings=settings, executor="thread", logical_date="2024-01-03").state == "success"


def test_a_dag_without_depends_on_past_never_asks_for_the_previous_run(settings, store) -> None:
    class Watched(Store):
        asked = 0

        def previous_run_task_states(self, *args: Any, **kwargs: Any) -> Any:
            Watched.asked += 1
            return super().previous_run_task_states(*args, **kwargs)

    watched = Watched.open(settings)
    try:
        with DAG("plain", schedule="@daily", start_date="2024-01-01", timezone="UTC", catchup=True) as d:
            BashOperator(task_id="a", bash_command="true") >> BashOperator(task_id="b", bash_command="true")
        with DAG("gated", schedule="@daily", start_date="2024-01-01", timezone="UTC", catchup=True) as g:
            BashOperator(task_id="a", bash_command="true", depends_on_past=True)
        asked = {}
        for built in (d, g):
            host = Scheduler(settings=settings, store=watched, executor="thread", dags=[built])
            try:
                settle(host, utc(2024, 1, 3, 12), lambda: len(watched.list_runs(built.dag_id, limit=None)) == 3
                       and all(r["state"] == "success" for r in watched.list_runs(built.dag_id, limit=None)))
            finally:
                host.close()
            asked[built.dag_id] = Watched.asked - sum(asked.values())
        # the second and third runs of "gated" ask (at least once each); "plain" never does
        assert asked["plain"] == 0 and asked["gated"] >= 2
    finally:
        watched.close()
