"""``%%dag`` and ``%nbflow`` on a real, in-process IPython shell."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython

from nbflow.store import Store

PIPELINE = '''
from nbflow import task

@task
def extract():
    return [3, 1, 2]

@task
def total(rows):
    return sum(rows)

total(extract())
'''


@pytest.fixture
def ip(nbflow_home: Path) -> Iterator[Any]:
    start_ipython()  # once per process; later calls return None
    shell = InteractiveShell.instance()
    if "nbflow" not in shell.extension_manager.loaded:
        shell.run_line_magic("load_ext", "nbflow")
    magics = shell.magics_manager.registry["NbflowMagics"]
    magics.defined.clear()
    before = set(shell.user_ns)
    try:
        yield shell
    finally:
        magics.defined.clear()
        for name in set(shell.user_ns) - before:
            shell.user_ns.pop(name, None)
        shell.user_ns.pop("__session__", None)


def cell(shell: Any, line: str, body: str) -> Any:
    """Run ``%%dag line`` with ``body`` as a user runs a cell; fail on any error."""
    result = shell.run_cell(f"%%dag {line}\n{textwrap.dedent(body)}")
    assert result.success, result.error_in_exec
    return result


def stored(dag_id: str) -> dict[str, Any] | None:
    with Store.open() as store:
        return store.get_dag(dag_id)


def test_dag_cell_defines_binds_and_registers(ip: Any) -> None:
    cell(ip, 'sales --schedule "0 6 * * *" --timezone Asia/Seoul --start 2024-01-01 --tags a,b --retries 2 --owner ana',
         PIPELINE)
    dag = ip.user_ns["sales"]
    assert dag.dag_id == "sales" and dag.task_ids == ["extract", "total"]
    assert dag.timetable.description.startswith("0 6 * * *") and dag.tags == ["a", "b"]
    assert dag.owner == "ana" and dag.get_task("total").retries == 2
    assert "extract" in ip.user_ns  # the cell ran in the user namespace
    row = stored("sales")
    assert row is not None
    assert row["source_kind"] == "notebook" and row["fileloc"] == "interactive"
    assert row["timezone"] == "Asia/Seoul" and row["owner"] == "ana"


def test_dag_cell_records_the_notebook_path(ip: Any, tmp_path: Path) -> None:
    notebook = tmp_path / "analysis.ipynb"
    notebook.write_text("{}")
    ip.user_ns["__session__"] = str(notebook)
    cell(ip, "from_notebook", PIPELINE)
    assert ip.user_ns["from_notebook"].fileloc == str(notebook)
    assert stored("from_notebook")["fileloc"] == str(notebook)


def test_a_dag_cell_run_after_a_rename_keeps_the_new_path(ip: Any, tmp_path: Path) -> None:
    """The kernel still says Untitled.ipynb; the server moved the DAG's row to the renamed notebook."""
    old, new = tmp_path / "Untitled.ipynb", tmp_path / "sales.ipynb"
    old.write_text("{}")
    ip.user_ns["__session__"] = str(old)
    cell(ip, "renamed", PIPELINE)
    old.rename(new)
    with Store.open() as store:
        assert store.move_fileloc(str(old), str(new)) == ["renamed"]  # what the server does on a rename
    cell(ip, "renamed", PIPELINE)
    assert stored("renamed")["fileloc"] == str(new) and ip.user_ns["renamed"].fileloc == str(new)
    assert ip.user_ns["__session__"] == str(new), "the cells that follow use the new path too"


def test_running_the_cell_again_replaces_the_dag(ip: Any) -> None:
    cell(ip, "again", PIPELINE)
    first = ip.user_ns["again"]
    cell(ip, "again --schedule @daily", PIPELINE + "\nfrom nbflow.operators import EmptyOperator\nEmptyOperator(task_id='done')\n")
    second = ip.user_ns["again"]
    assert second is not first
    assert second.task_ids == ["extract", "total", "done"]
    assert stored("again")["schedule"].startswith("@daily")
    assert len(stored("again")["definition"]["tasks"]) == 3


def test_a_cycle_is_a_clear_error_and_registers_nothing(ip: Any) -> None:
    body = '''
    from nbflow.operators import EmptyOperator
    a = EmptyOperator(task_id="a")
    b = EmptyOperator(task_id="b")
    a >> b >> a
    '''
    with pytest.raises(UsageError, match=r"(?s)cycle: (a >> b >> a|b >> a >> b).*Nothing was registered"):
        ip.run_cell_magic("dag", "loop", textwrap.dedent(body))
    assert "loop" not in ip.user_ns
    assert stored("loop") is None
    result = ip.run_cell("%%dag loop\n" + textwrap.dedent(body))
    assert isinstance(result.error_in_exec, UsageError)


