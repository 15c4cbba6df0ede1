"""Notices of state changes, in this process, the moment a run driver decides them.

The store is the truth and every view can poll it. But a run driven in this very process
(``dag.test()`` in a kernel, the in-kernel scheduler) knows each change before it is written (writes
are coalesced), and a task run inline blocks the writer until it ends; a graph under the cell that
started the run should not wait for either. So the driver also hands each change to the callbacks
registered here.

Callbacks run on the thread that made the change, inside the driver's loop: they must be quick
(hand the change to a batcher) and whatever they raise is logged and swallowed, because a broken
view must never break a run. Nothing is queued or replayed: a callback sees the changes made while
it is registered. With no callback registered, a notice costs one attribute read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StateNotice:
    """One change: of a task instance (``task_id`` set) or of the run itself (``task_id`` None)."""

    dag_id: str
    run_id: str
    task_id: str | None
    state: str


Callback = Callable[[StateNotice], object]

_lock = threading.Lock()
_callbacks: dict[int, tuple[str | None, Callback]] = {}
_next_key = 0
#: read without the lock on the hot path: True while any callback is registered
active = False


def watch(callback: Callback, dag_id: str | None = None) -> Callable[[], None]:
    """Call ``callback`` with every notice (of ``dag_id`` only, if given); returns the function
    that stops it."""
    global _next_key, active
    with _lock:
        key = _next_key
        _next_key += 1
        _callbacks[key] = (dag_id, callback)
        active = True

    def unwatch() -> None:
        global active
        with _lock:
            _callbacks.pop(key, None)
            active = bool(_callbacks)

    return unwatch


def notify(dag_id: str, run_id: str, task_id: str | None, state: str) -> None:
    """Tell the registered callbacks about one change."""
    if not active:
        return
    with _lock:
        targets = [cb for wanted, cb in _callbacks.values() if wanted is None or wanted == dag_id]
    if not targets:
        return
    notice = StateNotice(dag_id, run_id, task_id, state)
    for callback in targets:
        try:
            callback(notice)
        except Exception:
            log.exception("a state-change callback failed; the run goes on")
