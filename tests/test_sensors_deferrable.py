"""``deferrable=True`` on sensors: the wait holds no worker slot between pokes (reschedule mode)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from nbflow import DAG
from nbflow.engine.runs import run_dag
from nbflow.errors import DagDefinitionError, InvalidOptionError
from nbflow.operators import EmptyOperator
from nbflow.sensors import FileSensor, PythonSensor, TimeDeltaSensor
from nbflow.settings import load_settings
from nbflow.store import Store
from tests.waiting import wait_for


@pytest.fixture
def settings(nbflow_home: Path, store_url: str, monkeypatch: pytest.MonkeyPatch):
    from nbflow.store.migrate import init_db

    monkeypatch.setenv("NBFLOW_DATABASE_URL", store_url)
    init_db(store_url)  # the test watches the store's events before the run opens it
    return load_settings()


def test_deferrable_means_reschedule_mode_for_every_sensor(tmp_path: Path) -> None:
    from datetime import timedelta

    with DAG("deferrable_defs", timezone="UTC"):
        sensors = [
            FileSensor(task_id="f", filepath=str(tmp_path / "x"), deferrable=True),
            PythonSensor(task_id="p", python_callable=lambda: True, deferrable=True),
            TimeDeltaSensor(task_id="t", delta=timedelta(seconds=1), deferrable=True),
        ]
        plain = FileSensor(task_id="plain", filepath=str(tmp_path / "x"))
    assert [(s.mode, s.deferrable) for s in sensors] == [("reschedule", True)] * 3
    assert (plain.mode, plain.deferrable) == ("poke", False)


def test_deferrable_with_poke_mode_or_a_non_bool_is_refused(tmp_path: Path) -> None:
    with DAG("deferrable_bad", timezone="UTC"):
        with pytest.raises(DagDefinitionError, match="DAG 'deferrable_bad'.*task 'f'.*leave mode out"):
            FileSensor(task_id="f", filepath=str(tmp_path / "x"), deferrable=True, mode="poke")
        with pytest.raises(InvalidOptionError, match="deferrable.*give True or False"):
            FileSensor(task_id="g", filepath=str(tmp_path / "x"), deferrable="yes")


def test_a_deferrable_sensor_gives_its_slot_back_and_uses_one_try(settings, tmp_path: Path) -> None:
    target = tmp_path / "late.txt"
    with DAG("deferrable_run", timezone="UTC") as d:
        FileSensor(task_id="wait", filepath=str(target), deferrable=True, poke_interval=0.1, timeout=30) \
            >> EmptyOperator(task_id="after")

    def rescheduled() -> bool:
        with Store(settings.database_url) as store:
            return any(e["kind"] == "rescheduled" for e in store.list_events("deferrable_run", limit=None))

    def write_when_rescheduled() -> None:
        wait_for(rescheduled, timeout=30)
        target.write_text("ready")

    writer = threading.Thread(target=write_when_rescheduled, daemon=True)
    writer.start()
    run = run_dag(d, settings=settings, executor="thread")
    writer.join()
    assert run.task_states == {"wait": "success", "after": "success"}
    with Store(settings.database_url) as store:
        run_pk = store.get_run(run.dag_id, run.run_id)["id"]
        tries = [(row["try_number"], row["state"]) for row in store.get_tries(run_pk, "wait")]
        events = [e for e in store.list_events(run.dag_id, limit=None) if e["kind"] == "rescheduled"]
    assert tries == [(1, "success")]
    assert events and {e["task_id"] for e in events} == {"wait"}
