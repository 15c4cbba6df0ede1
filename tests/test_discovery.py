"""Loading DAG files: good files load, bad files become import errors, nothing stops the rest."""

from __future__ import annotations

import textwrap
from pathlib import Path

from nbflow.discovery import collect, load_file, sync
from nbflow.store import Store

GOOD = '''
from datetime import datetime
from nbflow import DAG
from nbflow.operators import BashOperator

with DAG(dag_id="simple_example", schedule_interval="5 6 * * *", catchup=False,
         default_args={"start_date": datetime(2022, 9, 7)}) as dag:
    BashOperator(task_id="run_bash1", bash_command="echo hello")
'''

DECORATED = '''
from nbflow import dag, task

@dag(timezone="UTC")
def decorated():
    @task
    def one():
        return 1
    one()

decorated()   # not assigned: still found
'''


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_folder_with_good_and_broken_files(tmp_path: Path) -> None:
    write(tmp_path, "good.py", GOOD)
    write(tmp_path, "sub/decorated.py", DECORATED)
    write(tmp_path, "syntax.py", "import nbflow\ndef broken(:\n")
    write(tmp_path, "raises.py", "import nbflow\nraise RuntimeError('cannot reach the warehouse')\n")
    write(tmp_path, "cycle.py", "from nbflow import DAG\nfrom nbflow.operators import EmptyOperator\n"
          "with DAG('cyc'):\n    a = EmptyOperator(task_id='a'); b = EmptyOperator(task_id='b'); a >> b >> a\n")
    write(tmp_path, "helper.py", "X = 1  # mentions no workflow library, so it is not a DAG file\n")
    write(tmp_path, "_private.py", "import nbflow\nraise SystemExit('never loaded')\n")
    bag = collect([tmp_path])
    assert set(bag.dags) == {"simple_example", "decorated"}
    failures = {Path(f).name: v for f, v in bag.failures.items()}
    assert set(failures) == {"syntax.py", "raises.py", "cycle.py"}
    assert failures["syntax.py"].summary.startswith("SyntaxError") and "line 2" in failures["syntax.py"].summary
    assert "cannot reach the warehouse" in failures["raises.py"].traceback
    assert "raises.py" in failures["raises.py"].traceback
    assert "CycleError" in failures["cycle.py"].summary
    assert bag.dags["simple_example"].fileloc == str((tmp_path / "good.py").resolve())


def test_same_file_name_in_two_folders_loads_both(tmp_path: Path) -> None:
    write(tmp_path, "a/etl.py", GOOD)
    write(tmp_path, "b/etl.py", DECORATED)
    assert set(collect([tmp_path]).dags) == {"simple_example", "decorated"}


def test_duplicate_dag_id_across_files_is_an_import_error(tmp_path: Path) -> None:
    write(tmp_path, "one.py", GOOD)
    write(tmp_path, "two.py", GOOD)
    bag = collect([tmp_path])
    assert list(bag.dags) == ["simple_example"]
    assert any("already defined" in f.summary for f in bag.failures.values())


def test_sync_records_and_clears_import_errors(tmp_path: Path, nbflow_home: Path) -> None:
    folder = tmp_path / "dags"
    bad = write(folder, "flaky.py", "import nbflow\nraise ValueError('half written')\n")
    write(folder, "good.py", GOOD)
    with Store.open() as store:
        sync(collect([folder]), store)
        assert [e["fileloc"] for e in store.list_import_errors()] == [str(bad.resolve())]
        assert store.get_dag("simple_example")["schedule"].startswith("5 6 * * *")
        write(folder, "flaky.py", DECORATED)
        sync(collect([folder]), store)
        assert store.list_import_errors() == []
        assert {d["dag_id"] for d in store.list_dags()} == {"simple_example", "decorated"}


def test_classic_file_runs_unchanged(tmp_path: Path, nbflow_home: Path) -> None:
    dags, failure = load_file(write(tmp_path, "classic.py", GOOD))
    assert failure is None
    run = dags[0].test()
    assert run.state == "success" and run.outputs["run_bash1"] == "hello"


def test_missing_path_is_a_clear_failure(tmp_path: Path) -> None:
    bag = collect([tmp_path / "nope.py"])
    assert not bag.dags
    assert [f.summary for f in bag.failures.values()] == ["FileNotFoundError: no such file or folder"]


def test_functions_of_a_dag_file_run_in_worker_processes(tmp_path: Path, nbflow_home: Path) -> None:
    """A DAG file's module cannot be imported by a worker process; its functions travel by value."""
    source = '''
    import os
    from nbflow import dag, task

    FACTOR = 7

    def helper(x):
        return x * FACTOR

    @dag(timezone="UTC")
    def shipped():
        @task
        def compute():
            return [helper(3), os.getpid()]
        compute()

    shipped()
    '''
    dags, failure = load_file(write(tmp_path, "shipped.py", source))
    assert failure is None
    run = dags[0].test(executor="process")
    assert run.state == "success", run.errors
    value, pid = run.outputs["compute"]
    assert value == 21 and pid != __import__("os").getpid()
