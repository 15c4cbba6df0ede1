"""Per-task log files for tasks that share a process.

Two tasks running in two threads of one process both write to ``sys.stdout``; each line must land in
its own task's log. ``sys.stdout``/``sys.stderr`` are wrapped once by a router that sends writes made
in a thread that is running a task to that task's file, and everything else to the original stream.
A logging handler does the same for ``logging`` records. Output of threads that a task starts itself
is not captured (those threads are not running a task).

A log file is created on the first line the task writes: a task that prints nothing and succeeds
leaves no file behind, which keeps ten thousand trivial tasks from leaving ten thousand near-empty
files (the store still has its host, pid, times and state).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator, TextIO

_local = threading.local()
_lock = threading.Lock()


class TaskLog:
    """A task's log file, opened on the first write; ``preamble`` lines lead it when it is."""

    def __init__(self, path: str, preamble: str = "") -> None:
        self.path = path
        self.preamble = preamble
        self._file: TextIO | None = None

    @property
    def created(self) -> bool:
        return self._file is not None

    def write(self, text: str) -> int:
        if self._file is None:
            directory = os.path.dirname(self.path)
            try:
                os.mkdir(directory)
            except FileExistsError:
                pass
            except FileNotFoundError:
                os.makedirs(directory, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8", buffering=1)
            if self.preamble:
                self._file.write(self.preamble)
        return self._file.write(text)

    def write_if_created(self, text: str) -> None:
        if self._file is not None:
            self._file.write(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _target() -> TaskLog | None:
    return getattr(_local, "file", None)


class _StreamRouter(io.TextIOBase):
    def __init__(self, original: Any) -> None:
        self.original = original

    def write(self, text: str) -> int:
        target = _target()
        if target is not None:
            return target.write(text)
        return self.original.write(text)

    def flush(self) -> None:
        target = _target()
        if target is not None:
            target.flush()
        else:
            self.original.flush()

    def isatty(self) -> bool:
        return False if _target() is not None else bool(getattr(self.original, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


class _RoutingHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        target = _target()
        if target is None:
            return
        try:
            target.write(self.format(record) + "\n")
        except Exception:  # a broken log line must never fail the task
            self.handleError(record)


_handler = _RoutingHandler()
_handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s: %(message)s"))


def _install() -> None:
    with _lock:
        if not isinstance(sys.stdout, _StreamRouter):
            sys.stdout = _StreamRouter(sys.stdout)
        if not isinstance(sys.stderr, _StreamRouter):
            sys.stderr = _StreamRouter(sys.stderr)
        root = logging.getLogger()
        if _handler not in root.handlers:
            root.addHandler(_handler)
            # The handler drops records from threads that run no task; an unconfigured root logger
            # would otherwise lose its last-resort printing of warnings, so give it a real one.
            if len(root.handlers) == 1:
                fallback = logging.StreamHandler()
                fallback.setLevel(logging.WARNING)
                fallback.addFilter(lambda record: _target() is None)
                root.addHandler(fallback)
                if root.level == logging.WARNING:
                    root.setLevel(logging.INFO)


def stamp() -> str:
    return datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S%z")


@contextmanager
def capture(path: str, preamble: str = "") -> Iterator[TaskLog]:
    """Send this thread's stdout, stderr and logging to ``path`` (appending) while inside."""
    _install()
    previous = _target()
    log = TaskLog(path, preamble)
    _local.file = log
    try:
        yield log
    finally:
        _local.file = previous
        log.close()
