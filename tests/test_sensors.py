"""Sensors: real runs that wait for files, times, callables and other DAGs, in both modes."""

from __future__ import annotations

import pickle
import threading
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

import nbflow.sensors
from nbflow import DAG, task
from nbflow.errors import (
    DagDefinitionError,
    InvalidOptionError,
    RescheduleTask,
    SensorTimeoutError,
    SkipTask,
)
from nbflow.operators import BashOperator, EmptyOperator
from nbflow.engine.runs import run_dag
from nbflow.sensors import (
    ExternalTaskSensor,
    FileSensor,
    PokeReturnValue,
    PythonSensor,
    TimeDeltaSensor,
    TimeSensor,
)
from nbflow.settings import load_settings
from nbflow.store import Store


@pytest.fixture
def settings(nbflow_home: Path, store_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NBFLOW_DATABASE_URL", store_url)
    return load_settings()


def _run(d: DAG, settings, executor: str = "thread", **kwargs):
    return run_dag(d, settings=settings, executor=executor, **kwargs)


def _context(**values):
    """A hand-made context for calling ``execute`` or ``poke`` directly."""
    now = datetime.now(UTC)
    base = {"logical_date": now, "data_interval_start": now, "data_interval_end": now,
            "ti": SimpleNamespace(try_number=1, first_attempt_at=None)}
    return {**base, **values}


def _create_when(path: Path, ready: Callable[[], bool], at_least: float) -> threading.Thread:
    """Create ``path`` once ``ready()`` says the sensor has looked and not found it (and ``at_least``
    seconds have passed): on a busy machine the run may start late, and a file that is already
    there when the sensor first looks tests nothing about waiting."""
    def create() -> None:
        started = time.monotonic()
        deadline = started + 30
        while time.monotonic() < deadline:
            if time.monotonic() - started >= at_least and ready():
                break
            time.sleep(0.02)
        path.write_text("ready")

    thread = threading.Thread(target=create, daemon=True)
    thread.start()
    return thread


def _create_after_a_miss(path: Path, logs: Path, at_least: float = 0.3) -> threading.Thread:
    """Create ``path`` once a sensor has logged that it is not there yet."""
    return _create_when(path, lambda: any("not yet after poke" in log.read_text(errors="replace")
                                          for log in logs.rglob("*.log")), at_least)


# -- definitions ------------------------------------------------------------------------------------


def test_sensors_are_exported_lazily_with_a_sorted_all() -> None:
    assert nbflow.sensors.__all__ == sorted(nbflow.sensors.__all__)
    assert {"BaseSensor", "FileSensor", "TimeDeltaSensor", "TimeSensor", "ExternalTaskSensor",
            "PythonSensor", "PokeReturnValue"} <= set(nbflow.sensors.__all__)
    for name in nbflow.sensors.__all__:
        assert getattr(nbflow.sensors, name).__name__ == name
    with pytest.raises(AttributeError, match="NoSuchSensor"):
        nbflow.sensors.NoSuchSensor  # noqa: B018


def test_timeout_is_the_sensors_own_not_the_execution_timeout() -> None:
    with DAG("opts", timezone="UTC"):
        short = FileSensor(task_id="short", filepath="x", timeout=timedelta(seconds=5), poke_interval=2)
        default = FileSensor(task_id="default", filepath="x")
    assert short.timeout == 5.0 and short.poke_interval == 2.0 and short.execution_timeout is None
    assert default.timeout == timedelta(days=7).total_seconds() and default.poke_interval == 60.0
    assert default.mode == "poke" and default.kind == "sensor" and not default.soft_fail


def test_a_bad_mode_names_the_task_and_the_choices() -> None:
    with pytest.raises(DagDefinitionError) as info, DAG("modes", timezone="UTC"):
        FileSensor(task_id="wait_file", filepath="x", mode="sleep")
    text = str(info.value)
    assert "wait_file" in text and "'sleep'" in text and "'poke'" in text and "'reschedule'" in text


def test_bad_durations_are_definition_errors() -> None:
    with DAG("durations", timezone="UTC"):
        with pytest.raises(DagDefinitionError, match="poke_interval"):
            FileSensor(task_id="a", filepath="x", poke_interval="soon")
        with pytest.raises(DagDefinitionError, match=r"task 'b': timeout=-1 is not allowed: give 0 or more seconds"):
            FileSensor(task_id="b", filepath="x", timeout=-1)


@pytest.mark.parametrize(("option", "value", "allowed"), [
    ("poke_interval", 0, "more than 0"),  # would poke in a busy loop
    ("poke_interval", timedelta(seconds=-1), "more than 0"),
    ("poke_interval", float("nan"), "more than 0"),
    ("timeout", float("inf"), "0 or more"),
    ("max_wait", 0, "more than 0"),
    ("max_wait", True, "more than 0"),
])
def test_sensor_durations_out_of_range_are_refused(option: str, value: object, allowed: str) -> None:
    with DAG("sensor_limits", timezone="UTC"):
        with pytest.raises(InvalidOptionError) as info:
            FileSensor(task_id="wait", filepath="x", **{option: value})
    error = info.value
    assert (error.dag_id, error.task_id, error.option, error.value) == ("sensor_limits", "wait", option, repr(value))
    assert f"DAG 'sensor_limits', task 'wait': {option}={value!r} is not allowed: give {allowed} seconds" in str(error)


def test_a_sensor_timeout_of_zero_means_poke_once() -> None:
    with DAG("poke_once", timezone="UTC"):
        sensor = FileSensor(task_id="wait", filepath="x", timeout=0, poke_interval=0.5)
    assert (sensor.timeout, sensor.poke_interval) == (0.0, 0.5)


def test_sensor_timeout_error_pickles_whole() -> None:
    error = SensorTimeoutError("d", "t", 2.5, "file /x")
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is SensorTimeoutError and str(clone) == str(error) and clone.__dict__ == error.__dict__
    assert "2.5 s" in str(error) and "soft_fail=True" in str(error) and "'t'" in str(error)


# -- real runs --------------------------------------------------------------------------------------


def test_each_sensor_is_done_on_its_first_poke(settings, tmp_path: Path) -> None:
    (tmp_path / "in" / "2024-01-02").mkdir(parents=True)
    (tmp_path / "in" / "2024-01-02" / "a.csv").write_text("1")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "x").write_text("")
    (tmp_path / "deep" / "b" / "c").mkdir(parents=True)
    (tmp_path / "deep" / "b" / "c" / "z.parquet").write_text("")
    # timeout=0: a sensor not done on its first poke fails at once instead of waiting
    fast = {"timeout": 0, "poke_interval": 30}
    with DAG("firsts", timezone="Asia/Seoul") as d:
        FileSensor(task_id="glob", filepath=str(tmp_path / "in" / "{{ ds }}" / "*.csv"), **fast)
        FileSensor(task_id="folder", filepath=str(tmp_path / "folder"), **fast)
        FileSensor(task_id="recursive", filepath=str(tmp_path / "deep" / "**" / "*.parquet"), recursive=True, **fast)
        TimeDeltaSensor(task_id="delta", delta=timedelta(hours=1), **fast)
        TimeSensor(task_id="clock", target_time=clock(9, 30), **fast)
        PythonSensor(task_id="call", python_callable=lambda ds, params: ds == params["day"],
                     params={"day": "2024-01-02"}, **fast)
    run = _run(d, settings, logical_date="2024-01-02")
    assert run.errors == {}
    assert set(run.task_states.values()) == {"success"}, run.task_states
    assert run.outputs.get("call") is None


