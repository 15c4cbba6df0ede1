"""``nbflow import-airflow``: move DAG files written for Airflow over to nbflow.

Airflow users bring DAG files whose code nbflow runs as is once their imports point at nbflow's
names. This rewrites those imports (and only them: the file is read with ``ast`` and never run),
shows the change as a diff, writes it only when asked, and lists each use of an Airflow feature
nbflow does not have, with its line, so that what is left to do is known before the file loads.

What nbflow has is read from its own exports when the command runs (``nbflow``,
``nbflow.operators``, ``nbflow.sensors``), so the command never claims more, or less, than the
installed nbflow offers. The Airflow module a name comes from does not matter: Airflow moved the
same names between releases (``airflow.operators.bash``, ``airflow.providers.standard.operators.bash``,
``airflow.sdk``), and the name is what a DAG file uses.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

#: nbflow's modules whose exports an Airflow name may map to, most general first
NBFLOW_MODULES = ("nbflow", "nbflow.operators", "nbflow.sensors")

#: Airflow names that nbflow has under another name
RENAMED = {
    "DummyOperator": ("nbflow.operators", "EmptyOperator"),
    "AirflowSkipException": ("nbflow", "SkipTask"),
    "AirflowFailException": ("nbflow", "FailTask"),
    "get_current_context": ("nbflow", "get_current_context"),
}

#: what to do instead, for Airflow names nbflow does not have (when nbflow lacks them)
INSTEAD = {
    "days_ago": "use a fixed start_date (a date string or an aware datetime)",
    "BaseHook": "open the client inside the task",
    "XComArg": "pass a task's output (the value a @task call returns, or operator.output) instead",
    "Dataset": "schedule on time, or trigger the run from the producing task",
    "Asset": "schedule on time, or trigger the run from the producing task",
    "EmailOperator": "use nbflow.operators.EmailOperator(to, subject, html_content, files, cc, bcc)",
    "AppriseNotifier": "use nbflow.notifications.Notifier(url, ..., title=..., body=...) with the targets' Apprise URLs",
    "SmtpNotifier": "use the task options email=[...] with email_on_failure, or a Notifier('mailto://...')",
    "send_apprise_notification": "use nbflow.notifications.Notifier(url, ..., title=..., body=...)",
    "send_smtp_notification": "use the task options email=[...] with email_on_failure, or a Notifier('mailto://...')",
}

#: calls on tasks that belong to Airflow features, with the feature's name
FEATURE_CALLS = {
    "as_setup": "setup tasks (.as_setup)",
    "as_teardown": "teardown tasks (.as_teardown)",
}


@dataclass
class Finding:
    """A use of an Airflow feature this nbflow does not have."""

    line: int
    what: str
    instead: str = ""

    def describe(self, path: str) -> str:
        tail = f": {self.instead}" if self.instead else ""
        return f"{path}:{self.line}: {self.what} is not in nbflow{tail}"


@dataclass
class Rewrite:
    """One file: its text before and after, and what could not be moved over."""

    path: Path
    before: str
    after: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        name = str(self.path)
        return "".join(difflib.unified_diff(
            self.before.splitlines(keepends=True), self.after.splitlines(keepends=True),
            fromfile=name, tofile=f"{name} (nbflow)",
        ))


def nbflow_names() -> dict[str, tuple[str, str]]:
    """Airflow name -> (nbflow module, nbflow name), for every name this nbflow exports."""
    names: dict[str, tuple[str, str]] = {}
    for module_name in reversed(NBFLOW_MODULES):  # the most general module wins a name both export
        module = importlib.import_module(module_name)
        names.update({name: (module_name, name) for name in getattr(module, "__all__", [])})
    for airflow_name, (module_name, name) in RENAMED.items():
        if name in getattr(importlib.import_module(module_name), "__all__", []):
            names[airflow_name] = (module_name, name)
    return names


def _task_methods() -> set[str]:
    """The feature calls a task of this nbflow answers (a feature added later stops being listed)."""
    from nbflow.operators import BaseOperator

    return {name for name in FEATURE_CALLS if hasattr(BaseOperator, name)}


def _is_airflow(module: str | None) -> bool:
    return module is not None and (module == "airflow" or module.startswith("airflow."))


def rewrite_source(text: str, path: Path, names: dict[str, tuple[str, str]] | None = None) -> Rewrite:
    """The file with its Airflow imports pointing at nbflow, and the findings; raises SyntaxError."""
    names = nbflow_names() if names is None else names
    tree = ast.parse(text, filename=str(path))
    lines = text.splitlines(keepends=True)
    findings: list[Finding] = []
    replacements: list[tuple[int, int, list[str]]] = []  # (first line, last line, new lines), 1-based
    statements_on = _statements_per_line(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_airflow(alias.name):
                    findings.append(Finding(node.lineno, f"a whole-module import (`import {alias.name}`)",
                                            "import the names themselves (`from airflow... import Name`) and run this again"))
        elif isinstance(node, ast.ImportFrom) and _is_airflow(node.module) and node.level == 0:
            new_lines, left = _translate(node, names, findings)
            if not new_lines and not left:
                continue
            end = node.end_lineno or node.lineno
            if any(statements_on.get(n, 1) > 1 for n in range(node.lineno, end + 1)):
                findings.append(Finding(node.lineno, "an Airflow import sharing its line with other statements",
                                        "put it on a line of its own and run this again"))
                continue
            indent = lines[node.lineno - 1][: len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip())]
            kept = [f"{indent}from {node.module} import {', '.join(_alias(a) for a in left)}\n"] if left else []
            replacements.append((node.lineno, end, [f"{indent}{line}\n" for line in new_lines] + kept))
    seen_calls = _task_methods()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FEATURE_CALLS \
                and node.func.attr not in seen_calls:
            findings.append(Finding(node.lineno, FEATURE_CALLS[node.func.attr]))
    for first, last, new in sorted(replacements, reverse=True):
        lines[first - 1:last] = new
    findings.sort(key=lambda finding: finding.line)
    return Rewrite(path, text, "".join(lines), findings)


def _translate(node: ast.ImportFrom, names: dict[str, tuple[str, str]],
               findings: list[Finding]) -> tuple[list[str], list[ast.alias]]:
    """nbflow import lines for the names nbflow has; the aliases it does not have, each a finding."""
    by_module: dict[str, list[str]] = {}
    left: list[ast.alias] = []
    for alias in node.names:
        if alias.name == "*":
            findings.append(Finding(node.lineno, f"`from {node.module} import *`", "import the names it uses one by one"))
            left.append(alias)
            continue
        target = names.get(alias.name)
        if target is None:
            findings.append(Finding(node.lineno, f"{alias.name} (from {node.module})", INSTEAD.get(alias.name, "")))
            left.append(alias)
            continue
        module, name = target
        as_name = alias.asname or (alias.name if name != alias.name else None)
        by_module.setdefault(module, []).append(name if as_name in (None, name) else f"{name} as {as_name}")
    return [f"from {module} import {', '.join(items)}" for module, items in by_module.items()], left


def _alias(alias: ast.alias) -> str:
    return alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"


def _statements_per_line(tree: ast.Module) -> dict[int, int]:
    """How many statements start on each line (``a = 1; from airflow import DAG`` is two)."""
    counts: dict[int, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt):
            counts[node.lineno] = counts.get(node.lineno, 0) + 1
    return counts


def python_files(path: Path) -> list[Path]:
    """The ``.py`` files of ``path``: the file itself, or a folder's, hidden folders left out."""
    if path.is_file():
        return [path]
    found = []
    for root, folders, files in os.walk(path):
        folders[:] = sorted(f for f in folders if not f.startswith(".") and f != "__pycache__")
        found += [Path(root) / name for name in sorted(files) if name.endswith(".py")]
    return found


