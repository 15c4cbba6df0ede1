"""The DAG objects behind the store's rows, as the Jupyter server sees them.

The store knows every DAG by its definition, but triggering, clearing, marking and next run times
need the DAG object, which only its file can build. The catalog loads a file when it is first asked
for one of its DAGs and keeps what it built until the file changes (size or modification time).
:meth:`DagCatalog.scan` also reads ``dags_folder`` again when anything in it changed and records
what it found, DAGs and import errors, so that the server's lists are current even when no
scheduler host is running to re-read the folder.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbflow.engine.dagparsing import DagFileParser
from nbflow.errors import DagFileGoneError, DagImportError, DagNotFoundError, InvalidRequestError

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.settings import Settings
    from nbflow.store import Store

Signature = tuple[int, int]


@dataclass
class _Loaded:
    signature: Signature
    dags: dict[str, DAG] = field(default_factory=dict)
    failure: str | None = None


def _signature(path: str) -> Signature | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def _folder_signature(folder: Path) -> tuple[tuple[str, Signature | None], ...]:
    """What changes when a DAG file is added, removed or edited, found without reading any file."""
    if not folder.is_dir():
        return ()
    entries = []
    for path in sorted([*folder.rglob("*.py"), *folder.rglob("*.ipynb")]):
        if any(part.startswith((".", "_")) for part in path.relative_to(folder).parts):
            continue
        entries.append((str(path), _signature(str(path))))
    return tuple(entries)


class DagCatalog:
    """DAG objects by id, loaded from the files the store names; safe to use from several threads."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._files: dict[str, _Loaded] = {}
        self._folder: tuple[tuple[str, Signature | None], ...] | None = None
        # DAG files are user code: each is loaded in a separate process, within dag_file_timeout
        self._parse = DagFileParser(settings.dag_file_timeout)
        # One load at a time, so that a file is parsed once however many requests ask for it.
        self._lock = threading.RLock()

    @contextmanager
    def loading(self) -> Iterator[None]:
        """Hold the catalog's loading lock, for other code that imports DAG files in this process."""
        with self._lock:
            yield

    def scan(self) -> None:
        """Read ``dags_folder`` again if a file in it was added, removed or changed, and record its
        DAGs and import errors in the store (as a scheduler host's reload does)."""
        from nbflow.engine.discovery import collect
        from nbflow.engine.sync import sync

        from nbflow.engine.discovery import ensure_dags_folder

        folder = ensure_dags_folder(self.settings).resolve()
        with self._lock:
            current = _folder_signature(folder)
            if current == self._folder:
                return
            bag = collect([folder], load=self._parse) if folder.is_dir() else None
            if bag is not None:
                sync(bag, self.store)
                by_file: dict[str, _Loaded] = {}
                for fileloc in bag.files:
                    signature = _signature(fileloc)
                    if signature is not None:
                        failure = bag.failures.get(fileloc)
                        by_file[fileloc] = _Loaded(signature, failure=failure.summary if failure else None)
                for dag in bag.dags.values():
                    loaded = by_file.get(str(dag.fileloc))
                    if loaded is not None:
                        loaded.dags[dag.dag_id] = dag
                self._files.update(by_file)
            gone = {path for path, _ in self._folder or ()} - {path for path, _ in current}
            for path in gone:  # a deleted file's error is no longer true
                self._files.pop(path, None)
                self.store.clear_import_errors(path)
            self._folder = current

    def _load(self, fileloc: str) -> _Loaded | None:
        signature = _signature(fileloc)
        if signature is None:
            return None
        with self._lock:
            cached = self._files.get(fileloc)
            if cached is not None and cached.signature == signature:
                return cached
            path = Path(fileloc)
            dags, failure = self._parse([path])[str(path.resolve())]
            loaded = _Loaded(signature, {d.dag_id: d for d in dags}, failure.summary if failure else None)
            self._files[fileloc] = loaded
            return loaded

    def get(self, row: dict[str, Any]) -> DAG | None:
        """The DAG object of a store row, or None when its file cannot give it (a DAG defined in a
        kernel, a file that is gone or fails to load): views then fall back to the stored definition."""
        fileloc = row.get("fileloc") or ""
        if row.get("source_kind") == "interactive" or not fileloc.endswith((".py", ".ipynb")):
            return None
        loaded = self._load(fileloc)
        return None if loaded is None else loaded.dags.get(row["dag_id"])

    def require(self, dag_id: str) -> DAG:
        """The DAG object of ``dag_id``, for what only it can do (trigger, clear, mark), or an error
        that says why there is none."""
        row = self.store.get_dag(dag_id)
        if row is None:
            self.scan()
            row = self.store.get_dag(dag_id)
        if row is None:
            raise DagNotFoundError(dag_id, [r["dag_id"] for r in self.store.list_dags()])
        fileloc = row.get("fileloc") or ""
        if row.get("source_kind") == "interactive" or not fileloc.endswith((".py", ".ipynb")):
            raise InvalidRequestError(
                f"it was defined in a notebook kernel ({fileloc or 'no file'}), so the server has no file to "
                "load it from; run it from that kernel, or put it in dags_folder or a notebook's %%dag cell",
                dag_id,
            )
        loaded = self._load(fileloc)
        if loaded is None:
            raise DagFileGoneError(fileloc, dag_id)
        if loaded.failure is not None:
            raise DagImportError(fileloc, loaded.failure)
        dag = loaded.dags.get(dag_id)
        if dag is None:
            raise DagNotFoundError(dag_id, list(loaded.dags))
        return dag