def test_sensors_not_done_yet_say_so(tmp_path: Path) -> None:
    future = datetime.now(UTC) + timedelta(days=2)
    (tmp_path / "empty").mkdir()
    with DAG("not_yet", timezone="UTC"):
        delta = TimeDeltaSensor(task_id="delta", delta=60)
        at = TimeSensor(task_id="at", target_time=clock(0, 0))
        empty_dir = FileSensor(task_id="empty", filepath=str(tmp_path / "empty"))
        no_match = FileSensor(task_id="no_match", filepath=str(tmp_path / "*.csv"))
    assert delta.poke(_context()) is False
    assert delta.poke(_context(data_interval_end=datetime.now(UTC) - timedelta(minutes=2))) is True
    assert at.poke(_context(logical_date=future, data_interval_end=future)) is False
    assert empty_dir.poke(_context()) is False and no_match.poke(_context()) is False
    (tmp_path / "empty" / "now_not").write_text("")
    assert empty_dir.poke(_context()) is True


def test_time_sensor_uses_the_dags_zone() -> None:
    seoul = ZoneInfo("Asia/Seoul")
    with DAG("zones", timezone="Asia/Seoul"):
        at = TimeSensor(task_id="at", target_time=clock(9))
    end = datetime(2024, 3, 1, 0, 0, tzinfo=seoul)
    # 09:00 in Seoul on 1 March is midnight UTC; the day is Seoul's even though it is still 29
    # February in UTC when the interval ends.
    assert at.target({"logical_date": end, "data_interval_end": end}) == datetime(2024, 3, 1, 0, 0, tzinfo=UTC)


