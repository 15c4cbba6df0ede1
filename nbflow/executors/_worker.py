"""The loop inside a process worker: receive a pickled call, run it, send back how it ended.

This file runs as a script (``python _worker.py FD``), not as ``nbflow.executors._worker``, so that
a worker imports the standard library and cloudpickle only; whatever else a call needs (nbflow's
runner, pandas, the user's modules) is imported by unpickling that call. Keep it that way: no nbflow
import here.

The wire protocol, over one socket (``multiprocessing.connection`` framing), is in
``nbflow/executors/process.py``; this side of it:

* first message from the parent: ``pickle`` of ``{"path": [...], "absent": [...]}``, the parent's
  ``sys.path``, so that functions pickled by reference import the same modules, and the optional
  modules to treat as not installed (``nbflow/importcost.py``);
* the worker answers ``b"ready"`` once it can take calls, so that start-up time is not counted
  against the first call's timeout;
* then each message is a ``cloudpickle`` of ``(fn, args)``, answered by a ``pickle`` of
  ``(status, started_at, ended_at, type_name, body, retiring, peak)``; an empty message means "exit
  now". ``retiring`` is empty, or why this worker exits right after that reply (its memory stayed
  high); ``peak`` is the most resident memory (bytes) this worker held during the call (its
  high-water mark, reset before each call where Linux allows), 0 when unknown. The parent adds what
  it sampled of the call's child processes.

When a call ends, whatever it started ends too: every other process of the worker's session and
every descendant (the worker is a child subreaper, so orphans of a double fork come back to it) is
killed and reaped, and a forked copy of this loop that returned from the call exits at once, so it
can never read the next call off the shared socket.
"""

import os
import sys

# this script's own folder must not shadow anything the calls import (already loaded: os, sys)
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import pickle  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from multiprocessing.connection import Connection  # noqa: E402
from typing import Any  # noqa: E402


