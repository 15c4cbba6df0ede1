"""BashSensor and DateTimeSensor: real runs, with conditions the tests make true themselves."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nbflow import DAG
from nbflow.errors import InvalidOptionError
from nbflow.operators import EmptyOperator
from nbflow.sensors import BashSensor, DateTimeSensor


def _states(run) -> dict[str, str]:
    return {task_id: state.value for task_id, state in run.task_states.items()}


def _logs(home: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in home.rglob("*.log"))


def test_bash_sensor_waits_until_the_command_exits_0(nbflow_home: Path, tmp_path: Path) -> None:
    # the first poke creates the marker and exits 1 (not yet); the second finds it and exits 0
    marker = tmp_path / "marker"
    with DAG("bash_wait", timezone="UTC") as d:
        BashSensor(task_id="wait", bash_command=f"if [ -f '{marker}' ]; then exit 0; else touch '{marker}'; exit 1; fi",
                   poke_interval=0.05, timeout=30) >> EmptyOperator(task_id="after")
    assert _states(d.test()) == {"wait": "success", "after": "success"}
    assert marker.exists() and "the command exited with code 1" in _logs(nbflow_home)


def test_bash_sensor_uses_env_cwd_and_templates(nbflow_home: Path, tmp_path: Path) -> None:
    (tmp_path / "here.txt").write_text("x")
    with DAG("bash_env", timezone="UTC") as d:
        BashSensor(task_id="wait", bash_command='test "$WHO" = nbflow && test -f here.txt && test {{ ds }} = 2024-01-06',
                   env={"WHO": "nbflow"}, cwd=str(tmp_path), poke_interval=0.05, timeout=0)
    assert _states(d.test(logical_date="2024-01-06")) == {"wait": "success"}
    assert _states(d.test(logical_date="2024-01-07")) == {"wait": "failed"}  # timeout=0: one poke


def test_bash_sensor_that_never_succeeds_times_out_or_soft_fails(nbflow_home: Path) -> None:
    with DAG("bash_never", timezone="UTC") as d:
        BashSensor(task_id="hard", bash_command="exit 1", poke_interval=0.05, timeout=0.2) >> EmptyOperator(task_id="after")
        BashSensor(task_id="soft", bash_command="exit 1", poke_interval=0.05, timeout=0.2, soft_fail=True)
    assert _states(d.test()) == {"hard": "failed", "after": "upstream_failed", "soft": "skipped"}
    assert "SensorTimeoutError" in _logs(nbflow_home)


def test_retry_exit_code_waits_on_that_code_and_fails_on_others(nbflow_home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    with DAG("bash_retry_code", timezone="UTC") as d:
        BashSensor(task_id="waits", retry_exit_code=3, poke_interval=0.05, timeout=30,
                   bash_command=f"if [ -f '{marker}' ]; then exit 0; else touch '{marker}'; exit 3; fi")
        BashSensor(task_id="broken", retry_exit_code=3, poke_interval=0.05, timeout=600, retries=3,
                   bash_command="echo no such thing >&2; exit 2")
    started = time.monotonic()
    assert _states(d.test()) == {"waits": "success", "broken": "failed"}
    assert time.monotonic() - started < 60  # failed at its first poke, not after its timeout
    assert "exited with code 2" in _logs(nbflow_home) and "no such thing" in _logs(nbflow_home)
    assert d.test().task_instances["broken"].try_number == 1  # failed for good: its retries are not used


def test_bash_sensor_options_are_checked() -> None:
    with DAG("bash_bad", timezone="UTC"):
        with pytest.raises(InvalidOptionError, match=r"task 's1': retry_exit_code=0 is not allowed"):
            BashSensor(task_id="s1", bash_command="true", retry_exit_code=0)
        with pytest.raises(InvalidOptionError, match=r"task 's2': bash_command='' is not allowed"):
            BashSensor(task_id="s2", bash_command="")
        with pytest.raises(InvalidOptionError, match=r"task 's3': env=\['A'\] is not allowed"):
            BashSensor(task_id="s3", bash_command="true", env=["A"])


def test_datetime_sensor_waits_for_its_target(nbflow_home: Path) -> None:
    target = datetime.now(UTC) + timedelta(seconds=0.6)
    with DAG("datetime_wait", timezone="Asia/Seoul") as d:
        DateTimeSensor(task_id="wait", target_time=target, poke_interval=0.05, timeout=30) >> EmptyOperator(task_id="after")
    assert _states(d.test()) == {"wait": "success", "after": "success"}
    assert datetime.now(UTC) >= target
    assert "not yet after poke" in _logs(nbflow_home)  # it did wait


def test_datetime_sensor_renders_its_template(nbflow_home: Path) -> None:
    with DAG("datetime_template", timezone="Asia/Seoul") as d:
        DateTimeSensor(task_id="past", target_time="{{ data_interval_end }}", poke_interval=0.05, timeout=0)
        DateTimeSensor(task_id="future", target_time="{{ data_interval_end + macros.timedelta(days=3650) }}",
                       poke_interval=0.05, timeout=0, soft_fail=True)
        DateTimeSensor(task_id="garbage", target_time="{{ ds }} at noon", poke_interval=0.05, timeout=0)
    assert _states(d.test(logical_date="2024-01-06")) == {"past": "success", "future": "skipped", "garbage": "failed"}
    assert "target_time rendered to '2024-01-06 at noon'" in _logs(nbflow_home)


def test_a_naive_target_is_in_the_dags_zone() -> None:
    with DAG("datetime_zone", timezone="Asia/Seoul"):
        sensor = DateTimeSensor(task_id="wait", target_time="2024-01-06T09:00:00")
    seoul = ZoneInfo("Asia/Seoul")
    context = {"logical_date": datetime(2024, 1, 6, tzinfo=seoul)}
    assert sensor.target(context) == datetime(2024, 1, 6, 0, tzinfo=UTC)
    with DAG("datetime_bad", timezone="UTC"):
        with pytest.raises(InvalidOptionError, match=r"task 'bad': target_time='tomorrow' is not allowed"):
            DateTimeSensor(task_id="bad", target_time="tomorrow")
        with pytest.raises(InvalidOptionError, match=r"task 'bad2': target_time=5 is not allowed"):
            DateTimeSensor(task_id="bad2", target_time=5)
