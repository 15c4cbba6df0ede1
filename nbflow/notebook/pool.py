"""Warm kernels: start them before they are needed, hand each to one notebook, then discard it.

A kernel start costs most of a short notebook task's time (about 0.7 s against 25 ms for four
trivial cells). :class:`KernelPool` keeps ``size`` kernels per kernel name started and answering,
so a task takes one that is ready, and the pool starts its replacement in the background. A kernel
runs one task and is then shut down, so tasks are as isolated as with papermill's own kernels.

The replacement starts when the task gives its kernel back, or :data:`REFILL_DELAY` into the run,
whichever comes first. A kernel's start is about 0.3 s of CPU: begun together with the run, on a
machine of two cores it competed with the notebook's first cells and the client, and a warm run of
four trivial cells took twice as long (99 ms against 48 ms). A run that lasts longer still has its
replacement started early, so that the next task of a chain finds it ready as before; a claim that
finds no kernel ready starts one at once.

``reuse_kernel=True`` opts out of that isolation for speed: after the run the kernel is kept for the
next run of the same notebook, which begins with ``%reset -f``. The reset clears the notebook's
variables only: imported modules stay imported (with their module-level state), and environment
variables, open files, threads and other process state the notebook changed stay changed. A kernel
whose run timed out is never reused. Kernels started ahead of need inherit the environment of the
process at the time they start; the working directory is set per run.

Shutting a used kernel down happens in the background: the result is known before the kernel is
gone, and an ipykernel that does not exit when asked would otherwise add seconds to the task. A
kernel that was never handed out ran no user code, so it is killed rather than asked.

A command that runs one run (``nbflow dags test``) knows its notebook tasks before the first task
starts: :func:`nbflow.notebook.prestart.prestarted_kernels` starts their kernels at once, on a pool
of its own that starts no more than those.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import os
import subprocess
import tempfile
import uuid
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

#: nbclient runs cells with an asyncio client; the manager itself stays synchronous so that any
#: thread can use it
CLIENT_CLASS = "jupyter_client.asynchronous.AsyncKernelClient"
#: seconds a kernel gets to exit when asked before it is killed
SHUTDOWN_WAIT = 1.0
#: seconds into a run that took a warm kernel before its replacement starts (if the run lasts)
REFILL_DELAY = 0.1

_reapers: set[threading.Thread] = set()
_reapers_lock = threading.Lock()
_wait_at_exit = False
#: kernels given up while starting, stopped when their start ends
_doomed: set[Future[Any]] = set()
_doomed_done = threading.Condition()


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

    previous = _thread_event_loop()

    def run() -> Any:
        try:
            return function(*args, **kwargs)
        finally:
            from jupyter_core.utils import ensure_event_loop

            ensure_event_loop().close()
            # The thread's loop as it was: a caller's own loop (a test harness's, a host's) stays
            # its current loop, rather than None under it.
            asyncio.set_event_loop(previous)

    return contextvars.Context().run(run)


def _thread_event_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop set for this thread, or None, without creating one. asyncio has no public
    call for that: ``get_event_loop()`` creates a loop (and warns) when none is set, so the default
    policy's thread-local slot is read."""
    loop = getattr(getattr(asyncio.get_event_loop_policy(), "_local", None), "_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_closed() else None


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
    km.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, extra_arguments=_kernel_arguments(km))
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


def _kernel_arguments(km: Any) -> list[str]:
    """Options for an IPython kernel (other kernels get none): no history database. Every IPython
    kernel writes each cell to one SQLite file in the user's profile, and kernels running notebook
    tasks side by side lock each other out of it ("database is locked", which can end a kernel's
    start); nor do scheduled runs belong in the user's interactive history. ``In``, ``Out`` and
    ``%history`` of the run itself still work, from memory."""
    spec = km.kernel_spec
    if spec.language == "python" and any("ipykernel" in str(part) for part in spec.argv):
        return ["--HistoryManager.enabled=False"]
    return []


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


def discard(km: Any, now: bool = False) -> None:
    """Shut ``km``'s kernel down in a background thread; returns at once. ``now`` kills it without
    asking (for a kernel that never ran anything)."""

    def reap() -> None:
        try:
            call_in_own_loop(_shutdown, km, now)
        finally:
            with _reapers_lock:
                _reapers.discard(thread)

    global _wait_at_exit
    thread = threading.Thread(target=reap, name="nbflow-kernel-shutdown", daemon=True)
    with _reapers_lock:
        _reapers.add(thread)
        if not _wait_at_exit:
            # a command ends without leaving kernels behind: its reapers are daemon threads
            atexit.register(wait_for_shutdowns)
            _wait_at_exit = True
    thread.start()