def test_poke_mode_waits_until_the_file_appears(settings, tmp_path: Path) -> None:
    target = tmp_path / "arrives.txt"
    with DAG("waits", timezone="UTC") as d:
        FileSensor(task_id="wait", filepath=str(target), poke_interval=0.1, timeout=10) >> EmptyOperator(task_id="after")
    writer = _create_after_a_miss(target, Path(settings.logs_folder))
    started = time.monotonic()
    run = _run(d, settings)
    writer.join()
    assert run.task_states == {"wait": "success", "after": "success"}
    assert time.monotonic() - started >= 0.3
    assert "not yet after poke" in Path(run.log_paths["wait"]).read_text()


def test_timeout_fails_with_a_sensor_timeout_error(settings, tmp_path: Path) -> None:
    with DAG("gives_up", timezone="UTC") as d:
        FileSensor(task_id="wait", filepath=str(tmp_path / "never"), poke_interval=0.05, timeout=0.2) \
            >> EmptyOperator(task_id="after")
    started = time.monotonic()
    run = _run(d, settings)
    assert time.monotonic() - started >= 0.2
    assert run.state == "failed"
    assert run.task_states == {"wait": "failed", "after": "upstream_failed"}
    assert "SensorTimeoutError" in run.errors["wait"]
    assert "DAG 'gives_up', task 'wait'" in run.errors["wait"] and "timeout of 0.2 s" in run.errors["wait"]


def test_soft_fail_ends_as_skipped(settings, tmp_path: Path) -> None:
    with DAG("soft", timezone="UTC") as d:
        FileSensor(task_id="wait", filepath=str(tmp_path / "never"), poke_interval=0.05, timeout=0.1,
                   soft_fail=True) >> EmptyOperator(task_id="after")
    run = _run(d, settings)
    assert run.task_states == {"wait": "skipped", "after": "skipped"}
    assert run.state == "success"


def test_poke_return_value_becomes_the_output(settings) -> None:
    calls = []

    def ready():
        calls.append(1)
        return PokeReturnValue(len(calls) >= 2, {"rows": 3})

    with DAG("returns", timezone="UTC") as d:
        sensed = PythonSensor(task_id="wait", python_callable=ready, poke_interval=0.05, timeout=5)

        @task
        def use(found):
            return found["rows"] * 2

        use(sensed.output)
    run = _run(d, settings)
    assert run.task_states == {"wait": "success", "use": "success"}
    assert run.outputs == {"wait": {"rows": 3}, "use": 6}
    assert len(calls) == 2


