"""Sizes of memory as the memory_limit option and the memory settings take them, and refusals that
name the task or the setting and the accepted forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbflow import DAG
from nbflow.errors import ConfigError, InvalidOptionError
from nbflow.memory import format_size, parse_free, parse_size
from nbflow.operators import PythonOperator
from nbflow.settings import load_settings


@pytest.mark.parametrize("value, size", [
    ("2GiB", 2 * 2**30), ("300MB", 300 * 10**6), ("512MiB", 512 * 2**20), ("1.5 GiB", int(1.5 * 2**30)),
    ("100kb", 100_000), ("4096", 4096), (123_456_789, 123_456_789), ("2g", 2 * 2**30),
])
def test_sizes_in_the_forms_people_write(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["", "lots", "2 parsecs", "-5MB", "0", 0, -1, True, 1.5, None, "GiB", [1]])
def test_what_is_not_a_size(value: object) -> None:
    assert parse_size(value) is None


def test_free_memory_as_a_share_or_a_size() -> None:
    assert parse_free("10%") == (0.1, 0)
    assert parse_free("2GiB") == (0.0, 2 * 2**30)
    assert parse_free("0") == (0.0, 0)
    assert parse_free("101%") is None and parse_free("much") is None


def test_sizes_print_as_people_read_them() -> None:
    assert format_size(300 * 10**6) == "286 MiB"
    assert format_size(3 * 2**30) == "3.0 GiB"
    assert format_size(512) == "512 B" and format_size(None) == ""


def _noop() -> None:
    return None


@pytest.mark.parametrize("value, size", [("2GiB", 2 * 2**30), (300_000_000, 300_000_000), ("512MiB", 512 * 2**20)])
def test_memory_limit_is_kept_in_bytes(value: object, size: int) -> None:
    with DAG("limits", schedule=None):
        task = PythonOperator(task_id="t", python_callable=_noop, memory_limit=value)
    assert task.memory_limit == size


def test_memory_limit_comes_from_default_args() -> None:
    with DAG("limits", schedule=None, default_args={"memory_limit": "1GiB"}):
        task = PythonOperator(task_id="t", python_callable=_noop)
        own = PythonOperator(task_id="own", python_callable=_noop, memory_limit="300MB")
    assert task.memory_limit == 2**30 and own.memory_limit == 300 * 10**6


@pytest.mark.parametrize("value", ["lots", "2 parsecs", 0, -1, 1.5, True, "0MB"])
def test_a_bad_memory_limit_is_refused_naming_the_task_and_the_forms(value: object) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        with DAG("limits", schedule=None):
            PythonOperator(task_id="hog", python_callable=_noop, memory_limit=value)
    message = str(caught.value)
    assert "DAG 'limits', task 'hog'" in message and "memory_limit=" in message
    assert '"2GiB", "300MB" or "512MiB"' in message and "a number of bytes" in message


def test_a_bad_memory_limit_in_default_args_is_refused() -> None:
    with pytest.raises(InvalidOptionError, match="memory_limit='much' .from default_args"):
        with DAG("limits", schedule=None, default_args={"memory_limit": "much"}):
            PythonOperator(task_id="t", python_callable=_noop)


def test_task_memory_limit_setting(nbflow_home: Path) -> None:
    assert load_settings(env={}).task_memory_limit == ""
    assert load_settings(env={"NBFLOW_TASK_MEMORY_LIMIT": "2GiB"}).task_memory_limit == "2GiB"
    with pytest.raises(ConfigError, match="task_memory_limit.*NBFLOW_TASK_MEMORY_LIMIT") as caught:
        load_settings(env={"NBFLOW_TASK_MEMORY_LIMIT": "lots"})
    assert '"2GiB", "300MB", "512MiB"' in str(caught.value)
