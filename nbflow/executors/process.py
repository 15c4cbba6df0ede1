"""Run calls in persistent worker processes, shipped there with cloudpickle.

Why processes: CPU-bound tasks get real parallelism, a crashing task (segfault, ``os._exit``, the
OOM killer) cannot take the caller down, and a timeout can really stop a call, by killing its worker.
Why persistent: starting Python and importing a task's libraries costs tens to hundreds of
milliseconds, so a worker is started once and then reused for call after call.

How it works. Each worker is a fresh interpreter running ``_worker.py`` as a script (started with
fork-and-exec, never a bare fork, because the caller has threads; and not through
``multiprocessing``, which would re-import the caller's ``__main__`` in every worker). It lives in
its own session, so that killing its process group also kills whatever the task started. Each
worker is connected to the parent by one socket. Calls are pickled with cloudpickle, so functions
defined in a notebook cell or in ``__main__``, lambdas and closures travel by value. One "pump"
thread in the parent waits on every worker socket at once: it reads results, notices dead workers
(end of file), enforces every deadline, starts replacements and hands out queued calls. Only the
pump closes sockets and reaps processes, so no other thread ever waits on a closed socket.

A worker's end is seen on its pidfd (Linux), not only on its socket: a process the task forked may
hold the socket open after the worker itself died. When a call ends, the worker ends whatever the
call started (see ``_worker.py``); when a worker dies or is killed, its whole process group goes
with it. A worker whose memory stays above ``max_rss_mb`` after a call says so in its reply and
exits; a fresh one takes its place, so memory a task left behind returns to the system.

A call's memory is watched by one :class:`~nbflow.executors.memwatch.MemoryWatcher` thread per
executor: a call over its ``memory_limit`` (RSS summed over its worker and every process below it)
has its worker's process group and process tree killed and is reported as ``MemoryLimitError``.
Every outcome carries ``peak_rss``: the worker's own high-water mark over the call, or what the
watcher sampled of the whole tree, whichever is more.

The wire protocol is described in ``_worker.py``, its other end.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import cloudpickle

from nbflow.errors import (
    ConfigError,
    MemoryLimitError,
    OutputNotSerializableError,
    RemoteTaskError,
    TaskTimeoutError,
    WorkerLostError,
)
from nbflow.executors.base import HOSTNAME, Executor, Outcome, format_error, log
from nbflow.executors.memwatch import MemoryWatcher
from nbflow.importcost import SKIPPED

WORKER_SCRIPT = str(Path(__file__).with_name("_worker.py"))
#: workers that die before they are ready, in a row, before queued calls are failed instead of
#: starting yet another worker (a broken environment must not become an endless restart loop)
MAX_FAILED_STARTS = 3
#: without pidfds (not Linux), how often the pump looks for workers that died with their socket
#: still held open by a process they forked
EXIT_POLL_SECONDS = 1.0
HAVE_PIDFD = hasattr(os, "pidfd_open")


@dataclass(eq=False)
class _Call:
    key: Hashable
    payload: bytes
    timeout: float | None
    sent_at: float | None = None
    #: bytes the call's process tree may hold; None for no limit
    memory_limit: int | None = None


@dataclass(eq=False)
class _Worker:
    proc: subprocess.Popen[bytes]
    conn: Connection
    #: False until the worker says it can take calls
    ready: bool = False
    call: _Call | None = None
    #: time.monotonic() by which the current call must end
    deadline: float | None = None
    #: told to exit or killed: it takes no more calls and the pump reaps it
    retiring: bool = False
    #: why the executor killed it, for the outcome of the call it was running
    reason: str = ""
    #: readable once the process has ended (-1 where pidfds are not available)
    pidfd: int = -1
    #: why the worker retires itself after its last reply (memory); a fresh worker replaces it
    recycled: str = ""
    #: (limit, peak) when the memory watcher killed it for going over its call's memory_limit
    over_limit: tuple[int, int] | None = None


class ProcessExecutor(Executor):
    """Up to ``parallelism`` worker processes, started as work arrives and reused across calls.

    Timeouts are hard: at the deadline the worker's process group is killed, the call is reported
    as timed out and a replacement worker starts. A worker that dies mid-call is reported as
    ``WorkerLostError`` and replaced. ``shutdown(wait=False)`` reports queued calls as never started
    and kills the workers still running calls (reported as ``WorkerLostError``); idle workers exit.
    Called from ``on_done`` (the pump thread), ``shutdown(wait=True)`` does not block: the pump
    itself drains the calls. Call ``shutdown`` or use ``with``: the workers live until then (or until
    this process exits, which they notice). POSIX only (sessions and process groups).
    """

    name = "process"
    in_process = False

    def __init__(self, parallelism: int = 4, max_rss_mb: int = 0) -> None:
        super().__init__(parallelism)
        if isinstance(max_rss_mb, bool) or not isinstance(max_rss_mb, int) or max_rss_mb < 0:
            raise ConfigError("worker_max_rss_mb", max_rss_mb, "it must be a whole number of MiB, 0 for no limit")
        #: a worker above this resident memory (MiB) after a call is replaced; 0: no limit
        self.max_rss_mb = max_rss_mb
        self._lock = threading.Lock()
        self._queue: deque[_Call] = deque()
        self._workers: list[_Worker] = []
        self._pump: threading.Thread | None = None
        self._wake_r = self._wake_w = -1
        self._wake_pending = False
        self._failed_starts = 0
        self._watcher = MemoryWatcher(self._over_limit)

    # -- the contract -----------------------------------------------------------------------------

    def submit(
        self, key: Hashable, fn: Callable[..., Any], args: tuple[Any, ...] = (), *,
        timeout: float | None = None, memory_limit: int | None = None,
        resources: dict[str, float] | None = None, priority: int = 0,
    ) -> None:
        self._check_open()
        if self._refuse_resources(key, resources):
            return
        try:
            payload = cloudpickle.dumps((fn, tuple(args)), protocol=5)
        except Exception as exc:
            error = TypeError(
                f"cannot send {getattr(fn, '__qualname__', fn)!r} to a worker process: the function "
                f"or its arguments do not pickle ({type(exc).__name__}: {exc}). Pass plain data and "
                "open files, connections and locks inside the task, or use the thread executor."
            )
            error.__cause__ = exc
            self._report(Outcome(key, ok=False, error=error, traceback=format_error(error)))
            return
        with self._lock:
            if self._pump is None:
                self._start_pump()
            self._queue.append(_Call(key, payload, timeout, memory_limit=memory_limit))
            if threading.current_thread() is not self._pump:
                # The pump sends: a caller that wrote to a worker's socket itself would hold the
                # lock the pump needs for every reply, and the two threads would trade the GIL on
                # each write. One wake-up covers every call submitted before the pump looks.
                self._wake()
                return
            outcomes = self._dispatch()
        for outcome in outcomes:
            self._report(outcome)

    def cancel(self, key: Hashable, reason: str) -> bool:
        """A queued call is dropped, a running one has its worker's process group killed; either is
        reported as lost with ``reason``, and a fresh worker takes the dead one's place."""
        with self._lock:
            for call in list(self._queue):
                if call.key == key:
                    self._queue.remove(call)
                    dropped = self._lost(call, None, reason)
                    break
            else:
                for worker in self._workers:
                    if worker.call is not None and worker.call.key == key and not worker.retiring:
                        worker.reason = reason
                        worker.retiring = True
                        _kill_group(worker.proc)
                        return True
                return False
        self._report(dropped)
        return True

    @property
    def free_slots(self) -> int:
        with self._lock:
            if self._closed:
                return 0
            busy = sum(1 for worker in self._workers if worker.call is not None)
            return max(0, self.parallelism - busy - len(self._queue))

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            outcomes: list[Outcome] = []
            if not wait:
                while self._queue:
                    outcomes.append(self._lost(self._queue.popleft(), None, "the executor was shut down before the call started"))
                for worker in self._workers:
                    if worker.call is not None and not worker.retiring:
                        worker.reason = "the executor was shut down while the call ran"
                        worker.retiring = True
                        _kill_group(worker.proc)
            outcomes += self._dispatch()  # with nothing queued, this tells idle workers to exit
            pump = self._pump
            if pump is not None:
                self._wake()
        for outcome in outcomes:
            self._report(outcome)
        if wait and pump is not None and pump is not threading.current_thread():
            pump.join()

    # -- bookkeeping, with the lock held; each returns the outcomes to report once it is released --

    def _dispatch(self) -> list[Outcome]:
        """Hand queued calls to idle workers, start workers for the rest, retire idle ones when closed."""
        for worker in self._workers:
            if not self._queue:
                break
            if worker.ready and worker.call is None and not worker.retiring:
                self._send(worker, self._queue.popleft())
        if self._closed and not self._queue:
            for worker in self._workers:
                if worker.call is None and not worker.retiring:
                    worker.retiring = True
                    try:
                        worker.conn.send_bytes(b"")
                    except OSError:
                        _kill_group(worker.proc)
            return []
        starting = sum(1 for w in self._workers if not w.ready and not w.retiring)
        active = sum(1 for w in self._workers if not w.retiring)
        if len(self._queue) > starting and active < self.parallelism and threading.current_thread() is not self._pump:
            # Workers are started by the pump only: a worker dies with the thread that started it
            # (PR_SET_PDEATHSIG), and the pump lives as long as the pool, unlike a caller's thread.
            self._wake()
            return []
        while len(self._queue) > starting and active < self.parallelism:
            try:
                self._spawn()
            except OSError as exc:
                if active:
                    break  # the running workers will take the queued calls
                detail = f"could not start a worker process with {sys.executable}: {exc}"
                return [self._lost(call, None, detail) for call in self._drain_queue()]
            starting += 1
            active += 1
        return []

    def _send(self, worker: _Worker, call: _Call) -> None:
        worker.call, call.sent_at = call, time.time()
        worker.deadline = None if call.timeout is None else time.monotonic() + call.timeout
        try:
            worker.conn.send_bytes(call.payload)
        except OSError:  # it died while idle: the pump will reap it; the call goes to another worker
            worker.call = worker.deadline = None
            worker.retiring = True
            self._queue.appendleft(call)
            self._wake()
            return
        self._watcher.watch(call, worker.proc.pid, call.memory_limit)
        if call.timeout is not None and threading.current_thread() is not self._pump:
            self._wake()  # the pump must shorten its wait to this deadline

    def _over_limit(self, call: _Call, limit: int, peak: int, tree: list[Any]) -> None:
        """The memory watcher found ``call`` over its limit: kill its processes (its worker's process
        group, and descendants that left it) and let the pump report it."""
        with self._lock:
            worker = next((w for w in self._workers if w.call is call), None)
            if worker is None or worker.retiring:
                return
            worker.over_limit = (limit, peak)
            worker.reason = f"over its memory_limit of {limit} bytes"
            worker.retiring = True
            _kill_group(worker.proc)
        for process in tree:  # a descendant that started a session of its own is not in the group
            try:
                process.kill()
            except Exception:
                pass

    def _spawn(self) -> None:
        parent_end, child_end = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [sys.executable, WORKER_SCRIPT, str(child_end.fileno())],
                stdin=subprocess.DEVNULL, pass_fds=(child_end.fileno(),), start_new_session=True,
            )
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        conn = Connection(parent_end.detach())
        conn.send_bytes(pickle.dumps({"path": list(sys.path), "max_rss_mb": self.max_rss_mb,
                                      "absent": list(SKIPPED)}))
        pidfd = -1
        if HAVE_PIDFD:
            try:
                pidfd = os.pidfd_open(proc.pid)
            except OSError:  # an old kernel: the pump polls instead
                pidfd = -1
        self._workers.append(_Worker(proc, conn, pidfd=pidfd))
        self._wake()

    def _drain_queue(self) -> list[_Call]:
        calls = list(self._queue)
        self._queue.clear()
        return calls

    def _lost(self, call: _Call, pid: int | None, detail: str) -> Outcome:
        error = WorkerLostError(None, detail)
        return Outcome(
            call.key, ok=False, error=error, traceback=format_error(error),
            started_at=call.sent_at, ended_at=time.time() if call.sent_at else None, pid=pid, hostname=HOSTNAME,
        )

    def _bury(self, worker: _Worker, timed_out: bool = False) -> list[Outcome]:
        """Kill what is left of a worker, reap it and report the call it was running."""
        _kill_group(worker.proc)
        code = _reap(worker.proc)
        worker.conn.close()
        if worker.pidfd >= 0:
            os.close(worker.pidfd)
            worker.pidfd = -1
        self._workers.remove(worker)
        outcomes: list[Outcome] = []
        call, was_ready = worker.call, worker.ready
        sampled = self._watcher.forget(call) if call is not None else 0
        worker.call = None
        if call is not None and worker.over_limit is not None:
            limit, peak = worker.over_limit
            error = MemoryLimitError(None, None, limit, max(peak, sampled))
            outcomes.append(Outcome(
                call.key, ok=False, error=error, traceback=format_error(error), started_at=call.sent_at,
                ended_at=time.time(), pid=worker.proc.pid, hostname=HOSTNAME, peak_rss=max(peak, sampled),
            ))
        elif call is not None and timed_out:
            error = TaskTimeoutError(None, None, call.timeout or 0.0)
            outcomes.append(Outcome(
                call.key, ok=False, error=error, traceback=format_error(error), timed_out=True,
                started_at=call.sent_at, ended_at=time.time(), pid=worker.proc.pid, hostname=HOSTNAME,
                peak_rss=sampled or None,
            ))
        elif call is not None:
            outcomes.append(self._lost(call, worker.proc.pid, worker.reason or _describe_exit(worker.proc.pid, code)))
        elif not was_ready and not worker.retiring:
            self._failed_starts += 1
            if self._failed_starts >= MAX_FAILED_STARTS:
                self._failed_starts = 0
                detail = f"new worker processes keep exiting before they are ready ({_describe_exit(worker.proc.pid, code)}; see stderr)"
                outcomes += [self._lost(c, None, detail) for c in self._drain_queue()]
        if was_ready and not self._closed and (not worker.retiring or worker.recycled):
            if worker.recycled:
                log.info("worker process %s replaced: %s", worker.proc.pid, worker.recycled)
            try:
                self._spawn()  # keep the pool warm: the next call should not wait for a start-up
            except OSError as exc:
                log.warning("could not start a replacement worker process: %s", exc)
        return outcomes + self._dispatch()

    # -- the pump thread --------------------------------------------------------------------------

    def _start_pump(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._pump = threading.Thread(target=self._pump_loop, name="nbflow-process-pump", daemon=True)
        self._pump.start()

    def _wake(self) -> None:
        """Make the pump look at the queue and the workers again (called with the lock held)."""
        if self._wake_pending:
            return  # a wake-up is in the pipe and the pump has not looked yet
        self._wake_pending = True
        try:
            os.write(self._wake_w, b"!")
        except (BlockingIOError, OSError):
            pass  # a full pipe already holds a wake-up

    def _pump_loop(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._closed and not self._workers and not self._queue:
                        return
                    conns = {worker.conn: worker for worker in self._workers}
                    pidfds = {worker.pidfd: worker for worker in self._workers if worker.pidfd >= 0}
                    deadlines = [w.deadline for w in self._workers if w.deadline is not None and w.call]
                    polling = len(pidfds) < len(self._workers)
                timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                if polling:
                    timeout = EXIT_POLL_SECONDS if timeout is None else min(timeout, EXIT_POLL_SECONDS)
                try:
                    self._pump_once(conns, timeout, pidfds)
                except Exception:
                    log.exception("the process executor's pump failed; carrying on")
                    time.sleep(0.05)
        finally:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._watcher.close()

    def _pump_once(self, conns: dict[Connection, _Worker], timeout: float | None,
                   pidfds: dict[int, _Worker] | None = None) -> None:
        pidfds = pidfds or {}
        outcomes: list[Outcome] = []
        ended: list[_Worker] = []
        for item in wait([self._wake_r, *conns, *pidfds], timeout):
            if isinstance(item, int):
                if item in pidfds:
                    ended.append(pidfds[item])
                    continue
                while True:
                    try:
                        if not os.read(self._wake_r, 512):
                            break
                    except BlockingIOError:
                        break
                with self._lock:
                    # Read, then cleared with the lock held: whatever was queued before this
                    # dispatch goes out now, and a call queued after it writes a new wake-up.
                    self._wake_pending = False
                    outcomes += self._dispatch()  # send queued calls, start the workers they need
                continue
            outcomes += self._receive(conns[item])
        with self._lock:
            if not pidfds:  # no pidfds: look for workers that ended with their socket held open
                ended += [w for w in self._workers if w.pidfd < 0 and w.proc.poll() is not None]
        for worker in ended:
            # what it sent before it ended is still in its socket: read that first
            while worker in self._workers and not worker.conn.closed and _has_data(worker.conn):
                outcomes += self._receive(worker)
            with self._lock:
                if worker in self._workers:
                    outcomes += self._bury(worker)
        with self._lock:
            now = time.monotonic()
            for worker in list(self._workers):
                if worker.call is not None and worker.deadline is not None and worker.deadline <= now:
                    outcomes += self._bury(worker, timed_out=True)
        for outcome in outcomes:
            self._report(outcome)

    def _receive(self, worker: _Worker) -> list[Outcome]:
        """Read one message from a worker: ready, a reply, or its end."""
        if worker not in self._workers or worker.conn.closed:
            return []
        try:
            data: bytes | None = worker.conn.recv_bytes()
        except (EOFError, OSError):
            data = None
        outcomes: list[Outcome] = []
        with self._lock:
            if data is None:
                return self._bury(worker)
            if not worker.ready:
                worker.ready = True
                self._failed_starts = 0
                return self._dispatch()
            try:
                reply = pickle.loads(data)  # the outer tuple only: the value inside stays bytes
            except Exception:
                reply = None
            if isinstance(reply, tuple) and len(reply) == 7 and reply[5]:
                worker.retiring, worker.recycled = True, str(reply[5])  # it exits after this reply
            call, worker.call, worker.deadline = worker.call, None, None
            outcomes += self._dispatch()
        if call is not None:
            sampled = self._watcher.forget(call)
            outcome = _decode(call.key, reply, worker.proc.pid)
            own = reply[6] if isinstance(reply, tuple) and len(reply) == 7 and isinstance(reply[6], int) else 0
            outcome.peak_rss = max(own, sampled) or None
            outcomes.append(outcome)
        return outcomes


def _has_data(conn: Connection) -> bool:
    try:
        return conn.poll(0)
    except (EOFError, OSError):
        return False


def _decode(key: Hashable, reply: Any, pid: int) -> Outcome:
    """Turn a worker's reply into an Outcome; unpickling the value happens here, outside the lock."""
    try:
        status, started, ended, type_name, body, _retiring, _peak = reply
    except Exception as exc:  # a reply that does not parse is a broken worker, not a task failure
        lost = WorkerLostError(None, f"its reply could not be read ({type(exc).__name__}: {exc})")
        return Outcome(key, ok=False, error=lost, traceback=format_error(lost), pid=pid, hostname=HOSTNAME)
    outcome = Outcome(key, ok=False, started_at=started, ended_at=ended, pid=pid, hostname=HOSTNAME)
    error: BaseException
    if status == "ok":
        try:
            outcome.value, outcome.ok = pickle.loads(body), True
            return outcome
        except Exception as exc:
            error = OutputNotSerializableError(  # type: ignore[arg-type]
                None, None, type_name, f"it was pickled in the worker process but does not unpickle "
                f"here ({type(exc).__name__}: {exc})",
            )
    elif status == "unpicklable":
        error = OutputNotSerializableError(  # type: ignore[arg-type]
            None, None, type_name, f"it must be pickled to leave the worker process, and it does not "
            f"pickle: {body}",
        )
    else:
        pickled, type_name, message, text = body
        try:
            error = pickle.loads(pickled) if pickled is not None else None  # type: ignore[assignment]
        except Exception:
            error = None  # type: ignore[assignment]
        if not isinstance(error, BaseException):
            error = RemoteTaskError(type_name, message, text)
        outcome.error, outcome.traceback = error, text
        return outcome
    outcome.error, outcome.traceback = error, format_error(error)
    return outcome


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and everything it started (they share its session's process group)."""
    if proc.returncode is not None:
        return  # reaped: its pid, and so its group id, may belong to someone else by now
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        try:
            proc.kill()
        except OSError:
            pass


def _reap(proc: subprocess.Popen[bytes]) -> int | None:
    try:
        return proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # stuck in the kernel (D state); the OS reaps it later
        return None


def _describe_exit(pid: int, code: int | None) -> str:
    """What happened to a worker process, in the words a task's error shows."""
    if code is None:
        return f"worker process {pid} did not exit after SIGKILL"
    if code < 0:
        try:
            return f"worker process {pid} killed by {signal.Signals(-code).name}, signal {-code}"
        except ValueError:
            return f"worker process {pid} killed by signal {-code}"
    return f"worker process {pid} exited with status {code}"