def test_an_option_out_of_range_in_the_cell_is_one_clear_line_and_registers_nothing(ip: Any) -> None:
    body = """
    from nbflow.operators import EmptyOperator
    EmptyOperator(task_id="ok")
    EmptyOperator(task_id="t", retries=-1)
    """
    result = ip.run_cell("%%dag limited\n" + textwrap.dedent(body))
    error = result.error_in_exec
    assert isinstance(error, UsageError)
    first, rest = str(error).split("\n", 1)
    assert first == ("DAG 'limited', task 't': retries=-1 is not allowed: give a whole number from 0 to "
                     "2,147,483,646. (cell line 4)")
    assert rest == "Nothing was registered; fix the cell and run it again."
    assert stored("limited") is None and "limited" not in ip.user_ns
    with pytest.raises(UsageError, match=r"^DAG 'timed', task 'slow': timeout=0 is not allowed: give more than 0"):
        ip.run_cell_magic("dag", "timed", "from nbflow import task\n@task(timeout=0)\ndef slow(): ...\nslow()\n")
    assert stored("timed") is None


def test_an_error_in_the_cell_is_the_users_own(ip: Any) -> None:
    result = ip.run_cell("%%dag broken\nfrom nbflow import task\nundefined_name\n")
    assert isinstance(result.error_in_exec, NameError)
    assert stored("broken") is None and "broken" not in ip.user_ns


def test_nbflow_test_runs_and_shows_the_run(ip: Any) -> None:
    cell(ip, "testing --timezone UTC", PIPELINE)
    run = ip.run_line_magic("nbflow", "test testing --date 2024-03-01")
    assert run.state == "success"
    assert run.outputs == {"extract": [3, 1, 2], "total": 6}
    assert run.logical_date.isoformat().startswith("2024-03-01")
    assert "<table>" in run._repr_html_()


