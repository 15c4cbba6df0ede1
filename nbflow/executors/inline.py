"""Run each call right away, inside ``submit``, in the caller's own thread.

The simplest executor and the easiest to debug: breakpoints, ``print`` and stack traces behave as if
the task were called directly. It runs one call at a time, so its ``parallelism`` is always 1.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable
from typing import Any

from nbflow.errors import TaskTimeoutError
from nbflow.executors.base import HOSTNAME, Executor, Outcome, format_error


class InlineExecutor(Executor):
    """Runs the call synchronously in ``submit``, then calls ``on_done`` before ``submit`` returns.

    A timeout cannot interrupt a call running in the caller's own thread. It is checked afterwards:
    a call that ran past it is reported as timed out (``TaskTimeoutError``) and its return value or
    exception is dropped, so that the outcome does not depend on which executor ran the task.
    ``KeyboardInterrupt`` is not reported: it propagates, so that interrupting a notebook stops it.
    """

    name = "inline"
    in_process = True

    def __init__(self, parallelism: int = 4) -> None:
        super().__init__(parallelism)
        self.parallelism = 1
        self._busy = False

    def submit(
        self, key: Hashable, fn: Callable[..., Any], args: tuple[Any, ...] = (), *,
        timeout: float | None = None, memory_limit: int | None = None,
        resources: dict[str, float] | None = None, priority: int = 0,
    ) -> None:
        self._check_open()
        if self._refuse_resources(key, resources):
            return
        if self._refuse_memory_limit(key, memory_limit):
            return
        self._busy = True
        started_at = time.time()
        begin = time.monotonic()
        try:
            value = fn(*args)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit from a task is the task's failure, not ours
            outcome = Outcome(key, ok=False, error=exc, traceback=format_error(exc))
        else:
            outcome = Outcome(key, ok=True, value=value)
        finally:
            self._busy = False
        if timeout is not None and time.monotonic() - begin > timeout:
            error = TaskTimeoutError(None, None, timeout)
            outcome = Outcome(key, ok=False, error=error, traceback=format_error(error), timed_out=True)
        outcome.started_at, outcome.ended_at = started_at, time.time()
        outcome.pid, outcome.hostname = os.getpid(), HOSTNAME
        self._report(outcome)

    @property
    def free_slots(self) -> int:
        return 0 if self._closed or self._busy else 1

    def shutdown(self, wait: bool = True) -> None:
        """Nothing runs in the background, so there is nothing to wait for."""
        self._closed = True
