"""``nbflow dags ...``: what the scheduler would run, DAGs that did not load and why, unknown ids,
Airflow's positional logical date, and a busy store."""

from __future__ import annotations

import json
import socket
import subprocess
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cli.conftest import CYCLIC, ETL, SYNTAX, locked, nbflow, one_line


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


def test_list_shows_what_the_scheduler_runs_and_the_rest_apart(home: Path, tmp_path: Path) -> None:
    dags = home / "dags"
    write(dags / "old.py", ETL.replace("def etl", "def old").replace("etl()", "old()"))
    script = write(tmp_path / "once.py", ETL.replace("def etl", "def once").replace("etl()", "once().test()"))
    nbflow("dags", "list", home=home)
    (dags / "old.py").unlink()  # the store remembers it; the scheduler cannot run it any more
    subprocess.run([*nbflow_python(), str(script)], check=True, capture_output=True, env=env_of(home))

    listed = nbflow("dags", "list", home=home)
    table, _, apart = listed.stdout.partition("\n\n")
    assert [line.split()[0] for line in table.splitlines()[1:]] == ["etl"]
    assert apart.splitlines()[0] == f"known to the store but not loaded from {dags}, so no scheduler runs them:"
    assert [line.split()[:3] for line in apart.splitlines()[2:]] == [
        ["old", "file", "missing"], ["once", "not", "in"]]
    assert f"not in dags_folder     {script}" in apart and f"file missing           {dags / 'old.py'}" in apart
    statuses = {row["dag_id"]: row["status"] for row in json.loads(nbflow("dags", "list", "--json", home=home).stdout)}
    assert statuses == {"etl": "loaded", "old": "file missing", "once": "not in dags_folder"}

    only = nbflow("dags", "list", "-f", str(script), home=home).stdout  # -f restricts the list to its paths
    assert [line.split()[0] for line in only.splitlines()[1:]] == ["once"] and "etl" not in only


def nbflow_python() -> list[str]:
    import sys

    return [sys.executable]


def env_of(home: Path) -> dict[str, str]:
    import os

    return {**os.environ, "NBFLOW_HOME": str(home)}


def test_broken_files_are_one_summary_line_not_one_line_each(home: Path) -> None:
    for name in ("a", "b", "c"):
        write(home / "dags" / f"broken_{name}.py", "import nbflow\ndef oops(:\n")
    listed = nbflow("dags", "list", home=home)
    assert listed.stderr == "3 DAG files failed to load: nbflow dags list-import-errors\n"
    assert "broken_a" not in listed.stdout
    assert nbflow("dags", "show", "etl", home=home).stderr == ""  # a command that finds its DAG stays quiet
    missing = one_line(nbflow("dags", "show", "nope", home=home, check=1))
    assert missing == ("nbflow: error: no DAG with id 'nope'. Known DAGs: etl. 3 DAG files failed to load and may "
                       "define it: nbflow dags list-import-errors.")


def test_a_dag_whose_file_failed_says_so_and_why(home: Path) -> None:
    dags = home / "dags"
    write(dags / "cyclic.py", CYCLIC)
    write(dags / "sales.py", SYNTAX)
    for command in (("dags", "test", "cyclic"), ("dags", "show", "cyclic"), ("tasks", "list", "cyclic"),
                    ("dags", "trigger", "cyclic")):
        line = one_line(nbflow(*command, home=home, check=1))
        assert line.startswith(f"nbflow: error: DAG 'cyclic' is not available: its file {dags / 'cyclic.py'} failed "
                               "to load: CycleError: DAG 'cyclic': the tasks form a cycle: a >> b >> a."), line
        assert line.endswith("`nbflow dags list-import-errors` shows the full traceback."), line
        assert "no DAG with id" not in line
    line = one_line(nbflow("dags", "test", "sales_daily", home=home, check=1))
    assert line.startswith(f"nbflow: error: DAG 'sales_daily' is not available: its file {dags / 'sales.py'} failed "
                           "to load: SyntaxError: invalid syntax")


def test_a_dag_the_store_remembers_from_elsewhere_says_where(home: Path, tmp_path: Path) -> None:
    dags = home / "dags"
    write(dags / "old.py", ETL.replace("def etl", "def old").replace("etl()", "old()"))
    nbflow("dags", "list", home=home)
    (dags / "old.py").unlink()
    line = one_line(nbflow("dags", "test", "old", home=home, check=1))
    assert line == (f"nbflow: error: DAG 'old' is not available: its file {dags / 'old.py'} is missing (the store "
                    f"remembers the DAG from when it loaded); put the file back in {dags}.")
    script = write(tmp_path / "once.py", ETL.replace("def etl", "def once").replace("etl()", "once().test()"))
    subprocess.run([*nbflow_python(), str(script)], check=True, capture_output=True, env=env_of(home))
    line = one_line(nbflow("dags", "next", "once", home=home, check=1))
    assert line == (f"nbflow: error: DAG 'once' is not available: it was defined in {script}, outside {dags}; move "
                    f"the file into {dags}, or pass -f {script}.")
    assert "once" in nbflow("dags", "show", "once", "-f", str(script), home=home).stdout


