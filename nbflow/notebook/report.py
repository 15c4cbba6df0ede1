"""HTML reports of executed notebooks, through nbconvert."""

from __future__ import annotations

import os
from typing import Any

FORMATS = ("html",)


def write_report(nb: Any, output_path: str, report: str) -> str:
    """Write ``nb`` as ``report`` next to ``output_path``; returns the report's path."""
    if report not in FORMATS:
        raise ValueError(f"report={report!r} is not a report format nbflow writes; use one of {FORMATS}")
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    path = os.path.splitext(output_path)[0] + ".html"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(body)
    return path