def wait_for_shutdowns(timeout: float = 5.0) -> None:
    """Wait (up to ``timeout`` seconds each) for kernels being shut down in the background, and for
    kernels given up while they were starting, which are stopped once started."""
    with _doomed_done:  # until each one's reaper is started (its future is done a little before)
        _doomed_done.wait_for(lambda: not _doomed, timeout)
    with _reapers_lock:
        pending = list(_reapers)
    for thread in pending:
        thread.join(timeout)


class KernelPool:
    """Kernels started ahead of need, ``size`` per kernel name. Thread-safe.

    ``acquire`` returns ``(km, source)`` where ``source`` is ``"warm"`` (started ahead by the pool),
    ``"reused"`` (kept from an earlier run of the same notebook) or ``"cold"`` (started on the spot,
    when the pool had none for this kernel name yet). Give every kernel back with ``release``.
    ``claim`` is ``acquire`` in two steps, so that a caller does other work while its kernel starts.
    ``size=0`` starts kernels only when asked (``warm(count=...)``, ``claim``).
    """

    def __init__(self, size: int = 1, startup_timeout: float = 60.0) -> None:
        self.size = size
        self.startup_timeout = startup_timeout
        self._lock = threading.Lock()
        self._starting: dict[str, deque[Future[Any]]] = {}
        self._idle: dict[tuple[str, str], list[Any]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        #: replacements waiting for a run to end or for REFILL_DELAY, per kernel name
        self._refills: dict[str, threading.Timer] = {}

    def _fill(self, kernel_name: str, count: int = 0) -> None:
        """Start kernels until ``max(size, count)`` are ready or starting (the lock is held)."""
        if self._closed:
            return
        queue = self._starting.setdefault(kernel_name, deque())
        if self._executor is None:
            # imported here first: two threads importing jupyter_client at once can see it half-done
            import jupyter_client.blocking
            import jupyter_client.manager  # noqa: F401

            # as many starts at once as are asked for at first: a run's kernels, started together
            # by prestart, are each ready before their task; two threads otherwise
            self._executor = ThreadPoolExecutor(max_workers=max(2, self.size, count),
                                                thread_name_prefix="nbflow-kernel-pool")
        while len(queue) < max(self.size, count):
            queue.append(self._executor.submit(start_kernel, kernel_name, self.startup_timeout))

    def warm(self, kernel_name: str = "python3", wait: bool = False, count: int = 0) -> None:
        """Have ``size`` (or ``count``, if more) kernels of ``kernel_name`` started; with ``wait``,
        until they answer."""
        with self._lock:
            self._fill(kernel_name, count)
            pending = list(self._starting.get(kernel_name, ()))
        if wait:
            for future in pending:
                future.exception()

    def claim(self, kernel_name: str, reuse_key: str | None = None) -> Claim:
        """A kernel of ``kernel_name`` set aside for the caller, maybe still starting: ``take()``
        waits for it, ``drop()`` gives it up unused. A kernel the pool has none of yet starts now,
        in the background."""
        with self._lock:
            if reuse_key is not None:
                idle = self._idle.get((kernel_name, reuse_key))
                if idle:
                    return Claim(self, kernel_name, km=idle.pop())
            queue = self._starting.get(kernel_name)
            future = queue.popleft() if queue else None
            source = "warm"
            if future is None and not self._closed:
                self._fill(kernel_name, 1)
                future, source = self._starting[kernel_name].popleft(), "cold"
                self._fill(kernel_name)  # kernels are wanted faster than they start: no waiting
            else:
                self._refill_soon(kernel_name)
        return Claim(self, kernel_name, future=future, source=source)

    def _refill_soon(self, kernel_name: str) -> None:
        """Start the replacement of a kernel just handed out at :data:`REFILL_DELAY`, or when a
        kernel of that name comes back, whichever is first (the lock is held)."""
        if self._closed or not self.size or kernel_name in self._refills:
            return
        timer = threading.Timer(REFILL_DELAY, self._refill, (kernel_name,))
        timer.daemon = True
        self._refills[kernel_name] = timer
        timer.start()

    def _refill(self, kernel_name: str) -> None:
        with self._lock:
            timer = self._refills.pop(kernel_name, None)
            if timer is not None:
                timer.cancel()
            self._fill(kernel_name)

    def acquire(self, kernel_name: str, reuse_key: str | None = None) -> tuple[Any, str]:
        return self.claim(kernel_name, reuse_key).take()

    def release(self, km: Any, kernel_name: str, reuse_key: str | None = None) -> None:
        """Give ``km`` back: kept for the next run of ``reuse_key`` when given, else discarded."""
        if kernel_name in self._refills:  # its run is over: its replacement starts now
            self._refill(kernel_name)
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
            refills, self._refills = list(self._refills.values()), {}
        for timer in refills:
            timer.cancel()
        for future in futures:
            _discard_when_started(future)
        for km in idle:
            discard(km)
        if executor is not None:
            executor.shutdown(wait=False)

    def __repr__(self) -> str:
        with self._lock:
            ready = {name: sum(f.done() for f in queue) for name, queue in self._starting.items()}
        return f"<KernelPool size={self.size} ready={ready}>"


def _discard_started(future: Future[Any]) -> None:
    try:
        if not future.cancelled() and future.exception() is None:
            discard(future.result(), now=True)
    finally:
        with _doomed_done:
            _doomed.discard(future)
            _doomed_done.notify_all()


def _discard_when_started(future: Future[Any]) -> None:
    """Stop the kernel of ``future`` without using it: never started if it can be cancelled, else
    killed once up (:func:`wait_for_shutdowns` waits for it)."""
    if future.cancel():
        return
    with _doomed_done:
        _doomed.add(future)
    future.add_done_callback(_discard_started)


def _alive(km: Any) -> bool:
    """Whether a kernel's process still runs, asked of its process without a message (a dead
    kernel's client would wait out the whole startup timeout for an answer)."""
    process = getattr(getattr(km, "provisioner", None), "process", None)
    return process is None or process.poll() is None


class Claim:
    """A kernel set aside by :meth:`KernelPool.claim`: take it once, or drop it."""

    def __init__(self, pool: KernelPool, kernel_name: str, *, km: Any = None, future: Future[Any] | None = None,
                 source: str = "reused") -> None:
        self.pool, self.kernel_name = pool, kernel_name
        self._km, self._future, self._source = km, future, source

    def take(self) -> tuple[Any, str]:
        """``(km, source)`` once the kernel answers; a kernel that failed to start ahead is started
        again, now (``"cold"``)."""
        km = self._km
        if km is None and self._future is not None:
            try:
                km = self._future.result()
            except Exception:
                km = None
        if km is not None:
            if _alive(km):
                return km, self._source
            discard(km, now=True)  # it died while it waited (killed, out of memory): never hand it out
        return start_kernel(self.kernel_name, self.pool.startup_timeout), "cold"

    def drop(self) -> None:
        """Give the kernel up without using it: it is stopped, at once or when it has started."""
        if self._km is not None:
            discard(self._km)
        elif self._future is not None:
            _discard_when_started(self._future)


_default: KernelPool | None = None
_default_lock = threading.Lock()


def default_pool() -> KernelPool:
    """The process's pool, created on first use and shut down when the process exits."""
    global _default
    with _default_lock:
        if _default is None:
            from nbflow.executors.base import CALLS_END_THEIR_PROCESSES

            # in a worker process a spare kernel would be ended with the call that started it
            _default = KernelPool(size=0 if os.environ.get(CALLS_END_THEIR_PROCESSES) else 1)
            atexit.register(_shutdown_default)
        return _default


def _shutdown_default() -> None:
    global _default
    with _default_lock:
        pool, _default = _default, None
    if pool is not None:
        pool.shutdown()
    wait_for_shutdowns()


def close_kernels() -> None:
    """Stop the process's pool and wait for every kernel being shut down: for a process that ends
    without running its ``atexit`` handlers (the ``nbflow`` command ends with ``os._exit``)."""
    _shutdown_default()


@contextlib.contextmanager
def use_default_pool(pool: KernelPool) -> Iterator[KernelPool]:
    """Make ``pool`` the process's pool (what :func:`default_pool` returns) for the ``with`` block."""
    global _default
    with _default_lock:
        previous, _default = _default, pool
    try:
        yield pool
    finally:
        with _default_lock:
            _default = previous
