"""``@task.sensor``: the decorated function is the poke; real runs in poke and reschedule mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbflow import dag, task
from nbflow.errors import DagDefinitionError, InvalidOptionError, UnknownArgumentError
from nbflow.sensors import PokeReturnValue, PythonSensor
from nbflow.settings import load_settings
from nbflow.store import Store


def _events(dag_id: str, kind: str) -> list[dict]:
    with Store(load_settings().database_url) as store:
        return [e for e in store.list_events(dag_id, limit=None) if e["kind"] == kind]


def test_a_poke_returning_poke_return_value_gives_its_value_downstream(nbflow_home: Path) -> None:
    pokes: list[int] = []

    @task
    def threshold() -> int:
        return 3

    @task.sensor(poke_interval=0.05, timeout=30)
    def enough_rows(needed: int) -> PokeReturnValue:
        """Waits until enough rows have arrived."""
        pokes.append(needed)
        return PokeReturnValue(is_done=len(pokes) >= needed, xcom_value={"rows": len(pokes)})

    @task
    def report(found: dict) -> str:
        return f"{found['rows']} rows"

    @dag(timezone="UTC")
    def waits() -> None:
        report(enough_rows(threshold()))

    d = waits()
    sensor = d.get_task("enough_rows")
    assert isinstance(sensor, PythonSensor) and sensor.kind == "sensor"
    assert (sensor.poke_interval, sensor.timeout, sensor.mode) == (0.05, 30.0, "poke")
    assert sensor.upstream_task_ids == {"threshold"} and sensor.doc_md == "Waits until enough rows have arrived."
    run = d.test()
    assert run.task_states == {"threshold": "success", "enough_rows": "success", "report": "success"}
    assert pokes == [3, 3, 3]
    assert run.outputs["enough_rows"] == {"rows": 3} and run.outputs["report"] == "3 rows"
    assert run.tries["enough_rows"] == 1


def test_reschedule_mode_gives_the_slot_back_between_pokes(nbflow_home: Path) -> None:
    pokes: list[str] = []

    @task.sensor(poke_interval=0.1, timeout=30, mode="reschedule")
    def ready(ds: str) -> bool:
        pokes.append(ds)
        return len(pokes) >= 2

    @task
    def after() -> str:
        return "went on"

    @dag(timezone="UTC")
    def rescheduling() -> None:
        ready() >> after()

    run = rescheduling().test()
    assert run.task_states == {"ready": "success", "after": "success"}
    assert len(pokes) == 2 and pokes[0] == run.logical_date.date().isoformat()
    assert run.outputs["ready"] is None  # a plain True gives no output
    assert run.tries["ready"] == 1  # a reschedule is not a try
    assert [e["task_id"] for e in _events("rescheduling", "rescheduled")] == ["ready"]


def test_a_timed_out_sensor_fails_or_with_soft_fail_is_skipped(nbflow_home: Path) -> None:
    @task.sensor(poke_interval=0.05, timeout=0.2)
    def never() -> bool:
        return False

    @task
    def downstream() -> None: ...

    @dag(timezone="UTC")
    def timing_out() -> None:
        never() >> downstream()
        never.override(task_id="never_soft", soft_fail=True, exponential_backoff=True)() \
            >> downstream.override(task_id="after_soft")()

    run = timing_out().test()
    assert run.task_states == {"never": "failed", "downstream": "upstream_failed", "never_soft": "skipped",
                               "after_soft": "skipped"}
    assert "SensorTimeoutError" in run.errors["never"]


def test_sensor_options_are_checked_and_unknown_ones_refused() -> None:
    @task.sensor(mode="sleep")
    def bad_mode() -> bool:
        return True

    @task.sensor(poke_interval=0)
    def busy() -> bool:
        return True

    @task.sensor(poke_intervall=5)
    def typo() -> bool:
        return True

    @dag(timezone="UTC")
    def one(which: str = "") -> None:
        {"mode": bad_mode, "busy": busy, "typo": typo}[which]()

    with pytest.raises(DagDefinitionError, match=r"task 'bad_mode': mode='sleep' is not a sensor mode"):
        one("mode")
    with pytest.raises(InvalidOptionError, match=r"task 'busy': poke_interval=0 is not allowed"):
        one("busy")
    with pytest.raises(UnknownArgumentError, match=r"task 'typo': unknown PythonSensor argument key 'poke_intervall'"):
        one("typo")
