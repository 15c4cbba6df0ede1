"""What the handlers of one Jupyter server share: settings, the store, the DAG catalog, the
scheduler host and the runs started in the server, and the threads that do blocking work.

Handlers run on the server's event loop; everything that touches the database, a DAG file, a
notebook or nbconvert runs on :attr:`Services.pool` instead, so a slow request (a 5,000-task graph,
a notebook rendered to HTML) never stalls the server's other traffic, kernels included.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from nbflow.jupyter.server.files import nbflow_roots
from nbflow.jupyter.server.host import RunStarter, SchedulerHost

if TYPE_CHECKING:
    from nbflow.jupyter.server.catalog import DagCatalog
    from nbflow.settings import Settings
    from nbflow.store import Store

T = TypeVar("T")


class Services:
    """Shared by every request of one server; created by the extension, closed at its shutdown."""

    def __init__(self, settings: Settings, *, root_dir: str, threads: int = 4, executor: str | None = None,
                 grace: float = 10.0) -> None:
        self.settings = settings
        self.root_dir = str(Path(root_dir).expanduser().resolve())
        self.roots = nbflow_roots(settings)
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="nbflow-api")
        self.host = SchedulerHost(settings, executor=executor, grace=grace)
        self.runs = RunStarter(settings, executor=executor, grace=grace)
        self._store: Store | None = None
        self._catalog: DagCatalog | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> Store:
        """The store, opened on first use: a database that is down makes requests fail with a clear
        error instead of keeping the extension (and the server) from starting."""
        with self._lock:
            if self._store is None:
                from nbflow.store import Store

                self._store = Store.open(self.settings)
            return self._store

    @property
    def catalog(self) -> DagCatalog:
        store = self.store
        with self._lock:
            if self._catalog is None:
                from nbflow.jupyter.server.catalog import DagCatalog

                self._catalog = DagCatalog(self.settings, store)
            return self._catalog

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` on a worker thread, awaited, in the request's context (the
        reader's language, :data:`~nbflow.jupyter.server.serialize.READER_LANGUAGE`, goes with it)."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(self.pool, lambda: context.run(function, *args, **kwargs))

    def close(self) -> None:
        """Stop the scheduler host and the run hosts (running tasks get their grace period), then
        the worker threads and the store. Blocking: call it off the event loop."""
        self.host.stop()
        self.runs.stop()
        self.pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
