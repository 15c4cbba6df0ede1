"""Finding where a DAG is written (a `.py` file's line, a notebook's cell) and the notebook graph's
"source" button that shows it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from nbformat import v4

from nbflow.errors import NotFoundError
from nbflow.jupyter.dagsource import locate, notebook_cell, python_line

SOURCE = textwrap.dedent('''\
    from nbflow import DAG, dag, task

    # "other" is mentioned here first, in a comment that must not count


    with DAG("first", schedule=None):
        @task
        def a():
            return 1
        a()


    @dag(schedule=None)
    def second():
        @task
        def b():
            return 2
        b()


    second()


    @dag(dag_id="third")
    def builder():
        @task
        def c():
            return 3
        c()


    builder()
''')


def test_a_python_dag_is_found_at_its_call_or_decorator() -> None:
    assert python_line(SOURCE, "first") == 6
    assert python_line(SOURCE, "second") == 13
    assert python_line(SOURCE, "third") == 24
    assert python_line(SOURCE, "nowhere") is None


def test_a_notebook_dag_is_found_in_its_cell() -> None:
    cells = [v4.new_markdown_cell("%%dag sales (a markdown cell does not count)"),
             v4.new_code_cell("import nbflow"),
             v4.new_code_cell("%%dag sales --schedule '@daily'\n@task\ndef x(): ..."),
             v4.new_code_cell("from nbflow import DAG\n\nwith DAG('plain'):\n    pass")]
    assert notebook_cell(cells, "sales") == (2, 1)
    assert notebook_cell(cells, "plain") == (3, 3)
    assert notebook_cell(cells, "sale") is None


def test_a_missing_source_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="interactive session"):
        locate(None, "x")
    with pytest.raises(NotFoundError, match="not there any more"):
        locate(str(tmp_path / "gone.py"), "x")


def test_the_graph_toolbars_source_button_shows_the_defining_lines(nbflow_home: Path, tmp_path: Path) -> None:
    from nbflow.engine.discovery import load_file
    from nbflow.jupyter.graph_widget import DagGraph

    file = tmp_path / "three.py"
    file.write_text(SOURCE)
    dags, failure = load_file(file)
    assert failure is None, failure
    third = next(d for d in dags if d.dag_id == "third")
    graph = DagGraph(third, load=False, live=False)
    toolbar = graph.toolbar
    assert toolbar.source_view.layout.display == "none"
    toolbar.source_button.value = True
    shown = toolbar.source_view.value
    assert toolbar.source_view.layout.display is None
    assert f"{file}, line 24" in shown and "@dag(dag_id=&quot;third&quot;)" in shown
    marked = shown.split("background:")[1]
    assert "third" in marked.split("</span></span>")[0]  # the marked line is the defining one
    toolbar.source_button.value = False
    assert toolbar.source_view.layout.display == "none"


def test_the_source_button_of_a_dag_without_a_file_says_why(nbflow_home: Path) -> None:
    from nbflow import DAG
    from nbflow.jupyter.graph_widget import DagGraph

    with DAG("no_file", fileloc="interactive") as d:
        pass
    graph = DagGraph(d, load=False, live=False)
    graph.toolbar.source_button.value = True
    assert "interactive session" in graph.status
