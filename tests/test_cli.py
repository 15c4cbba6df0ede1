"""The ``nbflow`` command, run as a user runs it: a real process, a real NBFLOW_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ETL = '''
from nbflow import dag, task
from nbflow.operators import BashOperator, EmptyOperator

@dag(start_date="2024-01-01", default_args={"retries": 1}, timezone="UTC")
def etl():
    @task
    def extract(): return [3, 1, 2]
    @task
    def clean(rows): return sorted(rows)
    @task.branch
    def enough(rows): return "load" if len(rows) > 2 else "skip"
    rows = clean(extract())
    enough(rows) >> [BashOperator(task_id="load", bash_command="echo loaded {{ ds }}"), EmptyOperator(task_id="skip")]

etl()
'''

BROKEN = '''
from nbflow import DAG
def oops(:
'''

FAILING = '''
from nbflow import dag, task

@dag(timezone="UTC")
def failing():
    @task
    def explode(): raise RuntimeError("the source file is empty")
    explode()

failing()
'''


@pytest.fixture
def home(nbflow_home: Path) -> Path:
    dags = nbflow_home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    (dags / "etl.py").write_text(textwrap.dedent(ETL))
    (dags / "broken.py").write_text(textwrap.dedent(BROKEN))
    (dags / "failing.py").write_text(textwrap.dedent(FAILING))
    return nbflow_home


def nbflow(*args: str, home: Path, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NBFLOW_HOME": str(home)}
    result = subprocess.run([sys.executable, "-m", "nbflow", *args], capture_output=True, text=True, env=env, timeout=120)
    if check is not None:
        assert result.returncode == check, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def test_dags_list_shows_dags_and_import_errors(home: Path) -> None:
    out = nbflow("dags", "list", home=home).stdout
    assert "etl" in out and "failing" in out
    assert "broken.py" in out and "SyntaxError" in out
    errors = nbflow("dags", "list-import-errors", home=home, check=1).stdout
    assert "broken.py" in errors and "Traceback" in errors


def test_dags_test_prints_a_summary_and_where_things_are(home: Path) -> None:
    out = nbflow("dags", "test", "etl", "--logical-date", "2024-06-01", home=home).stdout
    assert "SUCCESS" in out
    assert "load" in out and "skipped" in out
    assert f"logs:      {home / 'logs' / 'etl'}" in out


def test_failed_run_exits_1_and_logs_show_the_error(home: Path) -> None:
    out = nbflow("dags", "test", "failing", home=home, check=1).stdout
    assert "FAILED" in out and "the source file is empty" in out
    logs = nbflow("tasks", "logs", "failing", "explode", home=home).stdout
    assert "RuntimeError: the source file is empty" in logs and "Traceback" in logs


def test_trigger_runs_and_dags_runs_lists(home: Path) -> None:
    nbflow("dags", "trigger", "etl", "--conf", '{"x": 1}', home=home)
    out = nbflow("dags", "runs", "etl", home=home).stdout
    assert "manual__" in out and "success" in out


def test_tasks_list_show_and_test(home: Path) -> None:
    assert nbflow("tasks", "list", "etl", home=home).stdout.split() == ["extract", "clean", "enough", "load", "skip"]
    show = nbflow("dags", "show", "etl", home=home).stdout
    assert "clean" in show and "<- extract" in show
    nbflow("dags", "test", "etl", home=home)
    out = nbflow("tasks", "test", "etl", "clean", home=home).stdout
    assert "output: [1, 2, 3]" in out


def test_unknown_dag_and_bad_conf_are_clear(home: Path) -> None:
    missing = nbflow("dags", "test", "nope", home=home, check=1)
    assert "no DAG with id 'nope'" in missing.stderr and "etl" in missing.stderr
    bad = nbflow("dags", "test", "etl", "--conf", "{not json", home=home, check=2)
    assert "--conf is not valid JSON" in bad.stderr


def test_db_commands_and_config(home: Path) -> None:
    nbflow("db", "init", home=home)
    assert "schema is current" in nbflow("db", "check", home=home).stdout
    assert nbflow("db", "reset", home=home, check=2).returncode == 2
    nbflow("db", "reset", "--yes", home=home)
    config = nbflow("config", "show", home=home).stdout
    assert f"dags_folder = {home / 'dags'}" in config
    other = nbflow("config", "show", home=home)
    assert other.stdout == config


def test_db_check_on_an_empty_database_says_to_init(home: Path, tmp_path: Path) -> None:
    env_home = tmp_path / "other"
    env_home.mkdir()
    (env_home / "nbflow.toml").write_text(f'database_url = "sqlite:///{tmp_path / "empty.db"}"\n')
    result = nbflow("db", "check", home=env_home, check=1)
    assert "nbflow db init" in result.stderr


def test_console_script_and_version(home: Path) -> None:
    script = Path(sys.executable).parent / "nbflow"
    out = subprocess.run([str(script), "version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("nbflow ")


def test_demo_runs_the_shipped_pipeline(home: Path) -> None:
    out = nbflow("demo", home=home).stdout
    assert "demo_pipeline" in out and "SUCCESS" in out
    rate = [line.split() for line in out.splitlines() if line.startswith("fetch_exchange_rate")][0]
    assert rate[1:3] == ["success", "2"], "the flaky task should succeed on its second try"
    report_line = [line for line in out.splitlines() if line.startswith("report:")][0]
    report = Path(report_line.split(":", 1)[1].strip())
    assert report.exists() and "Total:" in report.read_text()


def test_first_use_creates_the_dags_folder(nbflow_home: Path) -> None:
    out = nbflow("dags", "list", home=nbflow_home).stdout
    assert (nbflow_home / "dags").is_dir()
    assert "failed to load" not in out
