"""Times as the views show them: in the machine's zone, with the zone named, and durations."""

from __future__ import annotations

from datetime import datetime


def local_time(value: datetime | None, *, seconds: bool = True) -> str:
    """``2024-03-05 11:00:02 CET (Europe/Berlin)``; ``-`` for no time. Naive datetimes are UTC, as
    the store keeps them."""
    if value is None:
        return "-"
    from datetime import timezone

    from nbflow.timetables import local_timezone, timezone_name

    zone = local_timezone()
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    local = value.astimezone(zone)
    text = local.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")
    name = timezone_name(zone)
    return text if text.endswith(name) else f"{text} ({name})"


def duration_text(seconds: float | None) -> str:
    """``0.42 s``, ``2 min 03 s``, ``1 h 02 min``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def utc_time(value: datetime | None) -> str:
    """``2024-03-05 10:00:02 UTC``; ``-`` for no time (what views show on hover)."""
    if value is None:
        return "-"
    from datetime import timezone

    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
