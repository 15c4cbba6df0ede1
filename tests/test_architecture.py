"""The map of ARCHITECTURE.md, kept: model <- planning <- storage <- execution <- notebooks <- views.

A module may import only from its own layer or the layers before it, and no module may reach itself
through its imports. Every import that can run counts: at module level, inside functions, in the
``else:`` of an ``if TYPE_CHECKING:``, relative ones, ``from nbflow import X`` (through the package's
lazy table to the module that defines X) and module names handed to ``importlib`` as strings
(``import_module("nbflow.x")``, registries of ``"nbflow.x:Name"``). Only the imports under ``if
TYPE_CHECKING:`` never run and are free. The few upward imports allowed are listed in
``RUNTIME_HELPERS`` with the reason; each must sit inside a function.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nbflow"
LAYERS = ["model", "planning", "storage", "execution", "notebooks", "views"]

# Most specific prefix wins.
LAYER_OF = {
    "nbflow.errors": "model", "nbflow.states": "model", "nbflow.settings": "model", "nbflow.dag": "model",
    "nbflow.decorators": "model", "nbflow.context": "model", "nbflow.operators": "model",
    "nbflow.sensors": "model", "nbflow.templates": "model", "nbflow.timetables": "model", "nbflow.cron": "model",
    "nbflow.cronwords": "model", "nbflow.cronlocale": "model", "nbflow.taskgroup": "model", "nbflow.refs": "model", "nbflow.helpers": "model",
    "nbflow.outputs": "model", "nbflow.dagrun": "model", "nbflow.paths": "model", "nbflow.lazy": "model", "nbflow.importcost": "model",
    "nbflow.observers": "model", "nbflow.plugins": "model", "nbflow.params": "model", "nbflow.credentials": "model",
    "nbflow.connection": "model", "nbflow.variable": "model", "nbflow.edgemodifier": "model", "nbflow.assets": "model", "nbflow.mapping": "model",
    "nbflow.notifications": "model", "nbflow.notifytargets": "model", "nbflow.mail": "model", "nbflow.memory": "model",
    "nbflow.planner": "planning",
    "nbflow.store": "storage",
    "nbflow.engine": "execution", "nbflow.executors": "execution",
    "nbflow.notebook": "notebooks",
    "nbflow.jupyter": "views", "nbflow.cli": "views", "nbflow.__main__": "views",
}
# The package's own __init__ re-exports names lazily and plugs nbflow into Jupyter from its hooks;
# the examples are user code.
UNCHECKED = {"nbflow", "nbflow.examples"}
# (importing module, imported module): an operator that imports its runtime helper inside execute(),
# so that defining the task costs nothing (DESIGN.md). A DAG finds its view and its engine through
# entry points (nbflow.plugins), never through an import.
RUNTIME_HELPERS = {
    ("nbflow.operators.notebook", "nbflow.notebook"): "a notebook task runs papermill when it runs",
    ("nbflow.sensors.external", "nbflow.store"): "an ExternalTaskSensor reads another DAG's runs when it pokes",
    ("nbflow.operators.trigger_dagrun", "nbflow.engine"): "a TriggerDagRunOperator makes the other DAG's run when it runs",
    ("nbflow.operators.trigger_dagrun", "nbflow.store"): "a TriggerDagRunOperator watches the run it made when it waits",
    ("nbflow.connection", "nbflow.store"): "Connection.get reads the store when a task asks for a connection",
    ("nbflow.variable", "nbflow.store"): "Variable.get and set reach the store when a task calls them",
}
FORBIDDEN_IN_MODEL = ("sqlalchemy", "alembic", "IPython", "ipywidgets", "ipykernel", "jupyter_server", "dask", "papermill")
IMPORTLIB_CALLS = {"import_module", "__import__"}
MODULE_STRING = re.compile(r"^(nbflow(?:\.\w+)+)(?::\w+)?$")


def layer_of(module: str) -> str | None:
    best = None
    for prefix, layer in LAYER_OF.items():
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, layer)
    return best[1] if best else None


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.relative_to(PACKAGE).parts)
MODULES = {module_name(p) for p in SOURCES}


def _lazy_exports() -> dict[str, str]:
    """``nbflow.X`` -> the module that defines X, from the package's own tables (read, not imported)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_WHERE" for t in node.targets):
            found.update(ast.literal_eval(node.value))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nbflow.") and node.col_offset == 0:
            found.update({alias.asname or alias.name: node.module for alias in node.names})
    return found


EXPORTS = _lazy_exports()


