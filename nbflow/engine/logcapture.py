"""Per-task log files for tasks that share a process.

Two tasks running in two threads of one process both write to ``sys.stdout``; each line must land in
its own task's log. ``sys.stdout``/``sys.stderr`` are wrapped once by a router that sends writes made
in a thread that is running a task to that task's file, and everything else to the original stream.
A logging handler does the same for ``logging`` records. Output of threads that a task starts itself
is not captured (those threads are not running a task).

A log file is created on the first line the task writes: a task that prints nothing and succeeds
leaves no file behind, which keeps ten thousand trivial tasks from leaving ten thousand near-empty
files (the store still has its host, pid, times and state).

A log is capped at the ``max_log_bytes`` setting: a task that prints 500 MB leaves its first and last
parts and one line saying how much was cut between them, and holds at most half the cap in memory.
Every way a task's output reaches its log goes through here: prints and logging in a thread or a
process worker (the runner captures in whichever process runs the task), a BashOperator's command
(relayed line by line to ``sys.stdout``), a notebook task's cell output.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from collections import deque
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, BinaryIO, Iterator

_local = threading.local()
_lock = threading.Lock()


#: what a log keeps when nobody says otherwise (the default of the max_log_bytes setting)
DEFAULT_MAX_LOG_BYTES = 64 * 1024 * 1024
#: text longer than this (characters) is taken in slices, so one huge print costs no huge copies
_SLICE = 1 << 20


class TaskLog:
    """A task's log file, opened on the first write; ``preamble`` lines lead it when it is.

    The log keeps at most about ``max_bytes``: the first half goes to the file as it is written
    (so a reader following it by offset sees it at once); past that, only the last half is held,
    in memory, and written at :meth:`close` after one line saying how many bytes were cut. Memory
    stays within half of ``max_bytes`` however much a task prints, and what a reader already read
    never changes: the file only ever grows."""

    def __init__(self, path: str, preamble: str = "", max_bytes: int = DEFAULT_MAX_LOG_BYTES) -> None:
        self.path = path
        self.preamble = preamble
        self.max_bytes = max_bytes
        self._file: BinaryIO | None = None
        self._room = max_bytes // 2             # bytes the head may still take
        self._tail_limit = max_bytes - max_bytes // 2
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self._pending = bytearray()             # the tail's newest bytes, not yet a chunk
        self._chunk = min(64 * 1024, max(self._tail_limit // 8, 64))
        self._tailing = False
        self._cut = 0                           # bytes dropped from the front of the tail
        self._line_start = True                 # whether the head ends with a newline

    @property
    def created(self) -> bool:
        return self._file is not None

    def write(self, text: str) -> int:
        if self._file is None:
            self._open()
        if len(text) <= _SLICE:
            self._put(text)
        else:
            for start in range(0, len(text), _SLICE):
                self._put(text[start:start + _SLICE])
        return len(text)

    def _open(self) -> None:
        directory = os.path.dirname(self.path)
        try:
            os.mkdir(directory)
        except FileExistsError:
            pass
        except FileNotFoundError:
            os.makedirs(directory, exist_ok=True)
        self._file = handle = open(self.path, "a+b")
        # a rescheduled sensor's try appends to its log: what is there counts against the head
        existing = handle.tell()
        if existing:
            self._room = max(self._room - existing, 0)
            self._line_start = os.pread(handle.fileno(), 1, existing - 1) == b"\n"
        if self.preamble:
            self._put(self.preamble)

    def _put(self, text: str) -> None:
        data = text.encode("utf-8", "backslashreplace")
        file = self._file
        assert file is not None
        if len(data) <= self._room:  # the common case, kept short: a line of a log under its cap
            if data:
                file.write(data)
                self._room -= len(data)
                self._line_start = data[-1] == 10  # b"\n"
                if 10 in data:
                    file.flush()  # line by line, as a line-buffered stream would
            return
        if not self._tailing:
            # the head ends here: at the last line end that fits, else at a whole character
            fits = data[: self._room]
            end = fits.rfind(b"\n")
            if end >= 0:
                head = fits[: end + 1]
            elif self._line_start and len(fits) < 4096:
                head = b""  # the head already ends with a whole line: it may end a little early
            else:
                head = fits.decode("utf-8", "ignore").encode()
            self._tailing = True
            self._room = 0  # nothing more goes to the file before close
            if head:
                file.write(head)
                self._line_start = head.endswith(b"\n")
            file.flush()
            data = data[len(head):]
        # small writes are gathered into chunks: a deque of a million 10-byte lines would cost
        # several times the bytes it holds
        pending = self._pending
        pending += data
        if len(pending) < self._chunk:
            return
        self._tail.append(bytes(pending))
        self._tail_size += len(pending)
        pending.clear()
        while self._tail_size - len(self._tail[0]) >= self._tail_limit:
            dropped = self._tail.popleft()
            self._tail_size -= len(dropped)
            self._cut += len(dropped)

    def write_if_created(self, text: str) -> None:
        if self._file is not None:
            self.write(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is None:
            return
        try:
            tail = b"".join(self._tail) + self._pending
            self._tail.clear()
            self._pending.clear()
            cut = self._cut
            if cut or len(tail) > self._tail_limit:
                excess = max(len(tail) - self._tail_limit, 0)
                start = tail.find(b"\n", excess, excess + 4096)  # the tail starts with a whole line
                start = start + 1 if 0 <= start < len(tail) - 1 else excess
                while start < len(tail) and tail[start] & 0xC0 == 0x80:  # and a whole character
                    start += 1
                cut += start
                tail = tail[start:]
                before = b"" if self._line_start else b"\n"
                self._file.write(before + (
                    f"[{stamp()}] nbflow: {cut:,} bytes of this log were cut here: it reached max_log_bytes "
                    f"({self.max_bytes:,}); its first and last parts are kept\n").encode())
            self._file.write(tail)
        finally:
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
def capture(path: str, preamble: str = "", max_bytes: int = DEFAULT_MAX_LOG_BYTES) -> Iterator[TaskLog]:
    """Send this thread's stdout, stderr and logging to ``path`` (appending) while inside, keeping
    about ``max_bytes`` of it (see :class:`TaskLog`)."""
    _install()
    previous = _target()
    log = TaskLog(path, preamble, max_bytes)
    _local.file = log
    try:
        yield log
    finally:
        _local.file = previous
        log.close()