def test_runs_of_an_unknown_dag_is_an_error_and_of_a_known_one_is_not(home: Path) -> None:
    line = one_line(nbflow("dags", "runs", "nope", home=home, check=1))
    assert line == "nbflow: error: no DAG with id 'nope'. Known DAGs: etl."
    # etl is in dags_folder but the store has not seen it yet: known, without runs
    assert nbflow("dags", "runs", "etl", home=home).stdout == "etl has no runs yet: start one with `nbflow dags trigger etl`\n"
    nbflow("dags", "test", "etl", home=home)
    assert "test__" in nbflow("dags", "runs", "etl", home=home).stdout
    assert "--limit takes a number of runs from 1, not 0" in one_line(
        nbflow("dags", "runs", "etl", "--limit", "0", home=home, check=1))
    assert "no DAG with id 'nope'" in one_line(nbflow("dags", "pause", "nope", home=home, check=1))


def test_airflows_positional_logical_date(home: Path) -> None:
    out = nbflow("dags", "test", "etl", "2024-02-01", home=home).stdout
    assert "run test__2024-02-01T00:00:00+00:00  SUCCESS" in out
    both = nbflow("dags", "test", "etl", "2024-02-01", "-d", "2024-02-02", home=home, check=2)
    assert both.stderr.splitlines()[-1] == ("nbflow: error: the logical date is given twice (2024-02-01 and "
                                            "--logical-date 2024-02-02); give it once")
    assert "test__2024-02-01" in nbflow("dags", "runs", "etl", home=home).stdout
    assert "test__2024-02-02" not in nbflow("dags", "runs", "etl", home=home).stdout


def test_show_counts_its_tasks_in_english(home: Path) -> None:
    write(home / "dags" / "single.py", '''
        from nbflow import DAG
        from nbflow.operators import EmptyOperator
        with DAG("single", timezone="UTC"):
            EmptyOperator(task_id="only")
    ''')
    assert nbflow("dags", "show", "single", home=home).stdout.splitlines()[0] == "<DAG 'single': 1 task, schedule manual>"
    assert nbflow("dags", "show", "etl", home=home).stdout.splitlines()[0] == "<DAG 'etl': 2 tasks, schedule manual>"


BUSY = {"NBFLOW_DB_BUSY_TIMEOUT": "0.3"}


def test_a_busy_store_is_named_busy_not_taken_for_no_scheduler(home: Path) -> None:
    nbflow("dags", "list", home=home)  # the store exists and knows etl
    with locked(home):
        for command in (("dags", "trigger", "etl"), ("dags", "trigger", "etl", "--queue"), ("dags", "list"),
                        ("dags", "pause", "etl"), ("dags", "test", "etl"), ("pools", "set", "db", "2"),
                        ("dags", "backfill", "etl", "--start", "2024-01-01", "--end", "2024-01-02")):
            result = nbflow(*command, home=home, check=1, env=BUSY)
            line = one_line(result)
            assert line.startswith("nbflow: error: the store is busy: the database "), (command, line)
            assert "no scheduler is running" not in result.stdout + result.stderr, command
    assert nbflow("dags", "runs", "etl", home=home).stdout.startswith("etl has no runs yet")  # nothing half-made


def test_a_scheduler_silent_while_the_store_was_busy_is_not_no_scheduler(home: Path) -> None:
    from nbflow.store import Store

    nbflow("dags", "list", home=home)
    sleeper = subprocess.Popen(["sleep", "60"])  # alive, standing for a scheduler that could not beat
    try:
        with Store.open() as store:
            store.register_host("daemon-1", hostname=socket.gethostname(), pid=sleeper.pid, kind="daemon")
            store.heartbeat("daemon-1", now=datetime.now(timezone.utc) - timedelta(seconds=45))
        queued = nbflow("dags", "trigger", "etl", "--queue", home=home)
        assert "no scheduler is running" not in queued.stdout + queued.stderr
        assert (f"the daemon scheduler daemon-1 (pid {sleeper.pid}) is running but has written no heartbeat for "
                in queued.stdout)
        # without --queue the run is queued for that scheduler too, not run a second way here
        default = nbflow("dags", "trigger", "etl", home=home)
        assert default.stdout.startswith("queued manual__") and "running etl now" not in default.stderr
        with Store.open() as store:
            assert {r["state"] for r in store.list_runs("etl")} == {"queued"}
    finally:
        sleeper.kill()
        sleeper.wait()
