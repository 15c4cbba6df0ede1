"""Warm kernels: start them before they are needed, hand each to one notebook, then discard it.

A kernel start costs most of a short notebook task's time (about 0.7 s against 25 ms for four
trivial cells). :class:`KernelPool` keeps ``size`` kernels per kernel name started and answering,
so a task takes one that is ready while the pool starts its replacement in the background. A kernel
runs one task and is then shut down, so tasks are as isolated as with papermill's own kernels.

``reuse_kernel=True`` opts out of that isolation for speed: after the run the kernel is kept for the
next run of the same notebook, which begins with ``%reset -f``. The reset clears the notebook's
variables only: imported modules stay imported (with their module-level state), and environment
variables, open files, threads and other process state the notebook changed stay changed. A kernel
whose run timed out is never reused. Kernels started ahead of need inherit the environment of the
process at the time they start; the working directory is set per run.

Shutting a used kernel down happens in the background: the result is known before the kernel is
gone, and an ipykernel that does not exit when asked would otherwise add seconds to the task.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import os
import subprocess
import tempfile
import uuid
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

#: nbclient runs cells with an asyncio client; the manager itself stays synchronous so that any
#: thread can use it
CLIENT_CLASS = "jupyter_client.asynchronous.AsyncKernelClient"
#: seconds a kernel gets to exit when asked before it is killed
SHUTDOWN_WAIT = 1.0

_reapers: set[threading.Thread] = set()
_reapers_lock = threading.Lock()


def call_in_own_loop(function: Any, *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``, with jupyter_client's and nbclient's blocking calls running on
    an event loop that is closed when it returns.

    Their blocking wrappers otherwise leave an event loop open on every thread they run in, and a
    thread of a task executor may end long before the process. Under a running loop (a Jupyter
    kernel's main thread) they use a runner thread of their own, and the call is made as is.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return function(*args, **kwargs)

    def run() -> Any:
        try:
            return function(*args, **kwargs)
        finally:
            from jupyter_core.utils import ensure_event_loop

            ensure_event_loop().close()
            asyncio.set_event_loop(None)

    return contextvars.Context().run(run)


def start_kernel(kernel_name: str, startup_timeout: float = 60.0) -> Any:
    """A started kernel that has answered a ``kernel_info`` request, as a ``KernelManager``."""
    return call_in_own_loop(_start_kernel, kernel_name, startup_timeout)


def _start_kernel(kernel_name: str, startup_timeout: float) -> Any:
    from jupyter_client.manager import KernelManager

    # Unix sockets with a path of their own rather than TCP ports: kernels started at the same time
    # by several processes (schedulers, test workers) can pick the same free port and one dies.
    ipc = os.path.join(tempfile.gettempdir(), f"nbflow-kernel-{uuid.uuid4().hex[:16]}")
    km = KernelManager(kernel_name=kernel_name, client_class=CLIENT_CLASS, shutdown_wait_time=SHUTDOWN_WAIT,
                       transport="ipc", ip=ipc)
    # What a notebook prints travels over the kernel's messages; the process's own streams only
    # carry kernel housekeeping (e.g. noticing its parent exited), which must not reach the user.
    km.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # A client of the manager, not a free-standing one: a free-standing client judges "alive" by
    # the heartbeat, which under load beats late and makes a healthy kernel look dead.
    kc = km.blocking_client()
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=startup_timeout)
    except BaseException:
        _shutdown(km, now=True)
        raise
    finally:
        kc.stop_channels()
    return km


def _shutdown(km: Any, now: bool = False) -> None:
    try:
        km.shutdown_kernel(now=now)
    except Exception:  # already dead, or killed meanwhile: nothing left to stop
        pass
    try:
        if getattr(km, "_created_context", False):
            km.context.destroy(linger=0)
    except Exception:
        pass


def discard(km: Any) -> None:
    """Shut ``km``'s kernel down in a background thread; returns at once."""

    def reap() -> None:
        try:
            call_in_own_loop(_shutdown, km)
        finally:
            with _reapers_lock:
                _reapers.discard(thread)

    thread = threading.Thread(target=reap, name="nbflow-kernel-shutdown", daemon=True)
    with _reapers_lock:
        _reapers.add(thread)
    thread.start()


