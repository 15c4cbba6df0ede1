"""Parsing DAG files in a separate process, so that a DAG file can never stop a scheduler host.

A DAG file is user code run at import: it may call ``os._exit``, loop forever, segfault, start
threads or raise ``KeyboardInterrupt``. Scheduler hosts (the daemon, the Jupyter server) and the
commands that load ``dags_folder`` therefore import each file in a child process of its own, with a
time limit (the ``dag_file_timeout`` setting), and get its DAGs back pickled with cloudpickle (the
file's own functions and classes travel by value). Whatever the file does ends that child, never the
host: it becomes the file's import error, saying what happened.

How a child is made. Forking is the cheap way (the child has nbflow imported already), but forking a
process that has other threads can leave the child holding locks that no thread will release. So a
single-threaded process (a command of the CLI) forks its children itself, and a process with threads
(a scheduler host) hands the files to a *parse server*: a small process started once, fork-and-exec,
with nbflow preloaded, that forks a child per file and answers with each file's result. Each child
leads its own process group, which is killed when its parse ends, and dies with its parent.

A file is parsed again only when it, or a module it imported from outside the Python installation,
changed (size, modification time): reloading an unchanged folder costs a ``stat`` per file.
"""

from __future__ import annotations

import atexit
import json
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import cloudpickle

from nbflow.engine.discovery import DagBag, ImportFailure, collect, load_file, module_name

if TYPE_CHECKING:
    from nbflow.dag import DAG

#: files parsed at once (the machines nbflow is measured on have two cores)
CONCURRENCY = 2
_HEADER = struct.Struct("!Q")
_PR_SET_PDEATHSIG = 1
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}

#: what a child answers: ("ok", cloudpickled DAG list, deps) or ("failed", summary, traceback, deps)
Reply = tuple[Any, ...]
Result = tuple[list["DAG"], ImportFailure | None]
Signature = tuple[int, int, int]


# -- in the child -----------------------------------------------------------------------------------


def load_reply(path: str) -> Reply:
    """Load ``path`` in this (disposable) process and say what came of it, DAGs pickled."""
    file = Path(path).resolve()
    before = set(sys.modules)
    try:
        dags, failure = load_file(file)
    except BaseException as exc:  # noqa: BLE001 (KeyboardInterrupt, re-raised by load_file, included)
        return ("failed", f"{type(exc).__name__} raised while loading; a DAG file must only define DAGs",
                "".join(traceback.format_exception(exc)), _deps(_new_user_modules(before)))
    modules = _new_user_modules(before)
    deps = _deps(modules)
    if failure is not None:
        return ("failed", failure.summary, failure.traceback, deps)
    threads = [t for t in threading.enumerate() if t.is_alive() and not t.daemon and t is not threading.current_thread()]
    if threads:
        names = ", ".join(repr(t.name) for t in threads[:5])
        return ("failed", f"it left {len(threads)} thread(s) running after loading ({names}); a DAG file must not "
                          "start threads at import: start them inside a task", "", deps)
    for dag in dags:
        try:
            json.dumps(dag.describe())
        except Exception as exc:  # noqa: BLE001 (an attribute of the wrong type, whatever it is)
            return ("failed", f"DAG '{dag.dag_id}' cannot be recorded in the store: {type(exc).__name__}: {exc}",
                    "".join(traceback.format_exception(exc)), deps)
    for name in _by_value_modules(file, modules):
        cloudpickle.register_pickle_by_value(sys.modules[name])
    try:
        return ("ok", cloudpickle.dumps(dags), deps)
    except Exception as exc:  # noqa: BLE001 (pickling user objects raises anything)
        culprit = _unpicklable(dags)
        which = f"DAG '{culprit}'" if culprit else "its DAGs"
        return ("failed", f"{which} cannot be sent back from the parse process ({type(exc).__name__}: {exc}); "
                          "a DAG's objects (callables, params, default_args, callbacks) must be picklable with "
                          "cloudpickle: create locks, connections, clients and open files inside tasks, not at import",
                "".join(traceback.format_exception(exc)), deps)


