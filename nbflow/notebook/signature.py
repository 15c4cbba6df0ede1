"""What parameters a notebook takes: the assignments of its cell tagged ``parameters``.

Papermill puts the values it is given after that cell, so the cell's assignments are the notebook's
signature: each name with its default. Views use this to offer a form when a notebook is scheduled.
The cell is read with :mod:`ast`, never run: a default is returned as a JSON value only when it is a
literal (``3``, ``"north"``, ``[1, 2]``); anything computed (``date.today()``) keeps its source text
and has no value.
"""

from __future__ import annotations

import ast
import io
import json
import math
import os
import re
import tokenize
from dataclasses import asdict, dataclass, field
from typing import Any

from nbflow.errors import InvalidRequestError

#: the tag papermill looks for
PARAMETERS_TAG = "parameters"
#: type names a view can offer an input for; anything else is "other"
TYPE_NAMES = {int: "int", float: "float", str: "str", bool: "bool", list: "list", dict: "dict", type(None): "None"}
_ANNOTATIONS = {"int": "int", "float": "float", "str": "str", "bool": "bool", "list": "list", "dict": "dict",
                "None": "None"}
_MAGIC_LINE = re.compile(r"^(\s*)[%!]")


@dataclass
class Parameter:
    """One name the parameters cell assigns. ``default`` is a JSON value, or None when the default is
    not a JSON literal (``source`` still shows it); ``help`` is the comment at the end of its line."""

    name: str
    type: str
    default: Any
    source: str
    help: str


@dataclass
class NotebookSignature:
    """The parameters of a notebook and the kernel it names (None when it names none)."""

    kernel_name: str | None
    parameters: list[Parameter] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"kernel_name": self.kernel_name, "parameters": [asdict(p) for p in self.parameters]}


def _json_value(value: Any) -> tuple[bool, Any]:
    """(is plain JSON data of the same type, value); a tuple or a NaN is not."""
    kind = type(value)
    if value is None or kind in (str, bool, int):
        return True, value
    if kind is float:
        return math.isfinite(value), value if math.isfinite(value) else None
    if kind is list:
        items = [_json_value(item) for item in value]
        return all(ok for ok, _ in items), value
    if kind is dict:
        ok = all(type(k) is str and _json_value(v)[0] for k, v in value.items())
        return ok, value
    return False, None


def _comments(source: str) -> dict[int, str]:
    """Line number -> the comment that ends that line."""
    found: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                found[token.start[0]] = token.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return found


def _type_of(annotation: ast.expr | None, literal: bool, value: Any) -> str:
    if annotation is not None:
        text = ast.unparse(annotation)
        base = text.split("[", 1)[0].strip()
        if base in _ANNOTATIONS:
            return _ANNOTATIONS[base]
        if literal and type(value) in TYPE_NAMES:
            return TYPE_NAMES[type(value)]
        return "other"
    return TYPE_NAMES.get(type(value), "other") if literal else "other"


def _pairs(node: ast.stmt) -> list[tuple[str, ast.expr | None, ast.expr | None]]:
    """(name, value, annotation) for each name an assignment statement binds."""
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [(node.target.id, node.value, node.annotation)]
    if not isinstance(node, ast.Assign):
        return []
    out: list[tuple[str, ast.expr | None, ast.expr | None]] = []
    for target in node.targets:
        if isinstance(target, ast.Name):
            out.append((target.id, node.value, None))
        elif isinstance(target, (ast.Tuple, ast.List)) and isinstance(node.value, (ast.Tuple, ast.List)) \
                and len(target.elts) == len(node.value.elts):
            out.extend((t.id, v, None) for t, v in zip(target.elts, node.value.elts) if isinstance(t, ast.Name))
    return out


def parse_parameters(source: str, where: str = "the parameters cell") -> list[Parameter]:
    """The parameters assigned by ``source`` (a cell's code), in order; a name assigned twice keeps
    its last value, as it would when the cell runs."""
    code = "\n".join(_MAGIC_LINE.sub(r"\1pass  # ", line) if _MAGIC_LINE.match(line) else line
                     for line in source.split("\n"))
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise InvalidRequestError(
            f"{where} is not valid Python (line {exc.lineno}: {exc.msg}); fix it so that its parameters can be read"
        ) from None
    comments = _comments(code)
    found: dict[str, Parameter] = {}
    for node in tree.body:
        for name, value_node, annotation in _pairs(node):
            text = (ast.get_source_segment(code, value_node) or "") if value_node is not None else ""
            literal, value = False, None
            if value_node is not None:
                try:
                    literal, value = True, ast.literal_eval(value_node)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    literal = False
            jsonable, default = _json_value(value) if literal else (False, None)
            found.pop(name, None)
            found[name] = Parameter(
                name=name, type=_type_of(annotation, literal, value), default=default if jsonable else None,
                source=text, help=comments.get(node.end_lineno or node.lineno, ""),
            )
    return list(found.values())


def notebook_signature(path: str | os.PathLike[str]) -> NotebookSignature:
    """Read the notebook at ``path`` and return its kernel name and parameters.

    A notebook without a cell tagged ``parameters`` takes none that it names (papermill would put
    given values at its top). A file that is not a notebook raises
    :class:`~nbflow.errors.InvalidRequestError`.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise InvalidRequestError(f"{path} cannot be read as a notebook: {exc}") from None
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list):
        raise InvalidRequestError(f"{path} is not a Jupyter notebook (nbformat 4): it has no list of cells")
    kernelspec = (data.get("metadata") or {}).get("kernelspec") or {}
    signature = NotebookSignature(kernel_name=kernelspec.get("name") if isinstance(kernelspec, dict) else None)
    for number, cell in enumerate(cells, start=1):
        tags = ((cell.get("metadata") or {}).get("tags") or []) if isinstance(cell, dict) else []
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in tags:
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else str(source)
            signature.parameters = parse_parameters(source, f"{os.path.basename(path)}, cell {number} (tagged parameters)")
            break
    return signature
