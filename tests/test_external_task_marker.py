"""``ExternalTaskMarker``: clearing it with its downstream crosses into the other DAG's run of the
same logical date, on every backend, with a real scheduler host driving the runs again."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbflow import DAG
from nbflow.engine import controls
from nbflow.engine.scheduler import Scheduler
from nbflow.errors import InvalidOptionError, InvalidRequestError
from nbflow.operators import EmptyOperator
from nbflow.sensors import ExternalTaskMarker
from nbflow.settings import load_settings
from nbflow.store import Store

DAY = "2024-05-01"


@pytest.fixture
def settings(nbflow_home: Path, store_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NBFLOW_DATABASE_URL", store_url)
    return load_settings()


@pytest.fixture
def store(settings):
    opened = Store.open(settings)
    try:
        yield opened
    finally:
        opened.close()


def _pair(back: bool = False, depth: int = 10) -> tuple[DAG, DAG]:
    """``up``: a >> mark (-> down.load, ``depth`` DAGs deep); ``down``: extract >> load >> report,
    and with ``back`` a marker from report back to ``up.a`` (a cycle of markers)."""
    with DAG("up", schedule=None, timezone="UTC") as up:
        EmptyOperator(task_id="a") >> ExternalTaskMarker(task_id="mark", external_dag_id="down",
                                                         external_task_id="load", recursion_depth=depth)
    with DAG("down", schedule=None, timezone="UTC") as down:
        tail = EmptyOperator(task_id="extract") >> EmptyOperator(task_id="load") >> EmptyOperator(task_id="report")
        if back:
            tail >> ExternalTaskMarker(task_id="back", external_dag_id="up", external_task_id="a")
    return up, down


def _run_both(settings, store: Store, up: DAG, down: DAG) -> tuple[str, str]:
    up_run = controls.trigger(up, logical_date=DAY, store=store)
    down_run = controls.trigger(down, logical_date=DAY, store=store)
    controls.trigger(down, logical_date="2024-05-02", store=store)  # another date: never touched
    _drive(settings, up, down)
    return up_run, down_run


def _drive(settings, *dags: DAG) -> None:
    Scheduler(settings=settings, dags=list(dags), executor="inline").serve(exit_when_idle=True)


def _state(store: Store, dag_id: str, run_id: str) -> tuple[str, dict[str, str]]:
    run = store.get_run(dag_id, run_id)
    return run["state"], {ti["task_id"]: ti["state"] for ti in store.get_task_instances(run["id"])}


def _tries(store: Store, dag_id: str, run_id: str) -> dict[str, int]:
    run = store.get_run(dag_id, run_id)
    return {ti["task_id"]: ti["try_number"] for ti in store.get_task_instances(run["id"])}


def test_clearing_a_marker_downstream_clears_the_marked_task_in_the_other_dag(settings, store: Store) -> None:
    up, down = _pair()
    up_run, down_run = _run_both(settings, store, up, down)
    assert _state(store, "down", down_run) == ("success", dict.fromkeys(["extract", "load", "report"], "success"))

    changes = controls.clear(up, run_id=up_run, task_ids=["a"], downstream=True, store=store)
    assert sorted(changes) == [(up_run, "a"), (up_run, "mark")]
    assert sorted(changes.other_dags["down"]) == [(down_run, "load"), (down_run, "report")]
    assert _state(store, "down", down_run) == ("queued", {"extract": "success", "load": "none", "report": "none"})
    assert _state(store, "up", up_run) == ("queued", {"a": "none", "mark": "none"})
    other_day = [r for r in store.list_runs("down", limit=None) if r["run_id"] != down_run]
    assert [r["state"] for r in other_day] == ["success"]

    _drive(settings, up, down)
    assert _state(store, "down", down_run) == ("success", dict.fromkeys(["extract", "load", "report"], "success"))
    assert _tries(store, "down", down_run) == {"extract": 1, "load": 2, "report": 2}
    assert _state(store, "up", up_run)[0] == "success"


def test_without_downstream_or_as_a_dry_run_the_other_dag_is_untouched(settings, store: Store) -> None:
    up, down = _pair()
    up_run, down_run = _run_both(settings, store, up, down)
    changes = controls.clear(up, run_id=up_run, task_ids=["mark"], store=store)
    assert list(changes) == [(up_run, "mark")] and changes.other_dags == {}
    dry = controls.clear(up, run_id=up_run, task_ids=["a"], downstream=True, dry_run=True, store=store)
    assert sorted(dry.other_dags["down"]) == [(down_run, "load"), (down_run, "report")]
    assert _state(store, "down", down_run) == ("success", dict.fromkeys(["extract", "load", "report"], "success"))


def test_a_cycle_of_markers_stops_at_recursion_depth_before_changing_anything(settings, store: Store) -> None:
    up, down = _pair(back=True, depth=3)  # up -> down -> up -> down, then one more is refused
    up_run, down_run = _run_both(settings, store, up, down)
    with pytest.raises(InvalidRequestError, match="DAG 'down'.*ExternalTaskMarker 'back' would go past the "
                                                  "recursion_depth of the first marker"):
        controls.clear(up, run_id=up_run, task_ids=["a"], downstream=True, store=store)
    assert _state(store, "up", up_run) == ("success", {"a": "success", "mark": "success"})
    assert _state(store, "down", down_run)[0] == "success"


def test_bad_marker_options_name_the_task() -> None:
    with DAG("bad_marker", schedule=None, timezone="UTC"):
        with pytest.raises(InvalidOptionError, match="task 'm'.*recursion_depth"):
            ExternalTaskMarker(task_id="m", external_dag_id="x", external_task_id="y", recursion_depth=0)
        with pytest.raises(InvalidOptionError, match="task 'n'.*external_task_id"):
            ExternalTaskMarker(task_id="n", external_dag_id="x", external_task_id="")