def test_run_runs_logs_next_and_backfill(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cell(ip, 'daily --schedule "0 7 * * *" --timezone Europe/Paris --start 2024-01-01',
         PIPELINE.replace("return sum(rows)", "print('summing', rows)\n    return sum(rows)"))
    run = ip.run_line_magic("nbflow", "run daily --conf '{\"k\": 1}'")
    assert run.run_type == "manual" and run.state == "success" and run.conf == {"k": 1}
    runs = ip.run_line_magic("nbflow", "backfill daily 2024-01-01 2024-01-03 --executor inline")
    assert [r.state for r in runs] == ["success"] * 3
    assert "backfill__2024-01-03T06:00:00+00:00" in repr(runs)
    capsys.readouterr()
    ip.run_line_magic("nbflow", "runs daily")
    out = capsys.readouterr().out
    assert out.count("backfill__") == 3 and "manual__" in out
    ip.run_line_magic("nbflow", "logs daily total")
    assert "summing [3, 1, 2]" in capsys.readouterr().out
    ip.run_line_magic("nbflow", "next daily -n 2 --after 2024-03-30")
    out = capsys.readouterr().out
    assert "2024-03-30 07:00 CET" in out and "2024-03-31 07:00 CEST" in out


def test_dags_are_found_in_the_kernel_and_in_dags_folder(ip: Any, nbflow_home: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_cell("from nbflow import DAG\nfrom nbflow.operators import EmptyOperator\n"
                "with DAG('plain', timezone='UTC') as plain_dag:\n    EmptyOperator(task_id='only')\n")
    folder = nbflow_home / "dags"
    folder.mkdir()
    (folder / "f.py").write_text("from nbflow import DAG\nfrom nbflow.operators import EmptyOperator\n"
                                 "with DAG('in_folder', timezone='UTC'):\n    EmptyOperator(task_id='x')\n")
    assert ip.run_line_magic("nbflow", "test plain").state == "success"
    assert ip.run_line_magic("nbflow", "test in_folder").state == "success"
    cell(ip, "mine", PIPELINE)
    capsys.readouterr()
    ip.run_line_magic("nbflow", "list")
    out = capsys.readouterr().out
    assert "plain" in out and "in_folder" in out and "mine" in out and "dags_folder" in out


def test_scheduler_start_status_stop(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_line_magic("nbflow", "scheduler status")
    assert "no scheduler runs" in capsys.readouterr().out
    try:
        ip.run_line_magic("nbflow", "scheduler start --executor inline")
        assert "runs in this kernel" in capsys.readouterr().out
        ip.run_line_magic("nbflow", "scheduler status")
        assert "running: True" in capsys.readouterr().out
    finally:
        ip.run_line_magic("nbflow", "scheduler stop")
    assert "stopped" in capsys.readouterr().out


@pytest.mark.parametrize("line, message", [
    ("", "usage: %nbflow"),
    ("explode", "invalid choice"),
    ("test", "required: DAG"),
    ("test nowhere", "no DAG 'nowhere'"),
    ("scheduler go", "invalid choice"),
    ("runs x --limit many", "invalid int"),
    ("run x 'unclosed", "No closing quotation"),
])
def test_bad_nbflow_arguments_are_usage_errors(ip: Any, line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("nbflow", line)


@pytest.mark.parametrize("line, message", [
    ("", "required: DAG_ID"),
    ("x --retries many", "invalid int"),
    ("x --bogus", "unrecognized arguments"),
    ("'bad id!'", "not valid"),
    ("x --schedule '61 * * * *'", "minute"),
    ("x --timezone Mars/Olympus", "Mars/Olympus"),
])
def test_bad_dag_arguments_are_usage_errors_and_run_nothing(ip: Any, line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        ip.run_cell_magic("dag", line, "ran_the_cell = True\n")
    assert "usage: %%dag DAG_ID" in str(info.value) or message in str(info.value)
    assert "ran_the_cell" not in ip.user_ns


def test_bad_run_values_are_usage_errors(ip: Any) -> None:
    cell(ip, "dated --timezone UTC", PIPELINE)
    with pytest.raises(UsageError, match="not-a-date"):
        ip.run_line_magic("nbflow", "test dated --date not-a-date")
    with pytest.raises(UsageError, match="JSON"):
        ip.run_line_magic("nbflow", "run dated --conf '{nope'")
    with pytest.raises(UsageError, match=r"^DAG 'dated': the run's conf has nan at conf\['x'\]"):
        ip.run_line_magic("nbflow", """run dated --conf '{"x": NaN}'""")
    with pytest.raises(UsageError, match=r"^DAG 'dated': the run's conf is a list, not a JSON object"):
        ip.run_line_magic("nbflow", "run dated --conf '[1]'")
    with Store.open() as store:
        assert store.list_runs("dated") == []


def test_an_id_that_is_not_a_python_name_is_still_defined(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cell(ip, "my-report.v2 --timezone UTC", PIPELINE)
    assert "is not a Python name" in capsys.readouterr().out
    assert stored("my-report.v2") is not None
    assert ip.run_line_magic("nbflow", "test my-report.v2").state == "success"


@pytest.mark.parametrize("variable, value, expected", [
    ("NBFLOW_DB_BUSY_TIMEOUT", "nan", "setting 'db_busy_timeout' = 'nan' (from the environment variable "
                                      "NBFLOW_DB_BUSY_TIMEOUT) is unusable: expected a finite number"),
    ("NBFLOW_DATABASE_URL", "postgresql+psycopg://u:s3cret@127.0.0.1:1/db",
     "cannot connect to the store postgresql+psycopg://u:***@127.0.0.1:1/db"),
])
def test_unusable_settings_are_the_command_lines_one_line_not_a_traceback(
        ip: Any, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str) -> None:
    monkeypatch.setenv(variable, value)
    for line in ("runs anything", "logs anything t") if variable == "NBFLOW_DATABASE_URL" else ("list", "runs anything"):
        with pytest.raises(UsageError) as info:
            ip.run_line_magic("nbflow", line)
        assert expected in str(info.value) and "s3cret" not in str(info.value)
    if variable == "NBFLOW_DB_BUSY_TIMEOUT":  # the cell needs the settings for its default time zone
        with pytest.raises(UsageError, match="Nothing was registered") as info:
            ip.run_cell_magic("dag", "broken_settings", PIPELINE)
        assert expected in str(info.value)


FAILING = '''
from nbflow import task

@task
def fine():
    return 1

@task(retries=1, retry_delay=0)
def explode(x):
    raise ValueError(f"bad row {x} in sales.csv")

explode(fine())
'''


def test_a_failed_run_shows_each_failure_with_its_error_try_and_log(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cell(ip, "breaks --timezone UTC", FAILING)
    capsys.readouterr()
    result = ip.run_cell("%nbflow run breaks --executor inline")  # as a user runs it: the result is displayed
    out = capsys.readouterr().out
    run = result.result
    assert run.state == "failed"
    assert "1 success" in out and "1 failed" in out
    assert "explode failed (try 2 of 2): ValueError: bad row 1 in sales.csv" in out
    log = run.task_instances["explode"].log_path
    assert log and f"log: {log}" in out
    html = run._repr_html_()  # what a notebook shows
    assert "ValueError: bad row 1 in sales.csv" in html and "try 2 of 2" in html and log in html


def test_a_run_of_many_tasks_is_summed_up_by_state_not_listed(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cell(ip, "wide --timezone UTC", '''
from nbflow import task

@task
def one(i):
    if i == 7:
        raise KeyError("region")
    return i

for i in range(200):
    one.override(task_id=f"t{i:03d}")(i)
''')
    capsys.readouterr()
    result = ip.run_cell("%nbflow run wide --executor inline")
    out = capsys.readouterr().out
    assert result.result.state == "failed"
    assert "199 success, 1 failed" in out
    assert "t007 failed (try 1 of 1): KeyError: 'region'" in out
    assert "t100" not in out and len(out.splitlines()) < 10
    html = result.result._repr_html_()
    assert "t100" not in html and "199 success" in html