def test_exponential_backoff_doubles_the_wait_in_poke_mode() -> None:
    stamps: list[float] = []

    def fourth_time() -> bool:
        stamps.append(time.monotonic())
        return len(stamps) == 4

    with DAG("backoff", timezone="UTC"):
        sensor = PythonSensor(task_id="wait", python_callable=fourth_time, poke_interval=0.05,
                              exponential_backoff=True, max_wait=1, timeout=5)
    sensor.execute(_context())
    gaps = [b - a for a, b in pairwise(stamps)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2, gaps


# -- other DAGs -------------------------------------------------------------------------------------


def _upstream_dag(dag_id: str, fail: bool = False) -> DAG:
    with DAG(dag_id, timezone="UTC") as d:
        BashOperator(task_id="extract", bash_command="exit 3" if fail else "echo ok") >> EmptyOperator(task_id="load")
    return d


def test_external_task_sensor_finds_the_other_dags_run_at_the_same_instant(settings) -> None:
    _run(_upstream_dag("producer"), settings, logical_date="2024-01-01")
    _run(_upstream_dag("producer"), settings, logical_date="2023-12-31")
    fast = {"timeout": 0, "poke_interval": 30}
    # 09:00 in Seoul is the producer's midnight UTC: the match is on the instant, not the wall clock.
    with DAG("consumer", timezone="Asia/Seoul") as d:
        ExternalTaskSensor(task_id="task_done", external_dag_id="producer", external_task_id="load", **fast)
        ExternalTaskSensor(task_id="run_done", external_dag_id="producer", **fast)
        ExternalTaskSensor(task_id="yesterday", external_dag_id="producer", external_task_id="extract",
                           execution_delta=timedelta(days=1), **fast)
        ExternalTaskSensor(task_id="no_such_day", external_dag_id="producer", execution_delta=timedelta(days=5),
                           soft_fail=True, **fast)
    run = _run(d, settings, logical_date="2024-01-01T09:00")
    assert run.task_states == {"task_done": "success", "run_done": "success", "yesterday": "success",
                               "no_such_day": "skipped"}, run.errors


def test_external_task_sensor_fails_at_once_on_a_failed_state(settings) -> None:
    _run(_upstream_dag("broken", fail=True), settings, logical_date="2024-01-01")
    with DAG("watcher", timezone="UTC") as d:
        ExternalTaskSensor(task_id="load_done", external_dag_id="broken", external_task_id="load",
                           poke_interval=0.1, timeout=30)
        ExternalTaskSensor(task_id="typo", external_dag_id="broken", external_task_id="lod",
                           poke_interval=0.1, timeout=30)
    started = time.monotonic()
    run = _run(d, settings, logical_date="2024-01-01")
    assert time.monotonic() - started < 10
    assert run.task_states == {"load_done": "failed", "typo": "failed"}
    assert "DAG 'watcher', task 'load_done': failed: task 'load' of DAG 'broken' is in state 'upstream_failed'" \
        in run.errors["load_done"]
    assert "DAG 'broken' has no task 'lod'" in run.errors["typo"] and "extract, load" in run.errors["typo"]


# -- reschedule mode --------------------------------------------------------------------------------


def test_reschedule_mode_pokes_once_and_asks_to_run_again(tmp_path: Path) -> None:
    with DAG("resched", timezone="UTC"):
        plain = FileSensor(task_id="plain", filepath=str(tmp_path / "f"), mode="reschedule", poke_interval=2, timeout=60)
        soft = FileSensor(task_id="soft", filepath=str(tmp_path / "f"), mode="reschedule", timeout=5, soft_fail=True)
        backoff = FileSensor(task_id="backoff", filepath=str(tmp_path / "f"), mode="reschedule", poke_interval=1,
                             exponential_backoff=True, max_wait=5, timeout=60)
    before = datetime.now(UTC)
    with pytest.raises(RescheduleTask) as info:
        plain.execute(_context())
    at = info.value.reschedule_at
    assert at.utcoffset() == timedelta(0) and before + timedelta(seconds=2) <= at <= datetime.now(UTC) + timedelta(seconds=2)

    # the timeout counts from the first start of the try, kept across reschedules
    long_ago = _context(ti=SimpleNamespace(try_number=1, first_attempt_at=datetime.now(UTC) - timedelta(seconds=61)))
    with pytest.raises(SensorTimeoutError, match="timeout of 60 s"):
        plain.execute(long_ago)
    with pytest.raises(SkipTask):
        soft.execute(long_ago)
    # near the deadline, the last poke is moved to the deadline itself
    near = _context(ti=SimpleNamespace(try_number=1, first_attempt_at=datetime.now(UTC) - timedelta(seconds=59.5)))
    with pytest.raises(RescheduleTask) as info:
        plain.execute(near)
    assert info.value.reschedule_at <= datetime.now(UTC) + timedelta(seconds=0.6)
    # with backoff the wait grows with the time waited so far, up to max_wait
    recent = _context(ti=SimpleNamespace(try_number=1, first_attempt_at=datetime.now(UTC) - timedelta(seconds=2)))
    with pytest.raises(RescheduleTask) as info:
        backoff.execute(recent)
    assert timedelta(seconds=2.5) <= info.value.reschedule_at - datetime.now(UTC) <= timedelta(seconds=3.1)
    with pytest.raises(RescheduleTask) as info:
        backoff.execute(near)
    assert info.value.reschedule_at - datetime.now(UTC) <= timedelta(seconds=5)

    (tmp_path / "f").write_text("here")
    assert plain.execute(long_ago) is None


def test_reschedule_mode_through_the_run_driver(settings, tmp_path: Path) -> None:
    target = tmp_path / "late.txt"
    with DAG("resched_run", timezone="UTC") as d:
        FileSensor(task_id="wait", filepath=str(target), mode="reschedule", poke_interval=0.2, timeout=30) \
            >> EmptyOperator(task_id="after")
    def rescheduled_once() -> bool:
        with Store(settings.database_url) as store:
            return any(e["kind"] == "rescheduled" for e in store.list_events("resched_run", limit=None))

    writer = _create_when(target, rescheduled_once, at_least=0.5)
    started = time.monotonic()
    run = _run(d, settings)
    writer.join()
    assert time.monotonic() - started >= 0.4
    assert run.task_states == {"wait": "success", "after": "success"}
    assert run.tries["wait"] == 1  # a reschedule is not a try
    with Store(settings.database_url) as store:
        run_pk = store.get_run(run.dag_id, run.run_id)["id"]
        tries = [(row["try_number"], row["state"]) for row in store.get_tries(run_pk, "wait")]
        rescheduled = [e for e in store.list_events(run.dag_id, limit=None)
                       if e["kind"] == "rescheduled" and e["task_id"] == "wait"]
    assert tries == [(1, "success")]
    assert rescheduled, "the sensor should have given its slot back at least once"


@pytest.mark.timeout(30)
def test_reschedule_mode_times_out_from_the_first_poke(settings, tmp_path: Path) -> None:
    """The driver keeps the first start across reschedules; were it reset each time, this would
    reschedule forever."""
    with DAG("resched_timeout", timezone="UTC") as d:
        FileSensor(task_id="wait", filepath=str(tmp_path / "never"), mode="reschedule", poke_interval=0.1,
                   timeout=0.3)
    started = time.monotonic()
    run = _run(d, settings)
    assert 0.3 <= time.monotonic() - started < 10
    assert run.task_states == {"wait": "failed"} and run.tries["wait"] == 1
    assert "SensorTimeoutError" in run.errors["wait"] and "timeout of 0.3 s" in run.errors["wait"]
