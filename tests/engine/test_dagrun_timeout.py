"""``dagrun_timeout``: a run still going past it is failed by its host, its running tries stopped and
its unfinished tasks skipped, on every backend. The host is stepped with ``tick(now)``, so the limit
passes when the test says, not after a sleep."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nbflow import DAG, task
from nbflow.engine import controls
from nbflow.engine.scheduler import Scheduler, pid_alive
from nbflow.operators import EmptyOperator
from nbflow.store import Store
from tests.waiting import wait_for

LIMIT = timedelta(hours=1)


@pytest.fixture
def store(settings):
    opened = Store.open(settings)
    try:
        yield opened
    finally:
        opened.close()


def _states(store: Store, run_id: str) -> tuple[str, dict[str, str]]:
    run = store.get_run("slow", run_id)
    return run["state"], {ti["task_id"]: ti["state"] for ti in store.get_task_instances(run["id"])}


def _step_until(host: Scheduler, ready) -> None:
    wait_for(lambda: (host.tick(), ready())[1], timeout=60, what="the long task to start")


def test_a_run_past_dagrun_timeout_fails_and_its_worker_process_is_stopped(settings, store: Store,
                                                                            tmp_path: Path) -> None:
    started, release = tmp_path / "pid", tmp_path / "release"  # release is never created

    with DAG("slow", schedule=None, timezone="UTC", dagrun_timeout=LIMIT, default_args={"retries": 2}) as d:
        @task
        def long():
            import os
            import time

            Path(started).write_text(str(os.getpid()))
            while not Path(release).exists():
                time.sleep(0.05)

        first = EmptyOperator(task_id="first")
        first >> long() >> EmptyOperator(task_id="after")

    run_id = controls.trigger(d, store=store)
    host = Scheduler(settings=settings, dags=[d], executor="process", create_runs=False)
    try:
        _step_until(host, started.exists)
        pid = int(started.read_text())
        host.tick(datetime.now(UTC) + timedelta(minutes=59))  # not yet
        assert _states(store, run_id)[1]["long"] == "running"
        report = host.tick(datetime.now(UTC) + LIMIT + timedelta(seconds=1))
        assert report.finished == [run_id]
    finally:
        host.close(grace=5)
    assert _states(store, run_id) == ("failed", {"first": "success", "long": "skipped", "after": "skipped"})
    wait_for(lambda: not pid_alive(pid), timeout=30, what="the worker process running 'long' to be stopped")
    [event] = [e for e in store.list_events("slow", limit=None) if e["kind"] == "run_timed_out"]
    assert f"run {run_id} of DAG 'slow' went past its dagrun_timeout of 3600 s" in event["detail"]["reason"]
    assert "went past its dagrun_timeout" in store.get_task_instance("slow", run_id, "after")["error"]
    run_pk = store.get_run("slow", run_id)["id"]
    assert [(t["try_number"], t["state"]) for t in store.get_tries(run_pk, "long")] == [(1, "skipped")]


def test_a_thread_cannot_be_stopped_and_its_late_outcome_is_not_kept(settings, store: Store) -> None:
    running, release = threading.Event(), threading.Event()
    ended: list[str] = []

    with DAG("slow", schedule=None, timezone="UTC", dagrun_timeout=LIMIT) as d:
        @task
        def long():
            running.set()
            release.wait(60)
            ended.append("done")
            return "late"

        long()

    run_id = controls.trigger(d, store=store)
    host = Scheduler(settings=settings, dags=[d], executor="thread", create_runs=False)
    try:
        _step_until(host, running.is_set)
        host.tick(datetime.now(UTC) + LIMIT + timedelta(seconds=1))
        assert _states(store, run_id) == ("failed", {"long": "skipped"})
        release.set()
        wait_for(lambda: ended, timeout=30, what="the thread to end")
        host.tick()
    finally:
        host.close(grace=5)
    assert _states(store, run_id) == ("failed", {"long": "skipped"})


def test_a_run_within_its_dagrun_timeout_is_not_touched(settings, store: Store) -> None:
    with DAG("slow", schedule=None, timezone="UTC", dagrun_timeout=LIMIT) as d:
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
    run_id = controls.trigger(d, store=store)
    Scheduler(settings=settings, dags=[d], executor="inline").serve(exit_when_idle=True)
    assert _states(store, run_id) == ("success", {"a": "success", "b": "success"})
    assert not [e for e in store.list_events("slow", limit=None) if e["kind"] == "run_timed_out"]
