"""Following a run from the store: a background thread that polls cheaply and reports changes.

The run may be driven anywhere: ``dag.test()`` on the kernel's main thread, a scheduler host, another
machine. All the follower needs is the store, so it reads ``get_task_instances`` of the run every
``interval`` seconds (one indexed query) and reports only the task states that changed since the last
look. It never touches a widget itself; the callbacks do.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbflow.store import Store

log = logging.getLogger(__name__)

#: run states after which nothing changes any more (until someone clears the run)
FINISHED_RUN_STATES = ("success", "failed")


def run_task_states(store: Store, dag_id: str, run_id: str) -> dict[str, str]:
    """``{task_id: state}`` of one run as the store has it now; empty for an unknown run."""
    row = store.get_run(dag_id, run_id)
    if row is None:
        return {}
    return {ti["task_id"]: ti["state"] for ti in store.get_task_instances(row["id"])}


class RunFollower:
    """Polls the store in a daemon thread until the followed run ends, then stops.

    With ``run_id`` it follows that run. Without, it waits up to ``wait`` seconds for a run of
    ``dag_id`` created after :meth:`start` (or one already running) and follows that. Callbacks run
    on the follower's thread: ``on_run(run_row)`` when it starts following a run and when that run's
    state changes, ``on_states({task_id: state})`` with the states that changed (everything on the
    first look), ``on_end(run_row or None)`` once at the end. A callback that raises is logged and
    the polling goes on: a broken view must not stop the view from updating later.
    """

    def __init__(
        self,
        dag_id: str,
        *,
        run_id: str | None = None,
        interval: float = 0.5,
        wait: float | None = 300.0,
        on_run: Callable[[dict[str, Any]], Any] | None = None,
        on_states: Callable[[dict[str, str]], Any] | None = None,
        on_end: Callable[[dict[str, Any] | None], Any] | None = None,
    ) -> None:
        self.dag_id = dag_id
        self.run_id = run_id
        self.interval = float(interval)
        self.wait = wait
        self._on_run = on_run
        self._on_states = on_states
        self._on_end = on_end
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._baseline = 0
        #: number of store polls so far (a cheap way for tests and users to see it is alive)
        self.polls = 0
        self.error: str | None = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> RunFollower:
        """Start polling. The runs that exist now are noted here, on the caller's thread, so that a
        run started right after this call is recognised as the new one."""
        from nbflow.store import Store

        store = Store.open()
        try:
            if self.run_id is None:
                latest = store.list_runs(self.dag_id, limit=None)
                self._baseline = max((row["id"] for row in latest), default=0)
        except BaseException:
            store.close()
            raise
        self._thread = threading.Thread(target=self._loop, args=(store,), name=f"nbflow-follow-{self.dag_id}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop polling and wait (up to ``timeout`` seconds) for the thread to end."""
        self._stop.set()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the followed run to end (or :meth:`stop`); True if the thread is done."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return not self.alive

    # -- the thread -------------------------------------------------------------------------------

    def _call(self, callback: Callable[[Any], Any] | None, value: Any) -> None:
        if callback is None:
            return
        try:
            callback(value)
        except Exception:
            log.exception("a run follower callback failed; following goes on")

    def _pick(self, store: Store) -> dict[str, Any] | None:
        if self.run_id is not None:
            return store.get_run(self.dag_id, self.run_id)
        rows = store.list_runs(self.dag_id, limit=20)
        fresh = [row for row in rows if row["id"] > self._baseline or row["state"] == "running"]
        return max(fresh, key=lambda row: row["id"]) if fresh else None

    def _loop(self, store: Store) -> None:
        import time

        run: dict[str, Any] | None = None
        known: dict[str, str] = {}
        started = time.monotonic()
        try:
            while not self._stop.is_set():
                self.polls += 1
                if run is None:
                    run = self._pick(store)
                    if run is not None:
                        self.run_id = run["run_id"]
                        self._call(self._on_run, run)
                    elif self.wait is not None and time.monotonic() - started > self.wait:
                        break
                if run is not None:
                    row = store.get_run_by_pk(run["id"])
                    if row is None:  # deleted under us
                        break
                    current = {ti["task_id"]: ti["state"] for ti in store.get_task_instances(row["id"])}
                    changes = changed(known, current)
                    known.update(changes)
                    if changes:
                        self._call(self._on_states, changes)
                    if row["state"] != run["state"]:
                        self._call(self._on_run, row)
                    run = row
                    if row["state"] in FINISHED_RUN_STATES:
                        break
                self._stop.wait(self.interval)
        except Exception as exc:  # the store went away: say so, do not take the kernel down
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("following %s stopped", self.dag_id)
        finally:
            store.close()
            self._call(self._on_end, run)


def changed(known: Mapping[str, str], current: Mapping[str, str]) -> dict[str, str]:
    """The entries of ``current`` that differ from ``known``."""
    return {task_id: state for task_id, state in current.items() if known.get(task_id) != state}
