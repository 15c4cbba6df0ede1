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

from nbflow.errors import BashCommandError, SkipTask, TaskTimeoutError
from nbflow.operators.base import BaseOperator


class BashOperator(BaseOperator):
    template_fields: ClassVar[Sequence[str]] = ("bash_command", "env", "cwd")
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
        last: list[str] = []
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
            raise BashCommandError(self.task_id, returncode, last[0] if last else "")
        return last[0] if last else None

    def on_kill(self) -> None:
        """Nothing to do here: the process group dies with the timer or the exception path."""


def _relay(process: subprocess.Popen[bytes], encoding: str, last: list[str]) -> None:
    """Copy the command's stdout and stderr line by line to this thread's sys.stdout/sys.stderr (the
    task log), keeping the last non-empty stdout line. One thread reads both pipes, so every line
    lands in the log of the task that ran the command."""
    import selectors

    sinks = {process.stdout: sys.stdout, process.stderr: sys.stderr}
    with selectors.DefaultSelector() as selector:
        for stream in sinks:
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map():
            for key, _ in selector.select():
                raw = key.fileobj.readline()  # type: ignore[union-attr]
                if not raw:
                    selector.unregister(key.fileobj)
                    continue
                line = raw.decode(encoding, errors="replace")
                sinks[key.fileobj].write(line)  # type: ignore[index]
                if key.fileobj is process.stdout and line.strip():
                    last[:] = [line.rstrip("\n")]


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