def _type_name(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    module = getattr(cls, "__module__", "")
    return cls.__qualname__ if module in ("builtins", "", None) else f"{module}.{cls.__qualname__}"


def _error_body(exc: BaseException, dumps: Any) -> tuple[Any, ...]:
    """The exception pickled if it can be, plus what a stand-in needs if it cannot."""
    tb = exc.__traceback__
    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next  # drop this loop's own frame
    exc.__traceback__ = tb
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    try:
        pickled = dumps(exc)
    except Exception:
        pickled = None
    return (pickled, _type_name(exc), str(exc), text)


#: this worker's pid; a process running this loop under another pid is a fork made by a task
ME = os.getpid()
#: a failed call that left the worker this much bigger (bytes) retires it, whatever the limit:
#: what a failure kept alive (a traceback's frames, a half-built result) is not worth keeping
FAILED_GROWTH = 256 * 1024 * 1024


def _run(data: bytes, dumps: Any) -> tuple[Any, ...]:
    started = time.time()
    try:
        fn, args = pickle.loads(data)
        value = fn(*args)
    except BaseException as exc:  # SystemExit from a task is the task's failure, not the worker's
        if os.getpid() != ME:
            os._exit(1)  # a fork of this worker made by the task: it must not answer or read calls
        ended = time.time()
        return ("error", started, ended, _type_name(exc), _error_body(exc, dumps))
    if os.getpid() != ME:
        os._exit(0)
    ended = time.time()
    try:
        body = dumps(value)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        return ("unpicklable", started, ended, _type_name(value), reason)
    return ("ok", started, ended, "", body)


def main() -> None:
    _die_with_parent()
    conn = Connection(int(sys.argv[1]))
    setup = pickle.loads(conn.recv_bytes())
    sys.path[:] = setup["path"]
    for name in setup.get("absent", ()):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # see nbflow/importcost.py
    max_rss = int(setup.get("max_rss_mb") or 0) * 1024 * 1024
    # Every process a call starts ends with the call (_end_descendants): said to what the calls run
    # (and to what they start), so that nothing is started here to serve a later call, such as a
    # spare kernel. The name is nbflow.executors.base.CALLS_END_THEIR_PROCESSES (no nbflow import here).
    os.environ["_NBFLOW_CALLS_END_THEIR_PROCESSES"] = "1"
    import cloudpickle

    _become_subreaper()
    dumps = cloudpickle.dumps
    conn.send_bytes(b"ready")
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent is gone: nobody would read an answer
        if not data:
            return
        before = _rss()
        _reset_peak()
        reply = _run(data, dumps)
        peak = max(_peak(), before)
        _end_descendants()
        _flush()  # a call's prints should reach the log before its outcome does
        after = _rss()
        retiring = ""
        if max_rss and after > max_rss:
            retiring = f"its memory (RSS {after >> 20} MiB) stayed above worker_max_rss_mb = {max_rss >> 20}"
        elif reply[0] == "error" and after - before > FAILED_GROWTH:
            retiring = f"a failed call left it {(after - before) >> 20} MiB bigger"
        try:
            conn.send_bytes(pickle.dumps((*reply, retiring, max(peak, after)), protocol=5))
        except OSError:
            return
        if retiring:
            return


def _die_with_parent() -> None:
    """Be killed with the scheduler host that started this worker: a host killed by SIGKILL must
    not leave a try running here while another host adopts and retries it. Linux only; elsewhere a
    worker notices its parent's end at its next read of the socket."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        return
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _become_subreaper() -> None:
    """Make orphaned descendants (a task's double-forked daemon) children of this worker, so that
    the end of a call finds and ends them. Linux only; elsewhere the session sweep has to do."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


def _end_descendants() -> None:
    """Kill and reap whatever the call started and left behind.

    The common case costs one system call: with no child at all ``waitpid`` says so at once. Only
    when something is left is ``/proc`` read to find the whole tree and this worker's session.
    """
    for _ in range(200):
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        except OSError:
            return
        if pid:
            continue  # reaped one that had already ended; look again
        for other in _left_behind():
            try:
                os.kill(other, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)  # the kernel needs a moment to end a SIGKILLed process


def _left_behind() -> list[int]:
    """Pids of this worker's descendants and of the other processes of its session."""
    parents: dict[int, list[int]] = {}
    session: list[int] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
        except OSError:
            continue
        pid, ppid, sid = int(name), int(fields[1]), int(fields[3])
        parents.setdefault(ppid, []).append(pid)
        if sid == ME and pid != ME:
            session.append(pid)
    found, todo = set(session), [ME]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    found.discard(ME)
    return sorted(found)


def _rss() -> int:
    """This process's resident memory in bytes (0 where it cannot be read cheaply)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


#: /proc/self/clear_refs, kept open: writing "5" to it resets this process's resident-memory
#: high-water mark (Linux); -1 where that cannot be done, and then no per-call peak is read
_REFS = -1


def _reset_peak() -> None:
    """Reset this process's resident-memory high-water mark, so that the next :func:`_peak` is the
    peak of one call, not of the worker's whole life. Under a microsecond with the file kept open."""
    global _REFS
    if _REFS == -2:
        return
    try:
        if _REFS < 0:
            _REFS = os.open("/proc/self/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
        os.write(_REFS, b"5")
    except OSError:
        _REFS = -2


def _peak() -> int:
    """This process's resident-memory high-water mark in bytes since the last reset (0 if unknown).
    ``getrusage`` reads it in microseconds, where ``/proc/self/status`` takes a hundred."""
    if _REFS < 0:
        return 0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


if __name__ == "__main__":
    code = 0
    try:
        main()
    except KeyboardInterrupt:
        pass
    except BaseException:
        traceback.print_exc()
        code = 1
    _flush()
    # skip interpreter teardown: a thread left behind by a task must not keep the worker alive
    os._exit(code)