def _unpicklable(dags: list[DAG]) -> str | None:
    for dag in dags:
        try:
            cloudpickle.dumps(dag)
        except Exception:  # noqa: BLE001
            return dag.dag_id
    return None


def _installed_roots() -> tuple[str, ...]:
    """Where the Python installation and nbflow itself live (never the user's code)."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.abspath(__file__))}
    return tuple(root.rstrip(os.sep) + os.sep for root in roots if root)


def _new_user_modules(before: set[str]) -> list[tuple[str, str]]:
    """(name, file) of the modules imported since ``before`` from outside the Python installation."""
    roots = _installed_roots()
    found = []
    for name in set(sys.modules) - before:
        module_file = getattr(sys.modules.get(name), "__file__", None)
        if isinstance(module_file, str) and module_file.endswith(".py") and not module_file.startswith(roots):
            found.append((name, os.path.abspath(module_file)))
    return found


def _deps(modules: list[tuple[str, str]]) -> list[str]:
    """The user's modules the file imported: a change to one of them is a reason to parse it again."""
    return sorted(path for _, path in modules)


def _by_value_modules(file: Path, modules: list[tuple[str, str]]) -> list[str]:
    """The DAG file's module and the helper modules beside it: a host may not be able to import them."""
    folder = str(file.parent).rstrip(os.sep) + os.sep
    names = [name for name, path in modules if path.startswith(folder)]
    own = module_name(file)
    if own in sys.modules and own not in names:
        names.append(own)
    return names


def _die_with_parent() -> None:
    """Linux: be killed when the parent dies, so a hung parse never outlives its host."""
    if sys.platform.startswith("linux"):
        import ctypes  # only a child needs it: about 3 ms of every command's start otherwise

        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass


