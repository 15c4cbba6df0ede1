"""HTML reports of executed notebooks, through nbconvert."""

from __future__ import annotations

import os
from typing import Any

FORMATS = ("html",)


def notebook_html(nb: Any, *, hide_code: bool = False) -> str:
    """A notebook (a node, or the path of an ``.ipynb``) as one self-contained HTML page;
    ``hide_code`` leaves out every cell's code and prompts and keeps the outputs and text, as
    nbconvert's ``--no-input`` does (a report for readers who do not read code)."""
    from nbconvert import HTMLExporter

    import copy

    import nbformat

    from nbflow.notebook.params import BOOTSTRAP_TAG

    nb = nbformat.read(os.fspath(nb), as_version=4) if isinstance(nb, (str, os.PathLike)) else copy.deepcopy(nb)
    # nbflow's own bootstrap cell (working directory, where outputs go) is plumbing, not the
    # report; papermill's cell of injected parameters stays: it says what this run was given
    nb.cells = [c for c in nb.cells if BOOTSTRAP_TAG not in c.get("metadata", {}).get("tags", [])]
    exporter = (HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
                if hide_code else HTMLExporter())
    body, _ = exporter.from_notebook_node(nb)
    return body


def write_report(nb: Any, output_path: str, report: str, *, hide_code: bool = False) -> str:
    """Write ``nb`` as ``report`` next to ``output_path`` (see :func:`notebook_html` for
    ``hide_code``); returns the report's path."""
    if report not in FORMATS:
        raise ValueError(f"report={report!r} is not a report format nbflow writes; use one of {FORMATS}")
    body = notebook_html(nb, hide_code=hide_code)
    path = os.path.splitext(output_path)[0] + ".html"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(body)
    return path
