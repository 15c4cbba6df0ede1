"""Notebooks as tasks, on real kernels through papermill: parameters, outputs, failures, reports,
progress, timeouts and the warm kernel pool."""

from __future__ import annotations

import pickle
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from nbflow import DAG, task
from nbflow.errors import NotebookCellError, NotebookNotFoundError, NotebookTimeoutError
from nbflow.notebook import KernelPool, run_notebook
from nbflow.notebook.pool import default_pool
from nbflow.operators import NotebookOperator
from nbflow.engine.runs import run_dag
from nbflow.settings import load_settings

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def make_notebook(path: Path, *cells: str, parameters: str | None = None, tag: bool = True) -> str:
    """A notebook of code cells; ``parameters`` becomes the first cell, tagged unless told not."""
    nb = v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    if parameters is not None:
        cell = v4.new_code_cell(parameters)
        if tag:
            cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells.append(v4.new_markdown_cell("A notebook built by the tests."))
    nb.cells.extend(v4.new_code_cell(source) for source in cells)
    nbformat.write(nb, path)
    return str(path)


@pytest.fixture
def settings(nbflow_home: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NBFLOW_DATABASE_URL", sqlite_url)
    return load_settings()


@pytest.fixture(autouse=True)
def warm_kernels() -> None:
    """Tests share the process's pool: what they test is the notebook, not a kernel start."""
    default_pool().warm("python3")


TYPED = {
    "count": 3, "name": "café \"quoted\"\n", "ratio": 0.5, "flag": True, "nothing": None,
    "items": [1, "two", [3]], "mapping": {"a": {"b": [1, 2]}},
    "when": datetime(2024, 3, 5, 6, 0, tzinfo=UTC), "pair": (1, "x"), "tags": {"a", "b"},
}
CHECK_TYPES = """
import pickle
with open('seen.pickle', 'wb') as handle:
    pickle.dump({k: globals()[k] for k in %r}, handle)
print("stream line from a cell")
import nbflow
nbflow.output("rows", [count, count * 2])
nbflow.output("when", when)
nbflow.output("name", name)
""" % sorted(TYPED)


def test_typed_parameters_outputs_downstream_and_log(settings, tmp_path: Path) -> None:
    path = make_notebook(tmp_path / "typed.ipynb", CHECK_TYPES, "print('cell two')",
                         parameters="count = 0\nname = ''\nwhen = None")
    seen_by: dict[str, list[int]] = {}

    with DAG("nbdag", timezone="UTC") as d:
        @task
        def upstream():
            return TYPED["items"]

        @task
        def downstream(rows):
            seen_by["downstream"] = rows
            return sum(rows)

        nb = NotebookOperator(task_id="nb", notebook=path,
                              parameters={**TYPED, "items": upstream(), "label": "{{ ds }}"})
        downstream(nb.output["rows"])

    run = run_dag(d, settings=settings, executor="thread", logical_date="2024-03-05")
    assert run.state == "success", run.errors
    assert run.outputs["nb"] == {"rows": [3, 6], "when": TYPED["when"], "name": TYPED["name"]}
    assert run.outputs["downstream"] == 9 and seen_by["downstream"] == [3, 6]
    with open(tmp_path / "seen.pickle", "rb") as handle:
        seen = pickle.load(handle)
    assert seen == TYPED
    assert {k: type(v) for k, v in seen.items()} == {k: type(v) for k, v in TYPED.items()}

    log = Path(run.log_paths["nb"]).read_text()
    assert "stream line from a cell" in log and "cell two" in log
    assert re.search(r"nbflow: cell \d+/\d+ done \(\d+\.\d s\)", log)
    output_path = re.search(r"nbflow: output notebook (\S+)", log).group(1)
    expected = settings.artifacts_folder / "nbdag" / re.sub(r"[^A-Za-z0-9_.+-]", "_", run.run_id) / "nb" / "typed.ipynb"
    assert Path(output_path) == expected and expected.exists()
    executed = nbformat.read(expected, as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    from nbflow.notebook.progress import read_progress

    progress = read_progress(str(expected))
    code_cells = sum(c.cell_type == "code" for c in executed.cells)
    assert progress is not None and progress["cell"] == progress["cells"] == code_cells
    assert progress["elapsed"] > 0


def test_untagged_notebook_gets_parameters_at_the_top(tmp_path: Path) -> None:
    path = make_notebook(tmp_path / "plain.ipynb", "import nbflow\nnbflow.output('x', x * 2)",
                         parameters="x = 1", tag=False)
    result = run_notebook(path, parameters={"x": 21}, output_path=tmp_path / "out" / "plain.ipynb")
    # the untagged cell runs after the injected one and sets x back
    assert result.outputs == {"x": 2}
    bare = make_notebook(tmp_path / "bare.ipynb", "import nbflow\nnbflow.output('x', x * 2)")
    assert run_notebook(bare, parameters={"x": 21}, output_path=tmp_path / "out2" / "b.ipynb").outputs == {"x": 42}


def test_failing_cell_fails_the_task_naming_the_cell(settings, tmp_path: Path) -> None:
    path = make_notebook(tmp_path / "bad.ipynb", "a = 1", "b = 2\nc = 3\nd = 4\ne = 5\nraise ValueError('broken ' + str(a))",
                         parameters="a = 0")
    with DAG("baddag", timezone="UTC") as d:
        NotebookOperator(task_id="nb", notebook=path)
    run = run_dag(d, settings=settings, executor="thread")
    assert run.task_states["nb"] == "failed"
    error = run.errors["nb"]
    # the cell as the output notebook and papermill's banner number it, and the line that raised
    assert "cell In [3] raised ValueError: broken 1" in error
    message = error[error.index("NotebookCellError: "):]
    assert "line 5: raise ValueError('broken ' + str(a))" in message and "b = 2" not in message
    log = Path(run.log_paths["nb"]).read_text()
    output_path = re.search(r"nbflow: output notebook (\S+)", log).group(1)
    assert output_path in error
    kept = nbformat.read(output_path, as_version=4)
    assert any(o.get("ename") == "ValueError" for c in kept.cells for o in c.get("outputs", []))


def test_cell_error_carries_its_fields_and_pickles(tmp_path: Path) -> None:
    path = make_notebook(tmp_path / "bad.ipynb", "1 / 0")
    with pytest.raises(NotebookCellError) as caught:
        run_notebook(path, output_path=tmp_path / "o" / "bad.ipynb")
    error = caught.value
    assert (error.cell, error.ename) == (1, "ZeroDivisionError")
    assert isinstance(error.__cause__, Exception) and type(error.__cause__).__name__ == "PapermillExecutionError"
    clone = pickle.loads(pickle.dumps(error))
    assert str(clone) == str(error) and clone.output_path == error.output_path


def test_html_report(tmp_path: Path) -> None:
    path = make_notebook(tmp_path / "r.ipynb", "print('in the report: ' + str(6 * 7))")
    result = run_notebook(path, output_path=tmp_path / "out" / "r.ipynb", report="html")
    assert result.report_path == str(tmp_path / "out" / "r.html")
    html = Path(result.report_path).read_text()
    assert "in the report: 42" in html
    assert "_nbflow_os.chdir" not in html  # nbflow's set-up is not part of the report
    assert "_nbflow_os.chdir" not in Path(result.output_path).read_text()  # nor of the executed notebook


def test_the_executed_notebook_is_the_one_papermill_writes(tmp_path: Path) -> None:
    import papermill

    path = make_notebook(tmp_path / "p.ipynb", "y = x * 2", "print(y)", parameters="x = 1")
    ours = run_notebook(path, parameters={"x": 21}, output_path=tmp_path / "ours" / "p.ipynb")
    from nbflow.notebook.pool import call_in_own_loop

    # in a thread of its own, on a loop closed after it: papermill leaves the thread it runs in without
    # an event loop, and a loop left open leaks its sockets
    with ThreadPoolExecutor(1) as pool:
        pool.submit(call_in_own_loop, papermill.execute_notebook, path, str(tmp_path / "theirs.ipynb"),
                    parameters={"x": 21}, progress_bar=False).result()
    mine, theirs = (nbformat.read(p, as_version=4) for p in (ours.output_path, tmp_path / "theirs.ipynb"))
    assert [c.source for c in mine.cells] == [c.source for c in theirs.cells]
    assert [c.get("execution_count") for c in mine.cells] == [c.get("execution_count") for c in theirs.cells] \
        == [1, 2, None, 3, 4]  # nbflow's own set-up takes no count
    assert mine.cells[-1].outputs[0]["text"] == "42\n"


def test_cell_timeout_and_execution_timeout(settings, tmp_path: Path) -> None:
    path = make_notebook(tmp_path / "slow.ipynb", "import time", "time.sleep(30)")
    with pytest.raises(NotebookTimeoutError) as caught:
        run_notebook(path, output_path=tmp_path / "o" / "slow.ipynb", cell_timeout=0.5)
    assert caught.value.setting == "cell_timeout" and caught.value.cell == 2
    assert Path(caught.value.output_path).exists()

    with DAG("slowdag", timezone="UTC") as d:
        NotebookOperator(task_id="nb", notebook=path, execution_timeout=1.5)
    run = run_dag(d, settings=settings, executor="thread")
    assert run.task_states["nb"] == "failed" and "timeout" in run.errors["nb"]


def test_missing_notebook_is_a_clear_error(settings, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.ipynb"
    with pytest.raises(NotebookNotFoundError, match="nowhere.ipynb"):
        run_notebook(missing)
    with DAG("missingdag", timezone="UTC") as d:
        NotebookOperator(task_id="nb", notebook=str(missing))
    run = run_dag(d, settings=settings, executor="thread")
    assert run.task_states["nb"] == "failed" and str(missing) in run.errors["nb"]


def test_task_notebook_decorator(settings, tmp_path: Path) -> None:
    path = make_notebook(tmp_path / "deco.ipynb", "import nbflow\nnbflow.output('total', sum(rows) + offset)",
                         parameters="rows = []\noffset = 0")

    with DAG("decodag", timezone="UTC") as d:
        @task
        def extract():
            return [1, 2, 3]

        @task.notebook(notebook=path, report="html")
        def report(rows, ds=None):
            return {"rows": rows, "offset": 100 if ds else 0}

        report(extract())

    run = run_dag(d, settings=settings, executor="thread")
    assert run.state == "success", run.errors
    assert run.outputs["report"] == {"total": 106}
    assert "nbflow: report " in Path(run.log_paths["report"]).read_text()


def test_warm_pool_gives_the_same_results_as_a_cold_kernel(tmp_path: Path) -> None:
    path = make_notebook(tmp_path / "w.ipynb", "import os, nbflow\nnbflow.output('v', [v, os.getcwd()])", parameters="v = 0")
    pool = KernelPool(size=1)
    try:
        pool.warm("python3", wait=True)
        warm = run_notebook(path, parameters={"v": 7}, output_path=tmp_path / "a" / "w.ipynb", pool=pool)
        cold = run_notebook(path, parameters={"v": 7}, output_path=tmp_path / "b" / "w.ipynb", pool=None)
    finally:
        pool.shutdown()
    assert warm.kernel == "warm" and cold.kernel == "cold"
    assert warm.outputs == cold.outputs == {"v": [7, str(tmp_path)]}
    assert warm.cells == cold.cells


def test_a_notebook_runs_without_writing_ipythons_history_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels running tasks side by side would lock each other out of the one history file of the
    user's IPython profile; the run's own history is still there, from memory."""
    ipython_dir = tmp_path / "ipython"
    monkeypatch.setenv("IPYTHONDIR", str(ipython_dir))  # the kernel started below inherits it
    path = make_notebook(tmp_path / "h.ipynb", "x = 40", "import nbflow\nnbflow.output('first', In[1])")

    result = run_notebook(path, output_path=tmp_path / "out" / "h.ipynb", pool=None)

    assert result.outputs == {"first": "x = 40"}
    assert ipython_dir.is_dir()  # the kernel did use this profile folder
    assert not list(ipython_dir.rglob("history.sqlite"))


def test_reuse_kernel_resets_variables(tmp_path: Path) -> None:
    path = make_notebook(tmp_path / "re.ipynb", "import nbflow\nnbflow.output('had', 'left' in globals())\nleft = 1")
    pool = KernelPool(size=1)
    try:
        first = run_notebook(path, output_path=tmp_path / "1" / "re.ipynb", pool=pool, reuse_kernel=True)
        second = run_notebook(path, output_path=tmp_path / "2" / "re.ipynb", pool=pool, reuse_kernel=True)
    finally:
        pool.shutdown()
    assert first.kernel in ("warm", "cold") and second.kernel == "reused"
    assert first.outputs == second.outputs == {"had": False}


def test_output_outside_nbflow_keeps_values_here() -> None:
    from nbflow.notebook import outputs

    outputs.output("answer", 42)
    assert outputs.recorded["answer"] == 42
    with pytest.raises(TypeError, match="cannot be pickled"):
        outputs.output("lock", __import__("threading").Lock())


def test_a_missing_kernel_keeps_the_notebook_and_names_the_installed_ones(tmp_path: Path) -> None:
    from nbflow.errors import NotebookKernelError

    nb = v4.new_notebook(metadata={"kernelspec": {"name": "no_such_kernel", "display_name": "X", "language": "python"}})
    nb.cells = [v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}), v4.new_code_cell("print(x)")]
    nbformat.write(nb, tmp_path / "k.ipynb")
    with pytest.raises(NotebookKernelError) as caught:
        run_notebook(tmp_path / "k.ipynb", parameters={"x": 5}, output_path=tmp_path / "out" / "k.ipynb", pool=None)
    assert "no kernel named 'no_such_kernel'" in str(caught.value) and "python3" in caught.value.installed
    kept = nbformat.read(tmp_path / "out" / "k.ipynb", as_version=4)  # as papermill keeps it
    assert any("injected-parameters" in c.metadata.get("tags", []) and "x = 5" in c.source for c in kept.cells)


def test_a_notebook_without_a_kernel_runs_on_python3_and_says_so(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    nb = v4.new_notebook()
    nb.cells = [v4.new_code_cell("import nbflow\nnbflow.output('v', 6 * 7)")]
    nbformat.write(nb, tmp_path / "bare.ipynb")
    result = run_notebook(tmp_path / "bare.ipynb", output_path=tmp_path / "out" / "bare.ipynb")
    assert result.outputs == {"v": 42}
    assert "names no kernel" in capfd.readouterr().err


@pytest.mark.parametrize("source, words", [
    ("%nosuchmagic", "cell In [1] raised UsageError: Line magic function `%nosuchmagic` not found."),
    ("# what it does\n# more words\nx = 1\nraise ValueError('bad x')", "raised ValueError: bad x\n    line 4: raise ValueError('bad x')"),
])
def test_a_failing_cell_is_named_as_papermill_does_with_its_failing_line(tmp_path: Path, source: str, words: str) -> None:
    path = make_notebook(tmp_path / "f.ipynb", source)
    with pytest.raises(NotebookCellError) as caught:
        run_notebook(path, output_path=tmp_path / "out" / "f.ipynb", pool=None)
    assert words in str(caught.value)