def _write(path: Path, text: str) -> None:
    """Replace the file in one step, keeping its permissions: a crash leaves the old file or the new."""
    mode = path.stat().st_mode
    handle, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.chmod(staging, mode & 0o7777)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def cmd_import_airflow(args: argparse.Namespace) -> int:
    """Exit status 0 when every file moved over whole, 1 when something is left to do by hand."""
    names = nbflow_names()
    status = 0
    changed = 0
    for root in args.paths:
        root = Path(root)
        if not root.exists():
            print(f"nbflow: error: {root} does not exist; give a DAG file or a folder of them", file=sys.stderr)
            status = 1
            continue
        for path in python_files(root):
            try:
                text = path.read_text(encoding="utf-8")
                result = rewrite_source(text, path, names)
            except UnicodeDecodeError:
                print(f"{path}: not UTF-8 text; left as it is", file=sys.stderr)
                status = 1
                continue
            except SyntaxError as exc:
                print(f"{path}:{exc.lineno}: not valid Python ({exc.msg}); left as it is", file=sys.stderr)
                status = 1
                continue
            if result.changed:
                changed += 1
                sys.stdout.write(result.diff())
                if args.write:
                    _write(path, result.after)
            for finding in result.findings:
                print(finding.describe(str(path)))
                status = 1
    verb = "rewritten" if args.write else "would be rewritten (add --write to write them)"
    print(f"{changed} file{'s' if changed != 1 else ''} {verb}", file=sys.stderr)
    return status
