"""The layer rule of DESIGN.md: model <- planning <- storage <- execution <- notebooks <- views.

A module may import only from its own layer or the layers before it. Imports inside functions are
held to the same rule, except the few documented entry points where a model object starts the
machinery that runs it (``DAG.test``). Imports under ``if TYPE_CHECKING:`` never run and are free.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nbflow"
LAYERS = ["model", "planning", "storage", "execution", "notebooks", "views"]

# Most specific prefix wins.
LAYER_OF = {
    "nbflow.errors": "model", "nbflow.states": "model", "nbflow.settings": "model", "nbflow.dag": "model",
    "nbflow.decorators": "model", "nbflow.context": "model", "nbflow.operators": "model",
    "nbflow.sensors": "model", "nbflow.templates": "model", "nbflow.timetables": "model", "nbflow.cron": "model",
    "nbflow.cronwords": "model",
    "nbflow.taskgroup": "model", "nbflow.refs": "model", "nbflow.helpers": "model", "nbflow.outputs": "model",
    "nbflow.dagrun": "model", "nbflow.paths": "model", "nbflow.lazy": "model", "nbflow.observers": "model",
    "nbflow.displayhooks": "model",
    "nbflow.planner": "planning",
    "nbflow.store": "storage",
    "nbflow.executors": "execution", "nbflow.runner": "execution", "nbflow.runs": "execution", "nbflow.scheduler": "execution",
    "nbflow.driver": "execution", "nbflow.pools": "execution", "nbflow.outage": "execution",
    "nbflow.discovery": "execution", "nbflow.dagparsing": "execution", "nbflow.logcapture": "execution", "nbflow.controls": "execution",
    "nbflow.notebook": "notebooks",
    "nbflow.jupyter": "views", "nbflow.cli": "views", "nbflow.__main__": "views",
}
# Packages whose __init__ only re-exports names lazily, and user-level example code.
UNCHECKED = {"nbflow", "nbflow.examples"}
# (importing module, imported module): a model object handing itself to the runtime. A DAG shown in a
# notebook finds its view through the nbflow.display entry point (nbflow.displayhooks), not an import.
ENTRY_POINTS = {("nbflow.dag", "nbflow.runs"), ("nbflow.sensors.external", "nbflow.store"),
                ("nbflow.operators.notebook", "nbflow.notebook")}
FORBIDDEN_IN_MODEL = ("sqlalchemy", "alembic", "IPython", "ipywidgets", "ipykernel", "jupyter_server", "dask", "papermill")


def layer_of(module: str) -> str | None:
    best = None
    for prefix, layer in LAYER_OF.items():
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, layer)
    return best[1] if best else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import that runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module, child.lineno, top))
                found.extend((f"{child.module}.{alias.name}", child.lineno, top) for alias in child.names)
            nested = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, nested)

    visit(tree, True)
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    missing = [module_name(p) for p in SOURCES if module_name(p) not in UNCHECKED
               and not module_name(p).startswith("nbflow.examples") and layer_of(module_name(p)) is None]
    assert not missing, f"add these modules to a layer in DESIGN.md and LAYER_OF: {missing}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_imports_follow_the_layer_order(path: Path) -> None:
    name = module_name(path)
    if name in UNCHECKED or name.startswith("nbflow.examples"):
        return
    own = LAYERS.index(layer_of(name) or "views")
    problems = []
    for imported, line, top in imports(path):
        if layer_of(name) == "model" and imported.split(".")[0] in FORBIDDEN_IN_MODEL:
            problems.append(f"line {line}: the model layer must not import {imported}")
        if not imported.startswith("nbflow.") or imported.startswith("nbflow.examples"):
            continue
        target = layer_of(imported)
        if target is None or LAYERS.index(target) <= own:
            continue
        entry = any(e[0] == name and (imported == e[1] or imported.startswith(e[1] + ".")) for e in ENTRY_POINTS)
        if top or not entry:
            problems.append(f"line {line}: a {layer_of(name)} module imports {imported} ({target} layer)")
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    """The rule above must be able to fail: a model module importing the store is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("import sqlalchemy\nfrom nbflow.store import Store\n")
    found = imports(bad)
    assert ("sqlalchemy", 1, True) in found and ("nbflow.store", 2, True) in found
    assert LAYERS.index(layer_of("nbflow.store")) > LAYERS.index(layer_of("nbflow.dag"))


def test_the_views_are_a_layer_and_only_the_jupyter_hook_reaches_them() -> None:
    """``nbflow.jupyter`` is the views layer; ``nbflow/__init__`` (unchecked above) may reach it only
    from inside ``load_ipython_extension``, so that ``import nbflow`` loads no view."""
    assert layer_of("nbflow.jupyter") == "views" and layer_of("nbflow.jupyter.magics") == "views"
    assert (PACKAGE / "jupyter" / "magics.py").exists()
    views = [(imported, top) for imported, _, top in imports(PACKAGE / "__init__.py")
             if imported.startswith(("nbflow.jupyter", "nbflow.cli"))]
    assert views and not any(top for _, top in views)
    hooks = [node.name for node in ast.parse((PACKAGE / "__init__.py").read_text()).body
             if isinstance(node, ast.FunctionDef)]
    assert "load_ipython_extension" in hooks
