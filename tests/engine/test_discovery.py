"""Loading DAG files: good files load, bad files become import errors, nothing stops the rest."""

from __future__ import annotations

import textwrap
from pathlib import Path

from nbflow.engine.discovery import collect, load_file
from nbflow.engine.sync import sync
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
    missing = str((tmp_path / "nope.py").resolve())
    assert [f.summary for f in bag.failures.values()] == [
        f"no such file or folder: {missing}; create it, or give the path of an existing one "
        "(dags_folder is set in nbflow.toml or NBFLOW_DAGS_FOLDER)"]


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


# -- notebooks ---------------------------------------------------------------------------------------


def write_notebook(path: Path, cells: list[object]) -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))
    return path


def test_notebook_runs_only_its_dag_cells_and_tagged_cells(tmp_path: Path, nbflow_home: Path) -> None:
    from nbformat.v4 import new_code_cell, new_markdown_cell

    marker = tmp_path / "exploration-ran"
    path = write_notebook(tmp_path / "dags" / "sales.ipynb", [
        new_markdown_cell("# Sales"),
        new_code_cell("%load_ext nbflow"),
        new_code_cell("%matplotlib inline\nimport math\n\ndef double(x):\n    return 2 * x\n",
                      metadata={"tags": ["nbflow"]}),
        new_code_cell(f"open({str(marker)!r}, 'w').write('x')\nraise RuntimeError('exploration ran')"),
        new_code_cell('%%dag sales --schedule "0 6 * * *" --timezone Asia/Seoul --start 2024-01-01 --tags demo\n'
                      "from nbflow import task\n\n@task\ndef extract():\n    return [1, 2, 3]\n\n"
                      "@task\ndef total(rows):\n    return double(sum(rows)) + math.floor(0.5)\n\ntotal(extract())\n"),
        new_code_cell("sales.test()"),
    ])
    bag = collect([tmp_path / "dags"])
    assert not bag.failures
    assert list(bag.dags) == ["sales"]
    dag = bag.dags["sales"]
    assert dag.fileloc == str(path.resolve())
    assert dag.task_ids == ["extract", "total"] and dag.tags == ["demo"]
    assert dag.timetable.description.startswith("0 6 * * *")
    assert not marker.exists()
    run = dag.test(logical_date="2024-02-01")
    assert run.state == "success" and run.outputs["total"] == 12
    run = dag.test(logical_date="2024-02-02", executor="process")  # helpers travel by value
    assert run.state == "success" and run.outputs["total"] == 12, run.errors
    with Store.open() as store:
        sync(bag, store)
        row = store.get_dag("sales")
    assert row["source_kind"] == "notebook" and row["fileloc"] == str(path.resolve())


def test_notebook_with_a_broken_dag_cell_is_an_import_error_naming_the_cell(tmp_path: Path) -> None:
    from nbformat.v4 import new_code_cell, new_markdown_cell

    write_notebook(tmp_path / "broken.ipynb", [
        new_markdown_cell("intro"),
        new_code_cell("import nbflow", metadata={"tags": ["nbflow"]}),
        new_code_cell("%%dag broken\nfrom nbflow import task\ndef oops(:\n    pass\n"),
    ])
    write_notebook(tmp_path / "raises.ipynb", [
        new_code_cell("def helper():\n    raise ValueError('no warehouse')\n", metadata={"tags": ["nbflow"]}),
        new_code_cell("%%dag raises\nhelper()\n"),
    ])
    write_notebook(tmp_path / "badline.ipynb", [new_code_cell("%%dag bad --retries many\nx = 1\n")])
    write_notebook(tmp_path / "good.ipynb", [new_code_cell(
        "%%dag good\nfrom nbflow.operators import EmptyOperator\nEmptyOperator(task_id='e')\n")])
    bag = collect([tmp_path])
    assert list(bag.dags) == ["good"]
    failures = {Path(f).name: v for f, v in bag.failures.items()}
    assert set(failures) == {"broken.ipynb", "raises.ipynb", "badline.ipynb"}
    broken = failures["broken.ipynb"]
    assert broken.summary.startswith("broken.ipynb, cell 3 (%%dag cell): SyntaxError")
    assert "line 3" in broken.summary  # the line in the cell, counting the %%dag line
    raises = failures["raises.ipynb"].summary
    assert raises == "raises.ipynb, cell 2 (%%dag cell): ValueError: no warehouse"
    assert "no warehouse" in failures["raises.ipynb"].traceback and "[cell 1]" in failures["raises.ipynb"].traceback
    assert "invalid int value: 'many'" in failures["badline.ipynb"].summary


def test_notebooks_without_a_dag_cell_are_not_dag_files(tmp_path: Path) -> None:
    from nbformat.v4 import new_code_cell

    write_notebook(tmp_path / "explore.ipynb", [new_code_cell("import nbflow\nraise SystemExit('never')")])
    write_notebook(tmp_path / ".ipynb_checkpoints" / "x-checkpoint.ipynb", [new_code_cell("%%dag x\n")])
    bag = collect([tmp_path])
    assert not bag.files and not bag.dags and not bag.failures


def test_not_a_notebook_is_an_import_error(tmp_path: Path) -> None:
    (tmp_path / "junk.ipynb").write_text("%%dag but not json")
    bag = collect([tmp_path])
    assert [f.summary.split(":")[0] for f in bag.failures.values()] == ["JSONDecodeError"]


def test_symbolic_link_loops_are_import_errors_and_the_other_dags_load(tmp_path: Path, nbflow_home: Path) -> None:
    folder = tmp_path / "dags"
    write(folder, "good.py", GOOD)
    write(tmp_path, "elsewhere/decorated.py", DECORATED)
    (folder / "loop").symlink_to("loop")              # ln -s loop loop
    (folder / "loop.py").symlink_to("loop.py")        # the same, named like a DAG file
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to("..")           # a folder link back to the folder holding it
    (folder / "gone.py").symlink_to("deleted.py")      # a DAG file link to nothing
    (folder / "linked").symlink_to(tmp_path / "elsewhere")   # a link to a real folder is followed
    bag = collect([folder])
    assert set(bag.dags) == {"simple_example", "decorated"}
    summaries = {f.fileloc: f.summary for f in bag.failures.values()}
    assert set(summaries) == {str(folder / "loop"), str(folder / "loop.py"), str(folder / "sub" / "up"),
                              str(folder / "gone.py")}
    assert summaries[str(folder / "loop")].startswith("symbolic link loop: the link leads back to itself")
    assert summaries[str(folder / "sub" / "up")].startswith(
        f"symbolic link loop: the link leads back to {folder.resolve()}, a folder that contains it")
    assert summaries[str(folder / "gone.py")].startswith("broken symbolic link: it points to 'deleted.py'")
    with Store.open() as store:
        sync(bag, store)
        assert sorted(e["fileloc"] for e in store.list_import_errors()) == sorted(summaries)
    assert [f.summary[:18] for f in collect([folder / "loop.py"]).failures.values()] == ["symbolic link loop"]


def test_a_file_reached_through_two_links_loads_once(tmp_path: Path) -> None:
    write(tmp_path, "shared/decorated.py", DECORATED)
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "a").symlink_to(tmp_path / "shared")
    (folder / "b").symlink_to(tmp_path / "shared")
    bag = collect([folder])
    assert list(bag.dags) == ["decorated"] and not bag.failures
    assert bag.files == [str((tmp_path / "shared" / "decorated.py").resolve())]
    (folder / "c.py").symlink_to(tmp_path / "shared" / "decorated.py")
    assert list(collect([folder]).dags) == ["decorated"] and not collect([folder]).failures