def wait_for_shutdowns(timeout: float = 5.0) -> None:
    """Wait (up to ``timeout`` seconds each) for kernels being shut down in the background."""
    with _reapers_lock:
        pending = list(_reapers)
    for thread in pending:
        thread.join(timeout)


class KernelPool:
    """Kernels started ahead of need, ``size`` per kernel name. Thread-safe.

    ``acquire`` returns ``(km, source)`` where ``source`` is ``"warm"`` (started ahead by the pool),
    ``"reused"`` (kept from an earlier run of the same notebook) or ``"cold"`` (started on the spot,
    when the pool had none for this kernel name yet). Give every kernel back with ``release``.
    """

    def __init__(self, size: int = 1, startup_timeout: float = 60.0) -> None:
        self.size = size
        self.startup_timeout = startup_timeout
        self._lock = threading.Lock()
        self._starting: dict[str, deque[Future[Any]]] = {}
        self._idle: dict[tuple[str, str], list[Any]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    def _fill(self, kernel_name: str) -> None:
        """Start kernels until ``size`` are ready or starting (the lock is held)."""
        if self._closed:
            return
        queue = self._starting.setdefault(kernel_name, deque())
        if self._executor is None:
            # imported here first: two threads importing jupyter_client at once can see it half-done
            import jupyter_client.blocking
            import jupyter_client.manager  # noqa: F401

            self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nbflow-kernel-pool")
        while len(queue) < self.size:
            queue.append(self._executor.submit(start_kernel, kernel_name, self.startup_timeout))

    def warm(self, kernel_name: str = "python3", wait: bool = False) -> None:
        """Have ``size`` kernels of ``kernel_name`` started; with ``wait``, until they answer."""
        with self._lock:
            self._fill(kernel_name)
            pending = list(self._starting[kernel_name])
        if wait:
            for future in pending:
                future.exception()

    def acquire(self, kernel_name: str, reuse_key: str | None = None) -> tuple[Any, str]:
        with self._lock:
            if reuse_key is not None:
                idle = self._idle.get((kernel_name, reuse_key))
                if idle:
                    return idle.pop(), "reused"
            queue = self._starting.get(kernel_name)
            future = queue.popleft() if queue else None
            self._fill(kernel_name)
        if future is not None:
            try:
                return future.result(), "warm"
            except Exception:  # a kernel that failed to start ahead: try once more, now
                pass
        return start_kernel(kernel_name, self.startup_timeout), "cold"

    def release(self, km: Any, kernel_name: str, reuse_key: str | None = None) -> None:
        """Give ``km`` back: kept for the next run of ``reuse_key`` when given, else discarded."""
        if reuse_key is not None:
            with self._lock:
                idle = self._idle.setdefault((kernel_name, reuse_key), [])
                if not self._closed and len(idle) < self.size:
                    idle.append(km)
                    return
        discard(km)

    def shutdown(self) -> None:
        """Stop every kernel the pool holds or is starting; kernels handed out are their users'."""
        with self._lock:
            self._closed = True
            futures = [f for queue in self._starting.values() for f in queue]
            idle = [km for kms in self._idle.values() for km in kms]
            self._starting.clear()
            self._idle.clear()
            executor, self._executor = self._executor, None
        for future in futures:
            if not future.cancel():
                future.add_done_callback(_discard_started)
        for km in idle:
            discard(km)
        if executor is not None:
            executor.shutdown(wait=False)

    def __repr__(self) -> str:
        with self._lock:
            ready = {name: sum(f.done() for f in queue) for name, queue in self._starting.items()}
        return f"<KernelPool size={self.size} ready={ready}>"


def _discard_started(future: Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        discard(future.result())


_default: KernelPool | None = None
_default_lock = threading.Lock()


def default_pool() -> KernelPool:
    """The process's pool, created on first use and shut down when the process exits."""
    global _default
    with _default_lock:
        if _default is None:
            _default = KernelPool()
            atexit.register(_shutdown_default)
        return _default


def _shutdown_default() -> None:
    global _default
    with _default_lock:
        pool, _default = _default, None
    if pool is not None:
        pool.shutdown()
    wait_for_shutdowns()
