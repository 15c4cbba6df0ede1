"""Sizes of memory as people write them ("2GiB", "300MB", "512MiB", a number of bytes) and back.

Used by the ``memory_limit`` task option, the ``task_memory_limit`` and ``min_free_memory``
settings and every view that shows a try's peak memory, so that all of them accept and print the
same forms. Standard library only: worker processes and the model layer both read it.
"""

from __future__ import annotations

import re
from typing import Any

#: the forms a size may take, for error messages
SIZE_FORMS = "a number of bytes (an int) or text such as \"2GiB\", \"300MB\", \"512MiB\" (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: Any) -> int | None:
    """Bytes in ``value`` (an int, or text with a unit), or None when it is not a size of at least
    one byte. A bool, a negative number or an unknown unit is not a size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if not isinstance(value, str):
        return None
    found = _SIZE.match(value)
    if not found or found[2].lower() not in _UNITS:
        return None
    number = int(float(found[1]) * _UNITS[found[2].lower()])
    return number if number > 0 else None


def parse_free(value: Any) -> tuple[float, int] | None:
    """``min_free_memory`` as (fraction of the machine's memory, bytes): "10%" gives (0.1, 0), "2GiB"
    gives (0.0, 2**31); "0" or "" turn the check off, (0.0, 0). None when it is neither."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            percent = float(value.strip()[:-1])
        except ValueError:
            return None
        return (percent / 100, 0) if 0 <= percent <= 100 else None
    if value in ("", "0", 0):
        return (0.0, 0)
    size = parse_size(value)
    return None if size is None else (0.0, size)


def format_size(size: int | None) -> str:
    """``312 MiB``, ``2.0 GiB``: bytes as people read them ("" for None)."""
    if size is None:
        return ""
    if size >= 2**30:
        return f"{size / 2**30:.1f} GiB"
    if size >= 2**20:
        return f"{size / 2**20:.0f} MiB"
    if size >= 2**10:
        return f"{size / 2**10:.0f} KiB"
    return f"{size} B"
