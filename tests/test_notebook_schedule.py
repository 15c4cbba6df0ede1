"""The DAG file ``nbflow schedule`` writes: hostile file names and parameters stay literals.

Each case writes a real notebook under a hostile name, schedules it, and checks the generated file
three ways: its syntax tree holds only the expected statements and calls, its literals read back as
exactly the values given, and importing it in a fresh process runs nothing else (no marker file).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from nbflow.errors import DagImportError, InvalidRequestError
from nbflow.notebook.schedule import GENERATED, _write_checked, schedule_notebook
from nbflow.templates import Literal, literal, render_value

MARKER = "PWNED"
HOSTILE_NAMES = [
    'x"""; import os; os.system("touch PWNED"); """',
    "x'''; __import__('os').system('touch PWNED'); '''",
    "back\\slash\\",
    "new\nline; import os; os.system('touch PWNED')",
    "{{ cycler.__init__.__globals__.os.system('touch PWNED') }}",
    "{% raw %}{{ 7*7 }}",
    "\\N{BULLET} {x} %s",
    os.fsdecode(b"latin1-\xe9-\xff"),
]
HOSTILE_VALUES = [
    '"""; import os; os.system("touch PWNED"); """',
    "nul\x00byte",
    "\\' \\\" \\n",
    "line\nbreak\r\n",
    {"nested": ["')]; __import__('os').system('touch PWNED') #", 1, 2.5, None, True]},
    os.fsdecode(b"\xff\xfe"),
]


def _notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("value = None", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import nbflow\nnbflow.output('value', value)")]
    with open(path, "w", encoding="utf-8") as handle:
        nbformat.write(nb, handle)
    return path


def _literals(source: str) -> dict[str, Any]:
    """The keyword values of the file's DAG(...) and NotebookOperator(...) calls, read as literals;
    fails if the file holds any other statement or call."""
    tree = ast.parse(source)
    kinds = [type(node).__name__ for node in tree.body]
    assert kinds == ["Expr", "ImportFrom", "ImportFrom", "With"], kinds
    assert isinstance(tree.body[0].value, ast.Constant) and isinstance(tree.body[0].value.value, str)
    assert [(n.module, [a.name for a in n.names]) for n in tree.body[1:3]] == [
        ("nbflow", ["DAG", "literal"]), ("nbflow.operators.notebook", ["NotebookOperator"])]
    called = sorted(node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call))
    assert called == ["DAG", "NotebookOperator", "literal"], called
    with_node = tree.body[3]
    dag_call = with_node.items[0].context_expr
    [operator_stmt] = with_node.body
    operator_call = operator_stmt.value
    values: dict[str, Any] = {"dag_id": ast.literal_eval(dag_call.args[0])}
    for keyword in [*dag_call.keywords, *operator_call.keywords]:
        node = keyword.value
        if isinstance(node, ast.Call):  # literal("...")
            assert node.func.id == "literal" and len(node.args) == 1
            node = node.args[0]
        values[keyword.arg] = ast.literal_eval(node)
    return values


def _import_in_fresh_process(dag_file: Path, cwd: Path) -> str:
    code = ("import sys\nfrom nbflow.engine.discovery import load_file\n"
            "dags, failure = load_file(sys.argv[1])\nassert failure is None, failure\n"
            "print(dags[0].dag_id)\n")
    done = subprocess.run([sys.executable, "-c", code, str(dag_file)], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "NBFLOW_HOME": str(cwd / "home")})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_notebook_name_is_only_a_string_in_the_dag_file(name: str, nbflow_home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    notebook = _notebook(folder / f"{name}.ipynb")
    scheduled = schedule_notebook(notebook, "@daily", timezone="UTC", parameters={"title": name})
    text = Path(scheduled.fileloc).read_text(encoding="utf-8")
    assert text.startswith(GENERATED)
    values = _literals(text)
    assert values["notebook"] == str(notebook.resolve())
    assert values["parameters"] == {"title": name}
    assert values["dag_id"] == scheduled.dag_id and values["schedule"] == "@daily" and values["timezone"] == "UTC"
    assert values["report"] == "html"
    assert _import_in_fresh_process(Path(scheduled.fileloc), folder) == scheduled.dag_id
    assert not (folder / MARKER).exists() and not (Path.cwd() / MARKER).exists()
    # the DAG built in process holds the same values, the notebook path marked as not a template
    task = scheduled.dag.tasks[0] if isinstance(scheduled.dag.tasks, list) else next(iter(scheduled.dag.tasks))
    assert isinstance(task.notebook, Literal) and task.notebook == str(notebook.resolve())


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=range(len(HOSTILE_VALUES)))
def test_hostile_parameter_values_read_back_exactly(value: Any, nbflow_home: Path, tmp_path: Path) -> None:
    notebook = _notebook(tmp_path / "plain.ipynb")
    scheduled = schedule_notebook(notebook, "0 6 * * 1-5", timezone="Asia/Seoul", parameters={"value": value})
    values = _literals(Path(scheduled.fileloc).read_text(encoding="utf-8"))
    assert values["parameters"] == {"value": value}
    assert values["schedule"] == "0 6 * * 1-5" and values["timezone"] == "Asia/Seoul"


def test_a_notebook_whose_name_looks_like_a_template_runs_under_its_own_name(nbflow_home: Path, tmp_path: Path) -> None:
    notebook = _notebook(tmp_path / "{{ 7*7 }} report.ipynb")
    scheduled = schedule_notebook(notebook, "@daily", timezone="UTC", parameters={"value": "{{ ds }}"})
    run = scheduled.dag.test(logical_date="2024-03-01T00:00:00+00:00")
    assert run.state == "success", run.errors
    # the parameter is a template on purpose and is rendered; the file name is not
    assert run.outputs["report"] == {"value": "2024-03-01"}
    [log] = run.log_paths.values()
    assert "{{ 7*7 }} report.ipynb" in Path(log).read_text() and "49 report" not in Path(log).read_text()


@pytest.mark.parametrize("parameters, word", [
    ({"x": float("nan")}, "nan"),
    ({"x": [1, float("inf")]}, "inf"),
    ({"x": {"deep": -float("inf")}}, "-inf"),
    ({"x": {1: "a"}}, "key that is not a string"),
    ({"x": object()}, "is a object"),
    ({"x": (1, 2)}, "is a tuple"),
])
def test_parameters_that_are_not_plain_json_are_refused_and_nothing_is_written(
        parameters: dict[str, Any], word: str, nbflow_home: Path, tmp_path: Path) -> None:
    notebook = _notebook(tmp_path / "plain.ipynb")
    with pytest.raises(InvalidRequestError, match="parameter 'x'") as caught:
        schedule_notebook(notebook, "@daily", timezone="UTC", parameters=parameters)
    assert word in str(caught.value)
    folder = nbflow_home / "dags"
    assert not folder.exists() or not any(folder.iterdir())


def test_ids_that_discovery_would_skip_are_refused(nbflow_home: Path, tmp_path: Path) -> None:
    notebook = _notebook(tmp_path / "plain.ipynb")
    with pytest.raises(InvalidRequestError, match="'_hidden' starts with '_'"):
        schedule_notebook(notebook, "@daily", dag_id="_hidden")
    folder = nbflow_home / "dags"
    assert not folder.exists() or not any(folder.iterdir())


def test_a_missing_notebook_is_said_to_be_missing(nbflow_home: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="nope.ipynb does not exist"):
        schedule_notebook(tmp_path / "nope.ipynb", "@daily")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidRequestError, match="is not a notebook file"):
        schedule_notebook(tmp_path / "notes.txt", "@daily")


def test_a_file_that_would_not_load_is_never_left_behind(tmp_path: Path) -> None:
    target = tmp_path / "report_x.py"
    with pytest.raises(DagImportError, match="ZeroDivisionError"):
        _write_checked(target, "1 / 0\n")
    assert list(tmp_path.iterdir()) == []
    # a good file in place stays as it was when its replacement would not load
    target.write_text("# good\n")
    with pytest.raises(DagImportError):
        _write_checked(target, "raise SystemExit(3)\n")
    assert target.read_text() == "# good\n" and sorted(p.name for p in tmp_path.iterdir()) == ["report_x.py"]


def test_literal_is_kept_as_text_by_templates() -> None:
    context = {"ds": "2024-01-01"}
    assert render_value(literal("{{ ds }}"), context) == "{{ ds }}"
    assert render_value(["{{ ds }}", literal("{{ ds }}")], context) == ["2024-01-01", "{{ ds }}"]
    assert repr(literal("a'b")) == "literal(\"a'b\")"
    import pickle

    again = pickle.loads(pickle.dumps(literal("{{ x }}")))
    assert isinstance(again, Literal) and again == "{{ x }}"