def _child_main(path: str, write_fd: int, parent: int, close_fds: tuple[int, ...]) -> NoReturn:
    """The forked child: lead a process group, load ``path``, write the reply, end without cleanup
    (the parent's atexit handlers, buffers and threads are not the child's)."""
    try:
        for fd in close_fds:
            os.close(fd)
        os.setpgid(0, 0)
        _die_with_parent()
        if os.getppid() != parent:
            os._exit(1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(2, 1)  # what a DAG file prints goes to the log (stderr), never into a command's output
        me = os.getpid()
        reply = load_reply(path)
        if os.getpid() != me:  # a process the file forked came back here: only the child itself answers
            os._exit(0)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001,S110 (a closed or replaced stream)
                pass
        data = pickle.dumps(reply)
        _write_all(write_fd, _HEADER.pack(len(data)) + data)
    finally:
        os._exit(0)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- forking children (in a single-threaded process: a command, or the parse server) ----------------


@dataclass
class _Child:
    path: str
    pid: int
    read_fd: int
    deadline: float
    pidfd: int | None = None
    buffer: bytearray = field(default_factory=bytearray)
    eof: bool = False
    status: int | None = None

    def message(self) -> Reply | None:
        if len(self.buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self.buffer)
        if len(self.buffer) < _HEADER.size + size:
            return None
        return pickle.loads(bytes(self.buffer[_HEADER.size:_HEADER.size + size]))  # type: ignore[no-any-return]


def _start(path: str, timeout: float, close_fds: tuple[int, ...]) -> _Child:
    for stream in (sys.stdout, sys.stderr):  # or the child would print the parent's pending output again
        try:
            stream.flush()
        except Exception:  # noqa: BLE001,S110
            pass
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child_main(path, write_fd, parent, close_fds)
    os.close(write_fd)
    try:
        os.setpgid(pid, pid)  # also here, so that a kill right after the fork reaches the group
    except OSError:
        pass
    os.set_blocking(read_fd, False)
    child = _Child(path, pid, read_fd, time.monotonic() + timeout)
    try:
        child.pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        child.pidfd = None
    return child


def _kill_group(pid: int) -> None:
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        try:
            kill(target, signal.SIGKILL)
        except OSError:
            pass


def _reap(child: _Child, block: bool) -> bool:
    try:
        done, status = os.waitpid(child.pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        done, status = child.pid, 0
    if done == 0:
        return False
    child.status = status
    return True


def _drain(child: _Child) -> None:
    while True:
        try:
            chunk = os.read(child.read_fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            child.eof = True
            return
        child.buffer += chunk


#: children that answered and were killed, not waited for: reaped at the next parse
_unreaped: list[int] = []


def _reap_answered() -> None:
    for pid in list(_unreaped):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _unreaped.remove(pid)


def _exit_reply(status: int, timeout: float) -> Reply:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        name = signal.Signals(signum).name if signum in signal.valid_signals() else f"signal {signum}"
        if signum in _CRASH_SIGNALS:
            return ("failed", f"it crashed the parser ({name}) while loading; a DAG file must only define DAGs", "", [])
        if signum == signal.SIGKILL:
            return ("failed", f"its parse process was killed ({name}) while loading (out of memory?)", "", [])
        return ("failed", f"its parse process was ended by {name} while loading", "", [])
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return ("failed", f"it exited with status {code} while loading (os._exit() or a C extension ended the "
                      "process); a DAG file must only define DAGs, never end its process", "", [])


def _timeout_reply(timeout: float) -> Reply:
    return ("failed", f"it did not finish loading within {timeout:g} s (dag_file_timeout): an endless loop or slow "
                      "work at import? Do slow work inside tasks, or raise dag_file_timeout", "", [])


def parse_forked(paths: list[str], timeout: float, concurrency: int = CONCURRENCY,
                 close_fds: tuple[int, ...] = (), meanwhile: Callable[[], object] | None = None) -> dict[str, Reply]:
    """Parse each of ``paths`` in a child forked from this process, ``concurrency`` at a time, each
    within ``timeout`` seconds. Only for a single-threaded process. ``close_fds`` are closed in each
    child (the parse server's own pipes). ``meanwhile`` runs here once the first children are
    started, so that a command prepares what it needs next (imports) while its DAG files load."""
    _reap_answered()
    pending = deque(dict.fromkeys(paths))
    active: list[_Child] = []
    replies: dict[str, Reply] = {}
    selector = selectors.DefaultSelector()

    def finish(child: _Child, reply: Reply) -> None:
        _kill_group(child.pid)  # whatever it left behind (a forked process) in its group
        for fd in (child.read_fd, child.pidfd):
            if fd is not None:
                try:
                    selector.unregister(fd)
                except (KeyError, ValueError):
                    pass
                os.close(fd)
        active.remove(child)
        replies[child.path] = reply

    try:
        while pending or active:
            while pending and len(active) < max(1, concurrency):
                child = _start(pending.popleft(), timeout, close_fds)
                active.append(child)
                selector.register(child.read_fd, selectors.EVENT_READ, child)
                if child.pidfd is not None:
                    selector.register(child.pidfd, selectors.EVENT_READ, child)
            if meanwhile is not None:
                prepare, meanwhile = meanwhile, None
                prepare()
            now = time.monotonic()
            wait = min(child.deadline for child in active) - now
            if any(child.pidfd is None for child in active):
                wait = min(wait, 0.02)  # no pidfd on this system: look for exited children now and then
            for key, _ in selector.select(max(0.0, wait)):
                child = key.data
                if key.fd == child.read_fd:
                    _drain(child)
                    if child.eof:
                        selector.unregister(child.read_fd)
            for child in list(active):
                message = child.message()
                if message is not None:  # answered: no need to wait for its exit, reaped later
                    _unreaped.append(child.pid)
                    finish(child, message)
                elif _reap(child, block=False):
                    _drain(child)
                    message = child.message()
                    finish(child, message if message is not None else _exit_reply(child.status or 0, timeout))
                elif time.monotonic() >= child.deadline:
                    _kill_group(child.pid)
                    _reap(child, block=True)
                    finish(child, _timeout_reply(timeout))
    finally:
        for child in list(active):  # interrupted (Ctrl-C in a command): leave nothing running
            _kill_group(child.pid)
            _reap(child, block=True)
            finish(child, _timeout_reply(timeout))
        selector.close()
    return replies


# -- the parse server (for hosts with threads) ------------------------------------------------------


def _read_frame(fd: int) -> Any:
    data = b""
    while len(data) < _HEADER.size:
        chunk = os.read(fd, _HEADER.size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    (size,) = _HEADER.unpack(data)
    body = bytearray()
    while len(body) < size:
        chunk = os.read(fd, min(1 << 20, size - len(body)))
        if not chunk:
            raise EOFError
        body += chunk
    return pickle.loads(bytes(body))


def serve() -> None:
    """The parse server's main loop: read a batch of paths on stdin, parse them in forked children,
    answer on stdout; end when stdin closes (its host is gone)."""
    import nbflow.dag
    import nbflow.decorators
    import nbflow.operators
    import nbflow.sensors  # noqa: F401 (preloaded: each forked child finds them imported)

    requests, answers = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # user code's prints go to the host's log, never into the answers
    while True:
        try:
            request = _read_frame(requests)
        except EOFError:
            return
        sys.path[:] = request["sys_path"]
        try:
            os.chdir(request["cwd"])
        except OSError:
            pass
        replies = parse_forked(request["paths"], request["timeout"], request["concurrency"],
                               close_fds=(requests, answers))
        data = pickle.dumps(replies)
        _write_all(answers, _HEADER.pack(len(data)) + data)


class _ParseServer:
    """The host's end of the parse server: one per process, started on first use, restarted if it dies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def parse(self, paths: list[str], timeout: float, concurrency: int) -> dict[str, Reply]:
        with self._lock:
            for attempt in range(2):
                process = self._running()
                request = {"paths": paths, "timeout": timeout, "concurrency": concurrency,
                           "sys_path": list(sys.path), "cwd": os.getcwd()}
                data = pickle.dumps(request)
                rounds = -(-len(paths) // max(1, concurrency))
                try:
                    assert process.stdin is not None and process.stdout is not None
                    _write_all(process.stdin.fileno(), _HEADER.pack(len(data)) + data)
                    return self._answer(process, time.monotonic() + rounds * timeout + 30.0)
                except (OSError, EOFError, TimeoutError) as exc:
                    self._stop()
                    if attempt == 1:
                        why = "did not answer in time" if isinstance(exc, TimeoutError) else "ended"
                        reply = ("failed", f"the DAG parse process {why}; the file was not loaded (see the log)", "", [])
                        return {path: reply for path in paths}
        raise AssertionError("unreachable")

    def _answer(self, process: subprocess.Popen[bytes], deadline: float) -> dict[str, Reply]:
        assert process.stdout is not None
        fd = process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            if not selector.select(max(0.0, deadline - time.monotonic())):
                raise TimeoutError
        # the server answers in one write once it starts: read the whole frame
        return _read_frame(fd)  # type: ignore[no-any-return]

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._stop()
            self._process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
                                       "from nbflow.engine.dagparsing import serve; serve()", _PACKAGE_ROOT],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
            )
        return self._process

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        if process.poll() is None:
            process.kill()
        process.wait()

    def close(self) -> None:
        with self._lock:
            self._stop()


_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_server = _ParseServer()
atexit.register(_server.close)


def parse_isolated(paths: list[str], timeout: float, concurrency: int = CONCURRENCY,
                   meanwhile: Callable[[], object] | None = None) -> dict[str, Reply]:
    """Each file's reply, parsed in a separate process: forked from here when this process has no
    other thread (running ``meanwhile`` while the children work), else by the parse server."""
    if not paths:
        return {}
    if threading.active_count() == 1 and hasattr(os, "fork"):
        return parse_forked(paths, timeout, concurrency, meanwhile=meanwhile)
    return _server.parse(paths, timeout, concurrency)


# -- the host's view --------------------------------------------------------------------------------


def _signature(path: str) -> Signature | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def _result(path: str, reply: Reply) -> Result:
    if reply[0] == "ok":
        try:
            dags = pickle.loads(reply[1])  # noqa: S301 (the DAGs the file itself built)
        except Exception as exc:  # noqa: BLE001 (unpickling user objects raises anything)
            return [], ImportFailure(path, f"its DAGs could not be read back from the parse process "
                                           f"({type(exc).__name__}: {exc})", "".join(traceback.format_exception(exc)))
        return dags, None
    return [], ImportFailure(path, reply[1], reply[2])


@dataclass
class _Parsed:
    signatures: tuple[tuple[str, Signature | None], ...]
    result: Result


class DagFileParser:
    """Loads DAG files in separate processes (a :data:`nbflow.engine.discovery.Loader`), each within
    ``timeout`` seconds, and keeps each file's result until the file or a module it imported changes.
    Safe to share between threads."""

    def __init__(self, timeout: float = 30.0, concurrency: int = CONCURRENCY,
                 meanwhile: Callable[[], object] | None = None) -> None:
        self.timeout = timeout
        self.concurrency = concurrency
        #: what a command does while the first files load in forked children (see parse_forked)
        self.meanwhile = meanwhile
        self._parsed: dict[str, _Parsed] = {}
        self._lock = threading.Lock()

    def __call__(self, files: list[Path]) -> dict[str, Result]:
        results: dict[str, Result] = {}
        stale: list[str] = []
        with self._lock:
            for file in files:
                path = str(file.resolve())
                parsed = self._parsed.get(path)
                if parsed is not None and all(_signature(p) == s for p, s in parsed.signatures):
                    results[path] = parsed.result
                elif path not in stale:
                    stale.append(path)
        before = {path: _signature(path) for path in stale}  # taken before parsing: an edit meanwhile re-parses
        prepare, self.meanwhile = self.meanwhile, None
        replies = parse_isolated(stale, self.timeout, self.concurrency, meanwhile=prepare)
        with self._lock:
            for path in stale:
                reply = replies[path]
                result = _result(path, reply)
                deps = tuple((dep, _signature(dep)) for dep in reply[-1] if dep != path)
                self._parsed[path] = _Parsed(((path, before[path]), *deps), result)
                results[path] = result
            for path in set(self._parsed) - set(results) - set(stale):
                if _signature(path) is None:  # deleted: forget it
                    del self._parsed[path]
        return results


class BackgroundCollector:
    """Collects DAG files on a thread of its own, so that a scheduler's loop (its heartbeats, the
    outcomes of running tasks) never waits for a slow DAG file: the first collection is waited for
    (a host starts with its DAGs), later ones only ``wait`` seconds, and a pass that finds one still
    under way keeps the DAGs it has and looks again at its next pass."""

    def __init__(self, parser: DagFileParser) -> None:
        self.parser = parser
        self._thread: threading.Thread | None = None
        self._outcome: tuple[DagBag | None, BaseException | None] = (None, None)
        self._first = True

    def collect(self, paths: list[str], wait: float) -> DagBag | None:
        """The DAGs of ``paths``, or None while a collection started earlier is still under way."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(list(paths),), name="nbflow-dag-files",
                                            daemon=True)
            self._thread.start()
        self._thread.join(None if self._first else wait)
        if self._thread.is_alive():
            return None
        self._thread, self._first = None, False
        (bag, error), self._outcome = self._outcome, (None, None)
        if error is not None:
            raise error
        return bag

    def _run(self, paths: list[str]) -> None:
        try:
            self._outcome = (collect(paths, load=self.parser), None)
        except BaseException as exc:  # noqa: BLE001 (handed to the caller's thread)
            self._outcome = (None, exc)
