"""Coalescing task-state changes into a few batches a second, from any number of threads.

A run can change thousands of states a second and every update a widget sends costs a message; the
views take their changes from a :class:`StateBatcher`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Mapping

from nbflow.jupyter.styles import NO_STATUS, state_key

log = logging.getLogger(__name__)


class StateBatcher:
    """Coalesces task state changes pushed from any thread into at most ``rate`` batches a second.

    A run can change thousands of states a second and every update a widget sends costs a message,
    so changes wait here and go to ``callback`` as one ``{task_id: state}`` dict, keeping only the
    latest state of each task. Batches are delivered one at a time and in order, from a background
    thread started on the first push (or from the caller of :meth:`flush`/:meth:`close`). A
    callback that raises is logged and the batcher carries on, so a broken view never breaks the
    run that feeds it. Changes pushed after :meth:`close` are ignored: the view is gone.
    """

    def __init__(self, callback: Callable[[dict[str, str]], Any], *, rate: float = 4.0) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate!r}")
        self._callback = callback
        self._interval = 1.0 / rate
        self._pending: dict[str, str] = {}
        self._lock = threading.Condition()
        self._deliver = threading.RLock()  # close() may be called from the callback
        self._last = float("-inf")
        self._closed = False
        self._thread: threading.Thread | None = None

    def push(self, task_id: str, state: Any) -> None:
        self.push_many({task_id: state})

    def push_many(self, changes: Mapping[str, Any]) -> None:
        with self._lock:
            if self._closed:
                return
            for task_id, state in changes.items():
                self._pending[task_id] = state_key(state) if state is not None else NO_STATUS
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nbflow-graph-states", daemon=True)
                self._thread.start()
            self._lock.notify()

    def flush(self) -> None:
        """Deliver what is pending now, whatever the rate."""
        with self._deliver:
            with self._lock:
                batch, self._pending = self._pending, {}
                self._last = time.monotonic()
            self._send(batch)

    def close(self) -> None:
        """Deliver what is pending and stop the background thread."""
        with self._lock:
            self._closed = True
            self._lock.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.flush()

    def __enter__(self) -> StateBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, batch: dict[str, str]) -> None:
        if not batch:
            return
        try:
            self._callback(batch)
        except Exception:
            log.exception("the graph view's state callback failed; carrying on")

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                wait = self._last + self._interval - time.monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                    continue
            self.flush()
