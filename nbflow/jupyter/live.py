"""Keeping graph views live: notices from runs in this process at once, the store polled for the rest.

A run can be driven anywhere: ``dag.test()`` on the kernel's main thread, the in-kernel scheduler, a
daemon or another machine. Runs driven in this process announce each change through
:mod:`nbflow.observers` the moment it is decided, so a graph under a cell changes while the run is
going, even when the task runs inline on the thread that would write the store. Runs driven
elsewhere reach the views through the store: one thread per process looks at each watched DAG's
newest runs every ``interval`` seconds (one indexed query per DAG) and reads the task instances
only of runs that are active and not driven here. Views in many cells showing one DAG cost the
same as one.

The hub never touches a widget: it calls the :class:`LiveView` methods, and the view batches what
it is given (see :class:`~nbflow.jupyter.graph.StateBatcher`).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from nbflow.observers import StateNotice
    from nbflow.store import Store

log = logging.getLogger(__name__)

#: run states after which nothing changes any more (until someone clears the run)
FINISHED_RUN_STATES = ("success", "failed")
RECENT_RUNS = 5


class LiveView(Protocol):
    """What the hub needs of a view."""

    dag_id: str

    def live_newest(self, run: Mapping[str, Any]) -> None:
        """The DAG's newest run, as the store has it now (called every poll)."""

    def live_notice(self, notice: StateNotice) -> None:
        """A change decided in this process, for this view's DAG."""

    def live_states(self, run_id: str, states: Mapping[str, str]) -> None:
        """Task states of ``run_id`` that changed in the store since the last poll."""


def changed(known: Mapping[str, str], current: Mapping[str, str]) -> dict[str, str]:
    """The entries of ``current`` that differ from ``known``."""
    return {task_id: state for task_id, state in current.items() if known.get(task_id) != state}


class LiveHub:
    """Feeds the live views of this process; :func:`hub` gives the shared one."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._views: dict[str, weakref.WeakSet[Any]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._unwatch: Any = None
        self._wake = threading.Event()
        # runs driven in this process, with the thread driving them: while it lives, its notices
        # are fresher than the store (which an inline task keeps from being written)
        self._driven: dict[tuple[str, str], threading.Thread] = {}
        self._known: dict[tuple[str, str], dict[str, str]] = {}
        self._active: set[tuple[str, str]] = set()
        self._store: Store | None = None
        self._store_url: str | None = None
        #: number of polls so far, and the last error a poll met (None after a good one)
        self.polls = 0
        self.error: str | None = None

    # -- registration ------------------------------------------------------------------------------

    def add(self, view: LiveView) -> None:
        from nbflow import observers

        with self._lock:
            self._views.setdefault(view.dag_id, weakref.WeakSet()).add(view)
            if self._unwatch is None:
                self._unwatch = observers.watch(self._on_notice)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="nbflow-live", daemon=True)
                self._thread.start()
        self._wake.set()

    def remove(self, view: LiveView) -> None:
        with self._lock:
            views = self._views.get(view.dag_id)
            if views is not None:
                views.discard(view)
                if not views:
                    del self._views[view.dag_id]

    def views(self, dag_id: str | None = None) -> list[Any]:
        with self._lock:
            if dag_id is not None:
                return list(self._views.get(dag_id, ()))
            return [v for views in self._views.values() for v in views]

    def poke(self) -> None:
        """Poll now instead of at the next interval (a control just changed the store)."""
        self._wake.set()

    # -- in-process notices --------------------------------------------------------------------------

    def _on_notice(self, notice: StateNotice) -> None:
        key = (notice.dag_id, notice.run_id)
        if notice.task_id is None and notice.state in FINISHED_RUN_STATES:
            self._driven.pop(key, None)
            self._wake.set()  # one last look at the store, for anything the notices did not say
        else:
            self._driven[key] = threading.current_thread()
        for view in self.views(notice.dag_id):
            try:
                view.live_notice(notice)
            except Exception:
                log.exception("a live view failed on a notice; it stays registered")

    # -- polling -----------------------------------------------------------------------------------

    def _open_store(self) -> Store:
        from nbflow.settings import get_settings
        from nbflow.store import Store

        settings = get_settings()
        if self._store is None or self._store_url != settings.database_url:
            if self._store is not None:
                self._store.close()
            self._store = Store.open(settings)
            self._store_url = settings.database_url
        return self._store

    def poll_once(self) -> None:
        """One look at the store for every watched DAG."""
        from nbflow.store import queries

        store = self._open_store()
        for dag_id in list(self._views):
            views = self.views(dag_id)
            if not views:
                continue
            rows = store.list_runs(dag_id, limit=RECENT_RUNS)
            if rows:
                newest = max(rows, key=lambda row: row["id"])
                for view in views:
                    view.live_newest(newest)
            for row in rows:
                key = (dag_id, row["run_id"])
                active = row["state"] not in FINISHED_RUN_STATES
                was_active = key in self._active
                (self._active.add if active else self._active.discard)(key)
                if not (active or was_active or key not in self._known):
                    continue
                driver = self._driven.get(key)
                if driver is not None:
                    if driver.is_alive():
                        continue
                    del self._driven[key]  # its driver is gone without a word: the store knows best
                current = queries.task_states(store, row["id"], instances=True)
                delta = changed(self._known.get(key, {}), current)
                self._known[key] = current
                if delta:
                    for view in views:
                        view.live_states(row["run_id"], delta)
        self.polls += 1

    def _loop(self) -> None:
        failures = 0
        while True:
            with self._lock:
                if not any(self._views.values()):
                    self._thread = None
                    return
            try:
                self.poll_once()
                self.error = None
                failures = 0
            except Exception as exc:  # the store went away for a moment: say so, try again later
                failures += 1
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("nbflow live views: polling the store failed (%s)", self.error)
                if self._store is not None:
                    try:
                        self._store.close()
                    except Exception:
                        pass
                    self._store = None
            self._wake.wait(self.interval * min(2 ** failures, 30))
            self._wake.clear()


_HUB: LiveHub | None = None
_HUB_LOCK = threading.Lock()


def hub() -> LiveHub:
    """The process's hub (made on first use; nothing runs until a view registers)."""
    global _HUB
    with _HUB_LOCK:
        if _HUB is None:
            _HUB = LiveHub()
        return _HUB
