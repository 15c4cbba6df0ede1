"""``BashOperator``: a shell command as a task.

The command is a Jinja template. Its output goes to the task log line by line; the last line of
stdout is the task's output. A non-zero exit fails the task, except exit code 99 (by default), which
skips it. On timeout the whole process group is killed, not only bash.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Any, ClassVar, Sequence

from nbflow.errors import BashCommandError, OutputTooLargeError, SkipTask, TaskTimeoutError
from nbflow.operators.base import BaseOperator
from nbflow.settings import get_settings


class BashOperator(BaseOperator):
    template_fields: ClassVar[Sequence[str]] = ("bash_command", "env", "cwd")
    #: a bash_command ending in one of these names a script file, read and rendered (Airflow's rule;
    #: end the command with a space to run such a script as it is)
    template_ext: ClassVar[Sequence[str]] = (".sh", ".bash")
    kind: ClassVar[str] = "bash"

    def __init__(
        self,
        *,
        bash_command: str,
        env: dict[str, str] | None = None,
        append_env: bool = False,
        cwd: str | None = None,
        skip_on_exit_code: int | Sequence[int] | None = 99,
        output_encoding: str = "utf-8",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bash_command = bash_command
        self.env = env
        self.append_env = append_env
        self.cwd = cwd
        codes = skip_on_exit_code
        self.skip_on_exit_code = (
            set() if codes is None else {codes} if isinstance(codes, int) else set(codes)
        )
        self.output_encoding = output_encoding

    def execute(self, context: dict[str, Any]) -> str | None:
        env = None
        if self.env is not None:
            env = {**os.environ, **self.env} if self.append_env else dict(self.env)
            env.setdefault("PATH", os.environ.get("PATH", "/usr/bin:/bin"))
        process = subprocess.Popen(
            ["bash", "-c", self.bash_command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.cwd,
            env=env,
            start_new_session=True,
        )
        timeout = self.execution_timeout_seconds
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            _kill_group(process)

        timer = threading.Timer(timeout, expire) if timeout else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        last = _LastLine(get_settings().max_output_bytes)
        with process:
            try:
                _relay(process, self.output_encoding, last)
                returncode = process.wait()
            except BaseException:
                _kill_group(process)
                raise
            finally:
                if timer is not None:
                    timer.cancel()
        if expired.is_set():
            raise TaskTimeoutError(self.dag_id, self.task_id, float(timeout or 0))
        if returncode in self.skip_on_exit_code:
            raise SkipTask(f"the bash command exited with code {returncode}")
        if returncode != 0:
            raise BashCommandError(self.task_id, returncode, last.text[-2000:])
        if last.size > last.limit:
            raise OutputTooLargeError(self.dag_id, self.task_id, last.size, last.limit)
        return last.text or None

    def on_kill(self) -> None:
        """Nothing to do here: the process group dies with the timer or the exception path."""


#: most bytes read from the command at once: a line without end is relayed in pieces this big
READ_BYTES = 1 << 20


class _LastLine:
    """The last non-empty line of stdout (the task's output), read piece by piece. A line longer
    than ``limit`` (max_output_bytes) is not kept, only measured: as the output it would be refused."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.text = ""
        self.size = 0
        self._parts: list[str] = []
        self._size = 0

    def add(self, piece: str) -> None:
        ended = piece.endswith("\n")
        if ended:
            piece = piece[:-1]
        self._size += len(piece)
        if self._size <= self.limit:
            self._parts.append(piece)
        else:
            self._parts.clear()
        if ended:
            self.end()

    def end(self) -> None:
        """The line is complete (a newline, or the end of stdout)."""
        text = "".join(self._parts)
        if text.strip() or self._size > self.limit:
            self.text, self.size = text, self._size
        self._parts, self._size = [], 0


def _relay(process: subprocess.Popen[bytes], encoding: str, last: _LastLine) -> None:
    """Copy the command's stdout and stderr line by line to this thread's sys.stdout/sys.stderr (the
    task log, which keeps what max_log_bytes allows), keeping the last non-empty stdout line. One
    thread reads both pipes, so every line lands in the log of the task that ran the command. Reads
    are at most READ_BYTES: of a command printing one endless line, the log holds no more than its
    cap, and the last line no more than max_output_bytes, the most an output may be."""
    import codecs
    import selectors

    sinks = {process.stdout: sys.stdout, process.stderr: sys.stderr}
    decoders = {stream: codecs.getincrementaldecoder(encoding)(errors="replace") for stream in sinks}
    with selectors.DefaultSelector() as selector:
        for stream in sinks:
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map():
            for key, _ in selector.select():
                stream = key.fileobj
                raw = stream.readline(READ_BYTES)  # type: ignore[union-attr]
                text = decoders[stream].decode(raw, final=not raw)  # type: ignore[index]
                if text:
                    sinks[stream].write(text)  # type: ignore[index]
                    if stream is process.stdout:
                        last.add(text)
                if not raw:
                    selector.unregister(stream)
                    if stream is process.stdout:
                        last.end()


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