def resolve(name: str, modules: set[str] = MODULES) -> str | None:
    """The module of ours that importing ``name`` runs (``pkg.mod.Name`` -> ``pkg.mod``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports(path: Path, package: Path = PACKAGE) -> list[tuple[str, int, bool]]:
    """(imported name, line, at module level) for every import that can run, of any kind."""
    here = module_name(path, package)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, int, bool]] = []

    def absolute(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        parts = here.split(".") if is_package else here.split(".")[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        return ".".join([*parts, *([node.module] if node.module else [])])

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for branch in child.orelse:  # the else branch runs
                    visit_one(branch, top)
                continue
            visit_one(child, top)

    def visit_one(child: ast.AST, top: bool) -> None:
        if isinstance(child, ast.Import):
            found.extend((alias.name, child.lineno, top) for alias in child.names)
        elif isinstance(child, ast.ImportFrom):
            base = absolute(child)
            for alias in child.names:
                if base == "nbflow" and alias.name in EXPORTS:
                    found.append((EXPORTS[alias.name], child.lineno, top))
                else:
                    found.append((f"{base}.{alias.name}" if base else alias.name, child.lineno, top))
        elif isinstance(child, ast.Call):
            func = child.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = child.args[0] if child.args else None
            if called in IMPORTLIB_CALLS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((first.value, child.lineno, top))
        elif isinstance(child, ast.Constant) and isinstance(child.value, str) and ":" in child.value:
            match = MODULE_STRING.match(child.value)
            if match:  # "nbflow.executors.thread:ThreadExecutor": a registry entry imported by name
                found.append((match.group(1), child.lineno, top))
        nested = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        visit(child, nested)

    visit(tree, True)
    return found


def graph(sources: list[Path] = SOURCES, package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (itself and its own package excluded)."""
    modules = {module_name(p, package) for p in sources}
    edges: dict[str, set[str]] = {}
    for path in sources:
        name = module_name(path, package)
        targets = {resolve(imported, modules) for imported, _, _ in imports(path, package)}
        edges[name] = {t for t in targets if t and t != name and not name.startswith(t + ".") and t != package.name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return found


def test_every_module_has_a_layer() -> None:
    missing = [m for m in sorted(MODULES) if m not in UNCHECKED and not m.startswith("nbflow.examples")
               and layer_of(m) is None]
    assert not missing, f"add these modules to a layer in ARCHITECTURE.md and LAYER_OF: {missing}"


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
        target_module = resolve(imported)
        if target_module is None or target_module.startswith("nbflow.examples") or target_module == "nbflow":
            continue
        target = layer_of(target_module)
        if target is None or LAYERS.index(target) <= own:
            continue
        helper = next((key for key in RUNTIME_HELPERS
                       if key[0] == name and (target_module == key[1] or target_module.startswith(key[1] + "."))), None)
        if top or helper is None:
            problems.append(f"line {line}: a {layer_of(name)} module imports {imported} ({target} layer)")
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_no_module_imports_itself_through_others() -> None:
    found = cycles(graph())
    assert not found, "import cycles (break each, e.g. by moving the shared part down a layer):\n" + "\n".join(
        " <-> ".join(group) for group in found)


def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The rules above must be able to fail: each way of importing is seen, and a cycle made of
    imports inside functions, an importlib string and a relative import is caught."""
    package = tmp_path / "nbflow"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from nbflow.free import Free\n"
        "else:\n    import nbflow.sub.b\n"
        "def later():\n    from . import c\n    return c\n")
    (package / "sub" / "b.py").write_text("import importlib\ndef load():\n    return importlib.import_module('nbflow.sub.c')\n")
    (package / "sub" / "c.py").write_text("TABLE = {'a': 'nbflow.sub.a:later'}\nimport sqlalchemy\n")
    (package / "free.py").write_text("")
    sources = sorted(package.rglob("*.py"))
    seen = {(name, top) for name, _, top in imports(package / "sub" / "a.py", package)}
    assert ("nbflow.sub.b", True) in seen and ("nbflow.sub.c", False) in seen  # else: runs at import
    assert not any(name.startswith("nbflow.free") for name, _ in seen)  # type-only imports are free
    assert ("nbflow.sub.c", False) in {(n, t) for n, _, t in imports(package / "sub" / "b.py", package)}
    assert ("nbflow.sub.a", True) in {(n, t) for n, _, t in imports(package / "sub" / "c.py", package)}
    assert cycles(graph(sources, package)) == [["nbflow.sub.a", "nbflow.sub.b", "nbflow.sub.c"]]
    assert LAYERS.index(layer_of("nbflow.store")) > LAYERS.index(layer_of("nbflow.dag"))
    assert resolve("nbflow.engine.runs.run_dag") == "nbflow.engine.runs"


def test_from_nbflow_import_counts_as_the_module_that_defines_the_name() -> None:
    assert EXPORTS["DAG"] == "nbflow.dag" and EXPORTS["dag"] == "nbflow.decorators"
    assert EXPORTS["DagRun"] == "nbflow.dagrun" and EXPORTS["literal"] == "nbflow.templates"


def test_the_views_are_a_layer_and_only_the_jupyter_hook_reaches_them() -> None:
    """``nbflow.jupyter`` is the views layer; ``nbflow/__init__`` (unchecked above) may reach it only
    from inside its Jupyter hooks, so that ``import nbflow`` loads no view."""
    assert layer_of("nbflow.jupyter") == "views" and layer_of("nbflow.jupyter.magics") == "views"
    views = [(imported, top) for imported, _, top in imports(PACKAGE / "__init__.py")
             if imported.startswith(("nbflow.jupyter", "nbflow.cli"))]
    assert views and not any(top for _, top in views)
    hooks = [node.name for node in ast.parse((PACKAGE / "__init__.py").read_text()).body
             if isinstance(node, ast.FunctionDef)]
    assert "load_ipython_extension" in hooks


def test_the_map_names_every_folder_and_module_of_the_engine() -> None:
    """ARCHITECTURE.md is the map: every engine module and every layer is named in it."""
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    missing = [m for m in sorted(MODULES) if m.startswith(("nbflow.engine.", "nbflow.executors."))
               and f"{m.rsplit('.', 1)[1]}.py" not in text]
    assert not missing, f"ARCHITECTURE.md does not name: {missing}"
    assert all(layer in text for layer in LAYERS)
