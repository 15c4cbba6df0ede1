"""``nbflow config``, ``db``, ``scheduler status``, and what every command does with settings or a
store it cannot use: one line naming the setting, where its value came from and what is expected,
exit status 2."""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cli.conftest import nbflow, one_line

COMMANDS = [("dags", "list"), ("dags", "runs", "etl"), ("tasks", "logs", "etl", "load"), ("db", "check"),
            ("pools", "list"), ("scheduler", "status")]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("variable, value, expected", [
    ("NBFLOW_DATABASE_URL", "garbage", "setting 'database_url' = 'garbage' (from the environment variable "
                                       "NBFLOW_DATABASE_URL) is unusable: it is not a database URL"),
    ("NBFLOW_DATABASE_URL", "postgresql+psycopg://nbflow:s3cret@127.0.0.1:1/nbflow",
     "cannot connect to the store postgresql+psycopg://nbflow:***@127.0.0.1:1/nbflow ("),
    ("NBFLOW_DB_BUSY_TIMEOUT", "nan", "setting 'db_busy_timeout' = 'nan' (from the environment variable "
                                      "NBFLOW_DB_BUSY_TIMEOUT) is unusable: expected a finite number"),
    ("NBFLOW_DB_BUSY_TIMEOUT", "-1", "setting 'db_busy_timeout' = '-1' (from the environment variable "
                                     "NBFLOW_DB_BUSY_TIMEOUT) is unusable: it must be 0 or more"),
], ids=["garbage-url", "unreachable-postgres", "nan", "negative"])
def test_an_unusable_setting_or_store_is_one_line_and_exit_2(
        home: Path, command: tuple[str, ...], variable: str, value: str, expected: str) -> None:
    result = nbflow(*command, home=home, check=2, env={variable: value})
    line = one_line(result)
    assert line.startswith(f"nbflow: error: {expected}"), line
    assert "s3cret" not in result.stdout + result.stderr
    if variable == "NBFLOW_DATABASE_URL" and "s3cret" in value:
        assert line.endswith("or fix the setting database_url (from the environment variable NBFLOW_DATABASE_URL).")


def test_a_broken_settings_file_names_its_path_and_line(home: Path) -> None:
    toml = home / "nbflow.toml"
    toml.write_text('executor = "thread"\n\nparallelism = = 4\n')
    line = one_line(nbflow("dags", "list", home=home, check=2))
    assert line.startswith(f"nbflow: error: the settings file {toml}, line 3 cannot be used: it is not valid TOML")
    assert "NBFLOW_NBFLOW" not in line
    toml.write_text('database_url = "postgresql+psycopg://u:pw@127.0.0.1:1/db"\n')
    line = one_line(nbflow("dags", "runs", "etl", home=home, check=2))
    assert line.endswith(f"or fix the setting database_url (from {toml}).")


def test_config_show_says_where_each_value_comes_from_and_the_zone_in_use(home: Path) -> None:
    shown = nbflow("config", "show", home=home, env={"NBFLOW_PARALLELISM": "3", "TZ": "Asia/Seoul"}).stdout
    lines = shown.splitlines()
    assert lines[0] == f"# settings file: {home / 'nbflow.toml'} (does not exist; every value is a default or an NBFLOW_* variable)"
    values = {line.split(" = ")[0]: line.split(" = ")[1] for line in lines[1:]}
    assert values["parallelism"].split() == ["3", "#", "NBFLOW_PARALLELISM"]
    assert [part.strip() for part in values["executor"].split("#")] == [
        "auto", "default: process in the daemon and the Jupyter server, thread elsewhere"]
    assert values["home"].split() == [str(home), "#", "NBFLOW_HOME"]
    assert [part.strip() for part in values["default_timezone"].split("#")] == [
        "Asia/Seoul", "default: not set, so this machine's zone"]
    (home / "nbflow.toml").write_text('executor = "process"\ndefault_timezone = "Europe/Paris"\n'
                                      'database_url = "postgresql+psycopg://u:s3cret@db.example/nbflow"\n')
    shown = nbflow("config", "show", home=home).stdout
    assert shown.splitlines()[0] == f"# settings file: {home / 'nbflow.toml'} (exists)"
    values = {line.split(" = ")[0]: line.split(" = ")[1].split() for line in shown.splitlines()[1:]}
    assert values["executor"] == ["process", "#", "nbflow.toml"]
    assert values["default_timezone"] == ["Europe/Paris", "#", "nbflow.toml"]
    assert values["database_url"] == ["postgresql+psycopg://u:***@db.example/nbflow", "#", "nbflow.toml"]
    assert "s3cret" not in shown


def test_db_commands_do_not_print_the_password(home: Path, postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    if not url.password:  # the test server trusts local logins: give the URL a password it ignores
        url = url.set(password="s3cret")
    shown = url.render_as_string(hide_password=False)
    out = nbflow("db", "init", home=home, env={"NBFLOW_DATABASE_URL": shown}).stdout
    assert out.strip() == f"initialised {url.render_as_string(hide_password=True)}" and str(url.password) not in out


def test_scheduler_status_tells_a_silent_but_running_scheduler_from_none(home: Path) -> None:
    from nbflow.store import Store

    nbflow("dags", "list", home=home)
    sleeper = subprocess.Popen(["sleep", "60"])  # a process that is alive, standing for the scheduler
    try:
        with Store.open() as store:
            store.register_host("daemon-1", hostname=socket.gethostname(), pid=sleeper.pid, kind="daemon")
            store.heartbeat("daemon-1", now=datetime.now(timezone.utc) - timedelta(seconds=300))
        result = nbflow("scheduler", "status", home=home, check=3)
        assert "no scheduler is running" not in result.stdout
        assert (f"the daemon scheduler daemon-1 (pid {sleeper.pid}) is running but has written no heartbeat for "
                in result.stdout)
        assert "the store is or was busy (locked by another process), or the scheduler is stuck" in result.stdout
    finally:
        sleeper.kill()
        sleeper.wait()
    assert "no scheduler is running" in nbflow("scheduler", "status", home=home, check=3).stdout
    assert os.path.exists(home / "nbflow.db")
