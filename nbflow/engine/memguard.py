"""Whether this machine has the free memory to start another task (``min_free_memory``).

A host that starts tasks while the machine is short of memory makes the kernel's OOM killer pick a
victim, and the victim may be the host itself. So a host holds new tasks while available memory
(psutil's ``available``: free memory plus what the kernel can reclaim at once) is under the setting,
and says why in its status; running tasks go on, and holding ends by itself when memory returns.
"""

from __future__ import annotations

import time

import psutil

from nbflow.memory import format_size, parse_free

#: seconds a reading of the machine's memory is reused: a busy host dispatches many times a second
CHECK_SECONDS = 0.5


class MemoryGuard:
    """Reads the machine's memory at most every :data:`CHECK_SECONDS` and says whether to hold."""

    def __init__(self, setting: str) -> None:
        self.setting = setting
        parsed = parse_free(setting)
        self._fraction, self._size = parsed if parsed is not None else (0.0, 0)
        self._checked_at = -CHECK_SECONDS
        self._reason: str | None = None

    @property
    def active(self) -> bool:
        return bool(self._fraction or self._size)

    def hold(self) -> str | None:
        """Why no task may start now (free memory under ``min_free_memory``), or None."""
        if not self.active:
            return None
        now = time.monotonic()
        if now - self._checked_at >= CHECK_SECONDS:
            self._checked_at = now
            self._reason = self._read()
        return self._reason

    def _read(self) -> str | None:
        memory = psutil.virtual_memory()
        need = max(int(memory.total * self._fraction), self._size)
        if memory.available >= need:
            return None
        return (f"holding new tasks: free memory {format_size(memory.available)} of {format_size(memory.total)} is "
                f"under min_free_memory = {self.setting} ({format_size(need)}); running tasks go on, and new ones "
                "start when memory is freed (or lower min_free_memory)")
