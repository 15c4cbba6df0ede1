"""HTML reports of executed notebooks: with their code, or outputs only (``report_hide_code``)."""

from __future__ import annotations

import pytest
from nbformat import v4

from nbflow import DAG
from nbflow.errors import InvalidOptionError
from nbflow.notebook.report import notebook_html, write_report
from nbflow.operators import NotebookOperator


def executed_notebook() -> object:
    nb = v4.new_notebook()
    cell = v4.new_code_cell("total = secret_formula(21)\nprint(total)", execution_count=1)
    cell.outputs = [v4.new_output("stream", name="stdout", text="the total is 42\n")]
    nb.cells = [v4.new_markdown_cell("# Daily numbers"), cell]
    return nb


def test_a_report_shows_code_unless_told_to_hide_it(tmp_path) -> None:
    nb = executed_notebook()
    full = notebook_html(nb)
    assert "secret_formula" in full and "the total is 42" in full and "Daily numbers" in full
    bare = notebook_html(nb, hide_code=True)
    assert "secret_formula" not in bare and "In&nbsp;[1]" not in bare and "In [1]" not in bare
    assert "the total is 42" in bare and "Daily numbers" in bare
    path = write_report(nb, str(tmp_path / "out.ipynb"), "html", hide_code=True)
    text = (tmp_path / "out.html").read_text(encoding="utf-8")
    assert path.endswith("out.html") and "secret_formula" not in text and "the total is 42" in text


def test_report_hide_code_takes_a_bool_and_nothing_else() -> None:
    with DAG("hide_code_option", schedule=None):
        task = NotebookOperator(task_id="nb", notebook="report.ipynb", report="html", report_hide_code=True)
        assert task.report_hide_code is True
        with pytest.raises(InvalidOptionError, match="report_hide_code='yes'.*True.*False") as caught:
            NotebookOperator(task_id="bad", notebook="report.ipynb", report="html", report_hide_code="yes")
    assert "hide_code_option" in str(caught.value) and "bad" in str(caught.value)
