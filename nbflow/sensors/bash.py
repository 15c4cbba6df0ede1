"""``BashSensor``: wait until a shell command exits 0.

For conditions a command can test (``test -s /data/today.csv``, ``pg_isready``, ``curl -sf``...),
without writing a Python callable. Each poke runs the command once, with a fresh process group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any, ClassVar, Sequence

from nbflow.errors import BashCommandError, FailTask, InvalidOptionError
from nbflow.sensors.base import BaseSensor


class BashSensor(BaseSensor):
    """Pokes by running ``bash_command`` (a Jinja template): exit 0 means done.

    Without ``retry_exit_code`` any other exit means "not yet". With it (as in Airflow 2.6+), only
    that exit code means "not yet", and any other non-zero exit fails the task at once, so a broken
    command is not mistaken for a condition that has not come true. ``env`` replaces the
    environment (``PATH`` is kept when it does not set one) and ``cwd`` is the working directory.
    The command's output goes to the task log.
    """

    template_fields: ClassVar[Sequence[str]] = ("bash_command", "env", "cwd")

    def __init__(
        self,
        *,
        bash_command: str,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        retry_exit_code: int | None = None,
        output_encoding: str = "utf-8",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(bash_command, str) or not bash_command.strip():
            raise InvalidOptionError("bash_command", bash_command, "give a non-empty command string", self.dag_id, self.task_id)
        if env is not None and not isinstance(env, dict):
            raise InvalidOptionError("env", env, "give a dict of environment variables, or None to inherit nbflow's", self.dag_id, self.task_id)
        if retry_exit_code is not None and (isinstance(retry_exit_code, bool) or not isinstance(retry_exit_code, int)
                                            or not 1 <= retry_exit_code <= 255):
            raise InvalidOptionError("retry_exit_code", retry_exit_code, "give an exit code from 1 to 255, or None", self.dag_id, self.task_id)
        self.bash_command = bash_command
        self.env = env
        self.cwd = cwd
        self.retry_exit_code = retry_exit_code
        self.output_encoding = output_encoding

    def waiting_for(self) -> str:
        return "the bash command to exit 0"

    def poke(self, context: dict[str, Any]) -> bool:
        env = None
        if self.env is not None:
            env = {str(k): str(v) for k, v in self.env.items()}
            env.setdefault("PATH", os.environ.get("PATH", "/usr/bin:/bin"))
        process = subprocess.Popen(
            ["bash", "-c", self.bash_command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, cwd=self.cwd, env=env, start_new_session=True,
        )
        try:
            out, err = process.communicate()
        except BaseException:
            # the try is being stopped (timeout, cancel): the command must not outlive it
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.wait()
            raise
        sys.stdout.write(out.decode(self.output_encoding, errors="replace"))
        sys.stderr.write(err.decode(self.output_encoding, errors="replace"))
        code = process.returncode
        if code == 0:
            return True
        if self.retry_exit_code is not None and code != self.retry_exit_code:
            tail = (err or out).decode(self.output_encoding, errors="replace").strip()[-2000:]
            # as Airflow: another exit than retry_exit_code fails the sensor for good, retries or not
            raise FailTask(str(BashCommandError(self.task_id, code, tail)))
        self._log(f"the command exited with code {code}")
        return False
