"""The ``nbflow`` command run as a user runs it: a real process, a real NBFLOW_HOME (see
``tests/test_cli.py`` for the happy paths; these modules mirror ``nbflow/cli/``)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ETL = '''
from nbflow import dag, task

@dag(timezone="UTC")
def etl():
    @task
    def extract(): return [3, 1, 2]
    @task
    def load(rows): return sorted(rows)
    load(extract())

etl()
'''

CYCLIC = '''
from nbflow import DAG
from nbflow.operators import EmptyOperator

with DAG("cyclic") as d:
    a = EmptyOperator(task_id="a")
    b = EmptyOperator(task_id="b")
    a >> b >> a
'''

#: fails before it builds its DAG: only its text says which DAG it would have made
SYNTAX = '''
from nbflow import DAG

with DAG("sales_daily") as d:
    def oops(:
        pass
'''


@pytest.fixture
def home(nbflow_home: Path) -> Path:
    dags = nbflow_home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    (dags / "etl.py").write_text(textwrap.dedent(ETL))
    return nbflow_home


def nbflow(*args: str, home: Path, check: int | None = 0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NBFLOW_HOME": str(home), **(env or {})}
    result = subprocess.run([sys.executable, "-m", "nbflow", *args], capture_output=True, text=True, env=env, timeout=120)
    if check is not None:
        assert result.returncode == check, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The command's stderr, which must be exactly one line (and no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@contextmanager
def locked(home: Path) -> Iterator[None]:
    """Another process's view of the store: SQLite locked for writing (readers still read, as WAL lets them)."""
    other = sqlite3.connect(home / "nbflow.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()
