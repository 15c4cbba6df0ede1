"""Run calls on a small pool of daemon threads in the caller's process.

Good for tasks that wait (HTTP, databases, sensors, notebooks run by a kernel): they share the
caller's memory and start in microseconds. A Python thread cannot be killed, so a timeout is
enforced by *giving up* on the call: at its deadline the call is reported as timed out, its thread
is retired and a fresh thread takes its slot. The stray thread keeps running until the call returns
on its own; its result is then dropped and ``on_done`` is not called again.
"""

from __future__ import annotations

import heapq
import itertools
import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from nbflow.errors import TaskTimeoutError, WorkerLostError
from nbflow.executors.base import HOSTNAME, Executor, Outcome, format_error


@dataclass(eq=False)
class _Call:
    key: Hashable
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    timeout: float | None
    started_at: float | None = None
    #: set under the lock by whichever side reports first: the worker or the watchdog
    reported: bool = False
    worker: _Worker | None = None


@dataclass(eq=False)
class _Worker:
    thread: threading.Thread | None = None
    #: a retired worker finishes its stray call, then exits without reporting it
    retired: bool = False
    call: _Call | None = field(default=None, repr=False)


class ThreadExecutor(Executor):
    """Up to ``parallelism`` daemon threads, started as work arrives and reused across calls.

    ``shutdown(wait=False)`` reports queued calls as never started (``WorkerLostError``) and returns;
    calls already running finish on their daemon threads and are still reported. Called from
    ``on_done`` (a pool thread), ``shutdown(wait=True)`` does not block, since that thread may be
    the one that has to run the queued calls; they still run and report.
    """

    name = "thread"
    in_process = True

    def __init__(self, parallelism: int = 4) -> None:
        super().__init__(parallelism)
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)       # workers wait here for calls
        self._deadline_changed = threading.Condition(self._lock)
        self._queue: deque[_Call] = deque()
        self._running: set[_Call] = set()
        self._workers: set[_Worker] = set()                # live, not retired
        self._idle = 0
        self._deadlines: list[tuple[float, int, _Call]] = []
        self._seq = itertools.count()
        self._watchdog: threading.Thread | None = None

    def submit(
        self, key: Hashable, fn: Callable[..., Any], args: tuple[Any, ...] = (), *,
        timeout: float | None = None, memory_limit: int | None = None,
        resources: dict[str, float] | None = None, priority: int = 0,
    ) -> None:
        self._check_open()
        if self._refuse_resources(key, resources):
            return
        if self._refuse_memory_limit(key, memory_limit):
            return
        with self._lock:
            self._queue.append(_Call(key, fn, tuple(args), timeout))
            if self._idle >= len(self._queue):
                self._work.notify()
            elif len(self._workers) < self.parallelism:
                self._spawn_worker()

    @property
    def free_slots(self) -> int:
        with self._lock:
            if self._closed:
                return 0
            return max(0, self.parallelism - len(self._running) - len(self._queue))

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            dropped = [] if wait else list(self._queue)
            if not wait:
                self._queue.clear()
            # from on_done, this thread may be the one that must drain the queue or fire the
            # deadlines: then do not block; the calls still finish and report
            me = threading.current_thread()
            wait = wait and me is not self._watchdog and all(w.thread is not me for w in self._workers)
            while wait and (self._queue or self._running):
                self._work.wait()
            workers = list(self._workers)
            self._work.notify_all()
            self._deadline_changed.notify_all()
        for call in dropped:
            error = WorkerLostError(None, "the executor was shut down before the call started")
            self._report(Outcome(call.key, ok=False, error=error, traceback=format_error(error)))
        if wait:
            for worker in workers:
                if worker.thread is not None and worker.thread is not me:
                    worker.thread.join()

    # -- inside the pool (called with the lock held unless said otherwise) ------------------------

    def _spawn_worker(self) -> None:
        worker = _Worker()
        worker.thread = threading.Thread(
            target=self._work_loop, args=(worker,), name=f"nbflow-thread-{next(self._seq)}", daemon=True
        )
        self._workers.add(worker)
        worker.thread.start()

    def _next_call(self, worker: _Worker) -> _Call | None:
        """Wait for a call and mark it started; None when the pool is closing and drained."""
        while not self._queue:
            if self._closed:
                self._workers.discard(worker)
                return None
            self._idle += 1
            self._work.wait()
            self._idle -= 1
        call = self._queue.popleft()
        call.started_at, call.worker, worker.call = time.time(), worker, call
        self._running.add(call)
        if call.timeout is not None:
            deadline = time.monotonic() + call.timeout
            if not self._deadlines or deadline < self._deadlines[0][0]:
                self._deadline_changed.notify()
            heapq.heappush(self._deadlines, (deadline, next(self._seq), call))
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, name="nbflow-thread-watchdog", daemon=True)
                self._watchdog.start()
        return call

    def _work_loop(self, worker: _Worker) -> None:
        while True:
            with self._lock:
                call = self._next_call(worker)
            if call is None:
                return
            try:
                outcome = Outcome(call.key, ok=True, value=call.fn(*call.args))
            except BaseException as exc:  # SystemExit from a task is the task's failure
                outcome = Outcome(call.key, ok=False, error=exc, traceback=format_error(exc))
            outcome.started_at, outcome.ended_at = call.started_at, time.time()
            outcome.pid, outcome.hostname = os.getpid(), HOSTNAME
            with self._lock:
                worker.call = None
                if call.reported:        # the watchdog gave up on this call and replaced us
                    return
                call.reported = True
                self._running.discard(call)
                self._notify_if_drained()
            self._report(outcome)

    def _watch(self) -> None:
        """The one thread that enforces every deadline, so a timeout costs no timer thread."""
        while True:
            expired: list[_Call] = []
            with self._lock:
                while not expired:
                    if self._closed and not self._running:
                        self._watchdog = None
                        return
                    now = time.monotonic()
                    while self._deadlines and (self._deadlines[0][2].reported or self._deadlines[0][0] <= now):
                        _, _, call = heapq.heappop(self._deadlines)
                        if not call.reported:
                            expired.append(call)
                    if not expired:
                        wait = self._deadlines[0][0] - now if self._deadlines else None
                        self._deadline_changed.wait(wait)
                for call in expired:
                    self._give_up(call)
            for call in expired:
                self._report(self._timed_out(call))

    def _give_up(self, call: _Call) -> None:
        """Report ``call`` as lost to its deadline, and free its slot for a fresh thread."""
        call.reported = True
        self._running.discard(call)
        worker = call.worker
        if worker is not None:
            worker.retired = True
            self._workers.discard(worker)
        if self._queue and self._idle < len(self._queue) and len(self._workers) < self.parallelism:
            self._spawn_worker()
        self._notify_if_drained()

    def _notify_if_drained(self) -> None:
        """Once closed and idle, wake shutdown(wait=True), the idle workers and the watchdog."""
        if self._closed and not self._queue and not self._running:
            self._work.notify_all()
            self._deadline_changed.notify_all()

    def _timed_out(self, call: _Call) -> Outcome:
        """The timeout outcome, with the stray call's current stack to show where it hung."""
        error = TaskTimeoutError(None, None, call.timeout or 0.0)
        text = format_error(error)
        thread = call.worker.thread if call.worker else None
        frame = sys._current_frames().get(thread.ident) if thread and thread.ident else None
        if frame is not None:
            stack = "".join(traceback.format_stack(frame))
            text = f"The call was still running here when it timed out:\n{stack}{text}"
        return Outcome(
            call.key, ok=False, error=error, traceback=text, timed_out=True,
            started_at=call.started_at, ended_at=time.time(), pid=os.getpid(), hostname=HOSTNAME,
        )
