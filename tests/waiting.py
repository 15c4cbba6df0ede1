"""Waiting on another process's doing: poll a condition until it holds, with a deadline.

For tests that watch real daemons, servers and stores, where no event reaches the test: the poll
is the only way to know, and the deadline turns a hang into a failure that says what never came.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "the condition",
             every: float = 0.02) -> Any:
    """The first true value of ``predicate()``; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
