"""Controls (pause, clear, mark, trigger, pools) against a real store on every backend, with a real
scheduler driving the runs they leave queued."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nbflow import DAG, task
from nbflow.engine import controls
from nbflow.errors import (
    InvalidRequestError,
    DagNotFoundError,
    NotFoundError,
    RunNotFoundError,
    TaskNotFoundError,
)
from nbflow.engine.runs import load_run, run_dag
from nbflow.engine.scheduler import Scheduler
from nbflow.store import Store


@pytest.fixture
def store(settings) -> Iterator[Store]:
    opened = Store.open(settings)
    try:
        yield opened
    finally:
        opened.close()


def _pipeline(flag: Path) -> DAG:
    """a >> b >> c, and d alone; b fails while ``flag`` exists."""
    with DAG("pipe", timezone="UTC", default_args={"retries": 0}) as d:
        @task
        def a():
            return 1

        @task
        def b(x):
            if flag.exists():
                raise RuntimeError("the upstream file is late")
            return x + 1

        @task
        def c(x):
            return x + 1

        @task
        def d_alone():
            return "d"

        c(b(a()))
        d_alone()
    return d


def _drive(dag: DAG, settings) -> None:
    """What a scheduler host does with the queued runs of ``dag``."""
    Scheduler(settings=settings, dags=[dag], executor="inline").serve(exit_when_idle=True)


def _tis(store: Store, dag_id: str, run_id: str) -> dict[str, dict]:
    run = store.get_run(dag_id, run_id)
    return {ti["task_id"]: ti for ti in store.get_task_instances(run["id"])}


def test_pause_and_unpause_flip_the_stored_flag(settings, store: Store, tmp_path: Path) -> None:
    dag = _pipeline(tmp_path / "flag")
    controls.trigger(dag, store=store)  # records the DAG
    controls.pause("pipe", store=store)
    assert store.get_dag("pipe")["is_paused"] is True
    controls.unpause("pipe", store=store)
    assert store.get_dag("pipe")["is_paused"] is False
    with pytest.raises(DagNotFoundError, match="no DAG with id 'nope'.*pipe"):
        controls.pause("nope", store=store)


def test_trigger_refuses_a_conf_json_cannot_carry_and_stores_nothing(settings, store: Store, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import date

    from nbflow.errors import InvalidConfError

    dag = _pipeline(tmp_path / "flag")
    for conf, problem in [({"x": float("nan")}, "has nan at conf['x']"),
                          ({"x": {"y": [float("-inf")]}}, "has -inf at conf['x']['y'][0]"),
                          ({"day": date(2024, 5, 1)}, "has a date at conf['day'], which JSON cannot hold"),
                          ({1: "one"}, "has the key 1 (int) in conf: JSON keys are strings"),
                          ({"tags": {"a", "b"}}, "has a set at conf['tags']"),
                          ("x=1", "is a str, not a JSON object")]:
        with pytest.raises(InvalidConfError) as info:
            controls.trigger(dag, conf=conf, store=store)
        assert str(info.value).startswith(f"DAG 'pipe': the run's conf {problem}"), info.value
    monkeypatch.setenv("NBFLOW_MAX_CONF_BYTES", "20")
    with pytest.raises(InvalidConfError, match=r"takes 21 bytes as JSON, over the limit of 20 bytes"):
        controls.trigger(dag, conf={"rows": "x" * 10}, store=store)
    assert store.list_runs("pipe") == [] and store.get_dag("pipe") is None
    assert controls.trigger(dag, conf={"rows": "x" * 9}, store=store).startswith("manual__")


def test_trigger_queues_a_manual_run_that_a_scheduler_runs(settings, store: Store, tmp_path: Path) -> None:
    dag = _pipeline(tmp_path / "flag")
    first = controls.trigger(dag, conf={"x": 1}, logical_date="2024-05-01T06:00:00", store=store)
    second = controls.trigger(dag, logical_date="2024-05-01T06:00:00", store=store)
    assert first == "manual__2024-05-01T06:00:00+00:00" and second == first + "__2"
    row = store.get_run("pipe", first)
    assert (row["state"], row["run_type"], row["conf"]) == ("queued", "manual", {"x": 1})
    assert {ti["state"] for ti in _tis(store, "pipe", first).values()} == {"none"}
    _drive(dag, settings)
    run = load_run(store, "pipe", first)
    assert run.state == "success" and run.outputs["c"] == 3
    assert load_run(store, "pipe", second).state == "success"


def test_clear_a_date_range_with_downstream_runs_those_tasks_again(settings, store: Store, tmp_path: Path) -> None:
    dag = _pipeline(tmp_path / "flag")
    ids = [controls.trigger(dag, logical_date=f"2024-01-0{day}T12:00:00", store=store) for day in (1, 2, 3)]
    _drive(dag, settings)
    assert all(store.get_run("pipe", rid)["state"] == "success" for rid in ids)

    preview = controls.clear(dag, start="2024-01-02", end="2024-01-03", task_ids=["b"], downstream=True,
                             dry_run=True, store=store)
    assert list(preview) == [(ids[1], "b"), (ids[1], "c"), (ids[2], "b"), (ids[2], "c")]
    assert store.get_run("pipe", ids[1])["state"] == "success", "a dry run changes nothing"

    # "2024-01-03" as the end means the whole day, so the run at noon on the 3rd is in
    cleared = controls.clear(dag, start="2024-01-02", end="2024-01-03", task_ids=["b"], downstream=True, store=store)
    assert list(cleared) == list(preview) and not cleared.skipped
    for rid in ids[1:]:
        tis = _tis(store, "pipe", rid)
        assert store.get_run("pipe", rid)["state"] == "queued"
        assert (tis["a"]["state"], tis["b"]["state"], tis["c"]["state"], tis["d_alone"]["state"]) == (
            "success", "none", "none", "success")
    assert store.get_run("pipe", ids[0])["state"] == "success"

    _drive(dag, settings)
    for rid in ids[1:]:
        run = load_run(store, "pipe", rid)
        assert run.state == "success" and run.outputs["c"] == 3
        assert (run.tries["a"], run.tries["b"], run.tries["c"], run.tries["d_alone"]) == (1, 2, 2, 1)
    assert load_run(store, "pipe", ids[0]).tries == {"a": 1, "b": 1, "c": 1, "d_alone": 1}


def test_clear_only_failed_then_the_fixed_run_succeeds(settings, store: Store, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    dag = _pipeline(flag)
    rid = controls.trigger(dag, store=store)
    _drive(dag, settings)
    assert load_run(store, "pipe", rid).task_states == {"a": "success", "b": "failed", "c": "upstream_failed",
                                                        "d_alone": "success"}
    cleared = controls.clear(dag, run_id=rid, only_failed=True, store=store)
    assert list(cleared) == [(rid, "b"), (rid, "c")] and cleared.run_states == {rid: "queued"}
    flag.unlink()
    _drive(dag, settings)
    run = load_run(store, "pipe", rid)
    assert run.state == "success" and run.tries == {"a": 1, "b": 2, "c": 1, "d_alone": 1}


def test_clear_leaves_a_task_a_host_is_running_and_reports_it(settings, store: Store, tmp_path: Path) -> None:
    dag = _pipeline(tmp_path / "flag")
    run = run_dag(dag, settings=settings, executor="inline", run_type="manual", store=store)
    pk = store.get_run("pipe", run.run_id)["id"]
    store.record(pk, task_changes=[{"task_id": "c", "state": "running", "claimed_by": "other-host"}])
    cleared = controls.clear(dag, run_id=run.run_id, store=store)
    assert cleared.skipped == [(run.run_id, "c")]
    assert sorted(t for _, t in cleared) == ["a", "b", "d_alone"]
    tis = _tis(store, "pipe", run.run_id)
    assert tis["c"]["state"] == "running" and tis["c"]["claimed_by"] == "other-host"
    assert tis["b"]["state"] == "none"


def test_mark_success_and_failed_decide_the_run(settings, store: Store, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    dag = _pipeline(flag)
    run = run_dag(dag, settings=settings, executor="inline", run_type="manual", store=store)
    assert run.state == "failed"

    marked = controls.mark(dag, run.run_id, ["b"], "success", downstream=True, store=store)
    assert list(marked) == [(run.run_id, "b"), (run.run_id, "c")]
    assert marked.run_states == {run.run_id: "success"}
    after = load_run(store, "pipe", run.run_id)
    assert after.state == "success" and after.task_states["c"] == "success"
    assert after.task_instances["b"].end_date is not None

    assert controls.mark(dag, run.run_id, ["c"], "failed", store=store).run_states == {run.run_id: "failed"}
    assert store.get_run("pipe", run.run_id)["state"] == "failed"
    assert "by hand" in _tis(store, "pipe", run.run_id)["c"]["error"]


def test_mark_in_an_unfinished_run_queues_it_for_the_scheduler(settings, store: Store, tmp_path: Path) -> None:
    dag = _pipeline(tmp_path / "flag")
    rid = controls.trigger(dag, store=store)
    marked = controls.mark(dag, rid, ["d_alone"], "success", store=store)
    assert marked.run_states == {rid: "queued"}
    _drive(dag, settings)
    run = load_run(store, "pipe", rid)
    assert run.state == "success"
    assert run.tries["d_alone"] == 0, "a task marked success is not run"
    assert run.tries["a"] == run.tries["b"] == run.tries["c"] == 1


def test_bad_inputs_name_the_problem(settings, store: Store, tmp_path: Path) -> None:
    dag = _pipeline(tmp_path / "flag")
    rid = controls.trigger(dag, store=store)
    with pytest.raises(InvalidRequestError, match="must be one of success, failed"):
        controls.mark(dag, rid, ["a"], "done", store=store)
    with pytest.raises(TaskNotFoundError, match="no task 'zz'"):
        controls.mark(dag, rid, ["zz"], "success", store=store)
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        controls.mark(dag, "nope", ["a"], "success", store=store)
    with pytest.raises(TaskNotFoundError):
        controls.clear(dag, task_ids=["zz"], store=store)
    with pytest.raises(InvalidRequestError, match="ends .* before it starts"):
        controls.clear(dag, start="2024-02-01", end="2024-01-01", store=store)
    with pytest.raises(InvalidRequestError, match="not both"):
        controls.clear(dag, run_id=rid, start="2024-01-01", store=store)
    with pytest.raises(RunNotFoundError):
        controls.clear(dag, run_id="nope", store=store)
    assert store.get_run("pipe", rid)["state"] == "queued"
    assert {ti["state"] for ti in _tis(store, "pipe", rid).values()} == {"none"}


def test_scheduler_alive_needs_a_fresh_heartbeat_of_a_real_scheduler(settings, store: Store) -> None:
    assert controls.scheduler_alive(store, settings=settings) is False
    me = {"hostname": socket.gethostname(), "pid": os.getpid()}
    store.register_host("bf", kind="backfill", **me)
    assert controls.scheduler_alive(store, settings=settings) is False, "a backfill drives only its own runs"
    store.register_host("daemon-1", kind="daemon", **me)
    assert [h["host_id"] for h in controls.live_schedulers(store, settings=settings)] == ["daemon-1"]
    assert controls.scheduler_alive(store, settings=settings) is True
    store.heartbeat("daemon-1", now=datetime.now(UTC) - timedelta(seconds=settings.host_stale_after + 1))
    assert controls.scheduler_alive(store, settings=settings) is False
    store.register_host("daemon-2", kind="daemon", **me)
    store.stop_host("daemon-2")
    assert controls.scheduler_alive(store, settings=settings) is False


def test_pools(settings, store: Store) -> None:
    controls.set_pool("warehouse", 3, description="the shared database", store=store)
    controls.set_pool("warehouse", 5, store=store)
    assert [(p["name"], p["slots"], p["occupied"]) for p in controls.list_pools(store)] == [("warehouse", 5, 0)]
    with pytest.raises(InvalidRequestError, match="at least 0"):
        controls.set_pool("warehouse", -1, store=store)
    with pytest.raises(NotFoundError, match="no pool named 'nope'. Pools: warehouse"):
        controls.delete_pool("nope", store=store)
    controls.delete_pool("warehouse", store=store)
    assert controls.list_pools(store) == []
