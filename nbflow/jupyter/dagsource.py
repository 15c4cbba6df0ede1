"""Where a DAG is written: the ``.py`` file and line, or the notebook and cell, that define it.

Every DAG view has a "source" button; this module answers it for the server's REST API and for the
notebook graph. A DAG keeps only its file (``fileloc``), so the place inside the file is found by
reading it: in a ``.py`` file the ``DAG("id"...)`` call, the ``@dag``-decorated function or, failing
both, the first line naming the id; in a notebook the ``%%dag id`` cell, else the first code cell
naming the id. Nothing is imported or run.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nbflow.errors import NotFoundError

#: at most this many characters of source in one answer (a DAG file bigger than this is cut)
MAX_SOURCE_CHARS = 1_000_000


@dataclass(frozen=True)
class DagSource:
    """A DAG's definition: ``kind`` is ``"python"`` or ``"notebook"``; ``line`` is 1-based within
    ``text`` (the whole ``.py`` file, or the defining cell's source); ``cell`` the 0-based index of
    that cell in the notebook (None for a ``.py`` file)."""

    dag_id: str
    path: str
    kind: str
    line: int
    cell: int | None
    text: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _call_names(node: ast.AST) -> str:
    """``DAG`` for ``DAG(...)``, ``nbflow.DAG`` → ``DAG``, ``dag`` for ``@dag(...)``."""
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Attribute):
        return target.attr
    return target.id if isinstance(target, ast.Name) else ""


def _literal_id(call: ast.Call) -> str | None:
    for keyword in call.keywords:
        if keyword.arg == "dag_id" and isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
            return keyword.value.value
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def python_line(text: str, dag_id: str) -> int | None:
    """The 1-based line of ``text`` that defines ``dag_id``, or None when nothing there names it."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        tree = None
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _call_names(node) == "DAG" and _literal_id(node) == dag_id:
                return node.lineno
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for decorator in node.decorator_list:
                    if _call_names(decorator) != "dag":
                        continue
                    given = _literal_id(decorator) if isinstance(decorator, ast.Call) else None
                    if given == dag_id or (given is None and node.name == dag_id):
                        return decorator.lineno
    quoted = re.compile(rf"""(['"]){re.escape(dag_id)}\1""")
    for number, line in enumerate(text.splitlines(), start=1):
        if quoted.search(line):
            return number
    return None


def _cell_text(cell: dict[str, Any]) -> str:
    source = cell.get("source") or ""
    return "".join(source) if isinstance(source, list) else str(source)


def notebook_cell(cells: list[dict[str, Any]], dag_id: str) -> tuple[int, int] | None:
    """(0-based cell index, 1-based line in it) of the cell that defines ``dag_id``, or None."""
    magic = re.compile(rf"^\s*%%dag\s+{re.escape(dag_id)}(\s|$)")
    code = [(index, cell) for index, cell in enumerate(cells) if cell.get("cell_type") == "code"]
    for index, cell in code:
        if magic.match(_cell_text(cell)):
            return index, 1
    for index, cell in code:
        text = _cell_text(cell)
        if text.lstrip().startswith("%%"):
            continue
        line = python_line(text, dag_id)
        if line is not None:
            return index, line
    return None


def locate(fileloc: str | None, dag_id: str) -> DagSource:
    """The source of ``dag_id`` defined in ``fileloc``; :class:`NotFoundError` when the DAG has no
    file (defined interactively) or the file is gone."""
    if not fileloc or not fileloc.endswith((".py", ".ipynb")):
        raise NotFoundError(f"DAG '{dag_id}' has no source file (it was defined in an interactive session); "
                            "define it in a .py file in dags_folder or in a notebook's %%dag cell")
    path = Path(fileloc)
    if not path.is_file():
        raise NotFoundError(f"the source of DAG '{dag_id}', {fileloc}, is not there any more; "
                            "reload the DAGs (the file may have been moved or renamed)")
    raw = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".ipynb":
        try:
            cells = json.loads(raw).get("cells") or []
        except (ValueError, AttributeError):
            cells = []
        found = notebook_cell(cells, dag_id)
        if found is None:
            return DagSource(dag_id, str(path), "notebook", 1, None, "")
        index, line = found
        return DagSource(dag_id, str(path), "notebook", line, index, _cell_text(cells[index])[:MAX_SOURCE_CHARS])
    return DagSource(dag_id, str(path), "python", python_line(raw, dag_id) or 1, None, raw[:MAX_SOURCE_CHARS])


def source_html(found: DagSource, context: int = 12) -> str:
    """The source as the notebook graph shows it: where it is, then the lines around the defining
    one (that line marked), read-only."""
    from html import escape

    if found.cell is None and found.kind == "notebook":
        return (f"<div class='nbflow-source'><small>{escape(found.path)}: no saved cell defines "
                f"{escape(found.dag_id)}; save the notebook (the source is read from its file)</small></div>")
    lines = found.text.splitlines() or [""]
    first = max(1, found.line - 3)
    last = min(len(lines), first + context - 1)
    where = found.path if found.cell is None else f"{found.path}, cell {found.cell + 1}"
    rows = []
    for number in range(first, last + 1):
        mark = " style='background:rgba(255,200,0,0.3)'" if number == found.line else ""
        rows.append(f"<span{mark}><span style='opacity:0.5'>{number:>4}</span>  {escape(lines[number - 1])}</span>")
    more = f"\n… {len(lines) - last} more lines" if last < len(lines) else ""
    return (f"<div class='nbflow-source'><small>{escape(where)}, line {found.line}</small>"
            f"<pre style='margin:2px 0;max-height:18em;overflow:auto'>{chr(10).join(rows)}{more}</pre></div>")
