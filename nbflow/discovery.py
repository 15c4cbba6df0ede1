"""Finding DAGs: import the ``.py`` files of ``dags_folder`` and keep every DAG they build.

A file that fails to import (a syntax error, an exception, a DAG with a cycle) becomes an import
error with its traceback; it never stops the other files from loading. Each file is imported as its
own module, under a name derived from its path, so two files may both be called ``etl.py``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nbflow.context import reset_dag_collector, set_dag_collector
from nbflow.errors import DagNotFoundError

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.store import Store


@dataclass
class ImportFailure:
    fileloc: str
    summary: str
    traceback: str


@dataclass
class DagBag:
    """The DAGs found, by id, and the files that failed."""

    dags: dict[str, DAG] = field(default_factory=dict)
    failures: dict[str, ImportFailure] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def get(self, dag_id: str) -> DAG:
        try:
            return self.dags[dag_id]
        except KeyError:
            raise DagNotFoundError(dag_id, list(self.dags)) from None


def module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"nbflow_dags.{stem}_{digest}"


def load_file(path: str | os.PathLike[str]) -> tuple[list[DAG], ImportFailure | None]:
    """Import one DAG file; return the DAGs it built, or how it failed."""
    from nbflow.dag import DAG

    file = Path(path).resolve()
    found: list[DAG] = []
    name = module_name(file)
    token = set_dag_collector(found.append)
    try:
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            return [], ImportFailure(str(file), "not a loadable Python file", "")
        module = importlib.util.module_from_spec(spec)
        module.__nbflow_dag_file__ = True  # type: ignore[attr-defined]
        sys.modules.setdefault("nbflow_dags", _namespace())
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except BaseException as exc:  # a DAG file may raise anything, SystemExit included
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        return [], ImportFailure(str(file), _summary(exc), _traceback_in(exc, str(file)))
    finally:
        reset_dag_collector(token)
    for value in vars(module).values():
        if isinstance(value, DAG) and all(value is not d for d in found):
            found.append(value)
    for built in found:
        if built.fileloc is None or not str(built.fileloc).endswith(".py"):
            built.fileloc = str(file)
    return found, None


def _namespace() -> object:
    import types

    package = types.ModuleType("nbflow_dags")
    package.__path__ = []  # type: ignore[attr-defined]
    return package


def _summary(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    return f"{type(exc).__name__}: {exc}"


def _traceback_in(exc: BaseException, fileloc: str) -> str:
    """The traceback from the DAG file's first frame on: nbflow's import machinery is noise."""
    lines = traceback.format_exception(exc)
    for index, line in enumerate(lines):
        if fileloc in line:
            return "Traceback (most recent call last):\n" + "".join(lines[index:])
    return "".join(lines)


def dag_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The ``.py`` files under ``folder`` that mention nbflow (others are helpers, not DAG files)."""
    root = Path(folder)
    if not root.is_dir():
        return []
    files = []
    for path in sorted(root.rglob("*.py")):
        if any(part.startswith((".", "_")) for part in path.relative_to(root).parts):
            continue
        try:
            if "nbflow" in path.read_text(encoding="utf-8", errors="replace"):
                files.append(path)
        except OSError:
            continue
    return files


def collect(paths: list[str | os.PathLike[str]]) -> DagBag:
    """Load DAG files and folders of DAG files."""
    bag = DagBag()
    for entry in paths:
        entry_path = Path(entry)
        if not entry_path.exists():
            fileloc = str(entry_path.resolve())
            bag.files.append(fileloc)
            bag.failures[fileloc] = ImportFailure(fileloc, "FileNotFoundError: no such file or folder", "")
            continue
        files = dag_files(entry_path) if entry_path.is_dir() else [entry_path]
        for file in files:
            bag.files.append(str(file.resolve()))
            dags, failure = load_file(file)
            if failure is not None:
                bag.failures[failure.fileloc] = failure
                continue
            for built in dags:
                other = bag.dags.get(built.dag_id)
                if other is not None and other is not built:
                    fileloc = str(file.resolve())
                    bag.failures[fileloc] = ImportFailure(
                        fileloc,
                        f"DagDefinitionError: DAG id '{built.dag_id}' is already defined in {other.fileloc}; "
                        "give one of them another dag_id",
                        "",
                    )
                    continue
                bag.dags[built.dag_id] = built
    return bag


def sync(bag: DagBag, store: Store) -> None:
    """Record the DAGs and import errors of ``bag`` in the store; clear errors of files that now load."""
    from nbflow.runs import sync_dag

    for built in bag.dags.values():
        sync_dag(store, built, source_kind="file")
    for fileloc in bag.files:
        if fileloc in bag.failures:
            failure = bag.failures[fileloc]
            store.record_import_error(fileloc, failure.summary, failure.traceback)
        else:
            store.clear_import_errors(fileloc)
