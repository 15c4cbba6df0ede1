"""``TriggerDagRunOperator`` against a real store on every backend, with a real scheduler host
driving both DAGs' runs in this process."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbflow import DAG, task
from nbflow.engine import controls
from nbflow.engine.scheduler import Scheduler
from nbflow.errors import DagDefinitionError, DagNotFoundError, InvalidOptionError
from nbflow.operators import TriggerDagRunOperator
from nbflow.settings import load_settings
from nbflow.store import Store


@pytest.fixture
def settings(nbflow_home: Path, store_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NBFLOW_DATABASE_URL", store_url)
    monkeypatch.setenv("NBFLOW_POLL_INTERVAL", "0.05")  # a triggered run is found at the next poll
    return load_settings()


@pytest.fixture
def store(settings):
    opened = Store.open(settings)
    try:
        yield opened
    finally:
        opened.close()


def _child() -> DAG:
    """Outputs conf["x"]; fails when conf["fail"] is true."""
    with DAG("child", schedule=None, timezone="UTC", default_args={"retries": 0}) as d:
        @task
        def echo(dag_run=None):
            if dag_run.conf.get("fail"):
                raise RuntimeError("asked to fail")
            return dag_run.conf["x"]

        echo()
    return d


def _parent(**options) -> DAG:
    with DAG("parent", schedule=None, timezone="UTC", default_args={"retries": 0}) as d:
        TriggerDagRunOperator(task_id="go", trigger_dag_id="child", poke_interval=0.05, **options)
    return d


def _drive(settings, *dags: DAG) -> None:
    Scheduler(settings=settings, dags=list(dags), executor="thread").serve(exit_when_idle=True)


def _states(store: Store, dag_id: str, run_id: str) -> tuple[str, dict[str, str]]:
    run = store.get_run(dag_id, run_id)
    return run["state"], {ti["task_id"]: ti["state"] for ti in store.get_task_instances(run["id"])}


def _output(store: Store, dag_id: str, run_id: str, task_id: str):
    from nbflow.engine.runs import load_run

    return load_run(store, dag_id, run_id).outputs[task_id]


def test_the_triggered_run_has_its_templated_conf_and_succeeds(settings, store: Store) -> None:
    parent, child = _parent(conf={"x": "{{ run_id }}"}, wait_for_completion=True), _child()
    parent_run = controls.trigger(parent, store=store)
    _drive(settings, parent, child)
    assert _states(store, "parent", parent_run) == ("success", {"go": "success"})
    child_run = _output(store, "parent", parent_run, "go")
    assert child_run.startswith("manual__")
    assert store.get_run("child", child_run)["conf"] == {"x": parent_run}
    assert _states(store, "child", child_run) == ("success", {"echo": "success"})
    assert _output(store, "child", child_run, "echo") == parent_run


def test_waiting_fails_when_the_triggered_run_fails(settings, store: Store) -> None:
    parent, child = _parent(conf={"fail": True}, wait_for_completion=True), _child()
    parent_run = controls.trigger(parent, store=store)
    _drive(settings, parent, child)
    [child_run] = [r["run_id"] for r in store.list_runs("child", limit=None)]
    assert _states(store, "child", child_run) == ("failed", {"echo": "failed"})
    assert _states(store, "parent", parent_run) == ("failed", {"go": "failed"})
    error = store.get_task_instance("parent", parent_run, "go")["error"]
    assert f"run '{child_run}' of DAG 'child' ended in state 'failed'" in error


def test_a_given_run_id_is_used_and_a_duplicate_is_refused(settings, store: Store) -> None:
    parent = _parent(trigger_run_id="nightly-{{ ds }}", logical_date="{{ logical_date }}", conf={"x": 2})
    child = _child()
    first = controls.trigger(parent, store=store, logical_date="2024-05-01")
    _drive(settings, parent, child)
    assert _states(store, "parent", first) == ("success", {"go": "success"})
    assert _states(store, "child", "nightly-2024-05-01") == ("success", {"echo": "success"})
    assert store.get_run("child", "nightly-2024-05-01")["logical_date"].isoformat() == "2024-05-01T00:00:00+00:00"
    second = controls.trigger(parent, store=store, logical_date="2024-05-01")
    _drive(settings, parent)
    assert _states(store, "parent", second) == ("failed", {"go": "failed"})
    error = store.get_task_instance("parent", second, "go")["error"]
    assert "DAG 'child'" in error and "has a run 'nightly-2024-05-01' already" in error and "reset_dag_run" in error
    assert [r["run_id"] for r in store.list_runs("child", limit=None)] == ["nightly-2024-05-01"]


def test_reset_dag_run_clears_the_existing_run_and_it_runs_again(settings, store: Store) -> None:
    parent = _parent(trigger_run_id="fixed", conf={"x": 1}, reset_dag_run=True, wait_for_completion=True)
    child = _child()
    first = controls.trigger(parent, store=store)
    _drive(settings, parent, child)
    assert _states(store, "child", "fixed") == ("success", {"echo": "success"})
    second = controls.trigger(parent, store=store)
    _drive(settings, parent, child)
    assert _states(store, "parent", second) == ("success", {"go": "success"})
    assert [r["run_id"] for r in store.list_runs("child", limit=None)] == ["fixed"]
    run_pk = store.get_run("child", "fixed")["id"]
    assert [(t["try_number"], t["state"]) for t in store.get_tries(run_pk, "echo")] == [(1, "success"), (2, "success")]
    cleared = [e for e in store.list_events("child", limit=None) if e["kind"] == "task_cleared"]
    assert [(e["run_id"], e["task_id"]) for e in cleared] == [("fixed", "echo")]
    assert _output(store, "parent", first, "go") == _output(store, "parent", second, "go") == "fixed"


def test_an_unknown_dag_fails_the_task_naming_it(settings, store: Store) -> None:
    with DAG("lonely", schedule=None, timezone="UTC", default_args={"retries": 0}) as parent:
        TriggerDagRunOperator(task_id="go", trigger_dag_id="nowhere")
    run_id = controls.trigger(parent, store=store)
    _drive(settings, parent)
    assert _states(store, "lonely", run_id) == ("failed", {"go": "failed"})
    assert "no DAG with id 'nowhere'" in store.get_task_instance("lonely", run_id, "go")["error"]
    with pytest.raises(DagNotFoundError, match="'nowhere'"):
        controls.find_dag("nowhere", store=store)


def test_bad_options_are_refused_naming_the_task() -> None:
    with DAG("bad_trigger", schedule=None, timezone="UTC"):
        with pytest.raises(InvalidOptionError, match="task 'a'.*allowed_states.*'finished'"):
            TriggerDagRunOperator(task_id="a", trigger_dag_id="x", allowed_states=["finished"])
        with pytest.raises(DagDefinitionError, match="task 'b'.*both allowed and failed"):
            TriggerDagRunOperator(task_id="b", trigger_dag_id="x", allowed_states=["failed"])
        with pytest.raises(InvalidOptionError, match="task 'c'.*poke_interval"):
            TriggerDagRunOperator(task_id="c", trigger_dag_id="x", poke_interval=0)
        with pytest.raises(InvalidOptionError, match="task 'd'.*conf"):
            TriggerDagRunOperator(task_id="d", trigger_dag_id="x", conf="x=1")
