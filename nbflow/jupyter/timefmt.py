"""Times as the views show them: in the machine's zone, with the zone named, and durations; in HTML
views as ``<time>`` elements that nbflow's JupyterLab extension shows in the browser's zone."""

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


def iso_utc(value: datetime | None) -> str | None:
    """``2024-03-05T10:00:02Z``, the instant as a browser parses it; None for no time."""
    if value is None:
        return None
    from datetime import timezone

    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def time_html(value: datetime | None, *, seconds: bool = True) -> str:
    """A time for an HTML view: ``<time class="nbflow-time" datetime="…Z" title="… UTC">`` around the
    kernel's local time. nbflow's JupyterLab extension rewrites its text into the browser's zone
    (``labextension/src/outputtimes.ts``), so a notebook and Lab name the same zone; without it
    (nbconvert, other front ends) the kernel's zone stays, named."""
    from html import escape

    if value is None:
        return "-"
    return (f"<time class='nbflow-time' datetime='{iso_utc(value)}' data-seconds='{str(seconds).lower()}' "
            f"title='{escape(utc_time(value))}'>{escape(local_time(value, seconds=seconds))}</time>")


def short_time(value: datetime | None) -> str:
    """``4 Dec 02:41`` in the machine's zone (a run picker's time); ``-`` for no time."""
    if value is None:
        return "-"
    from datetime import timezone

    from nbflow.timetables import local_timezone

    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    local = value.astimezone(local_timezone())
    return f"{local.day} {local.strftime('%b %H:%M')}"


def split_run_id(run_id: str) -> tuple[str, datetime | None]:
    """``manual__2026-12-04T01:41:01+00:00`` → ``("manual", that instant)``; an id of another shape
    gives ``(run_id, None)``."""
    kind, sep, rest = run_id.partition("__")
    if not sep:
        return run_id, None
    try:
        when = datetime.fromisoformat(rest)
    except ValueError:
        return run_id, None
    return kind, when


def run_words(run_id: str) -> str:
    """``manual · 4 Dec 02:41`` for a run id (the id itself when it is not ``<type>__<time>``)."""
    kind, when = split_run_id(run_id)
    return f"{kind} · {short_time(when)}" if when is not None else run_id


def run_html(run_id: str) -> str:
    """:func:`run_words` for an HTML view: the time a ``<time>`` element (the browser's zone where
    nbflow's JupyterLab extension runs), the raw id on hover."""
    from html import escape

    kind, when = split_run_id(run_id)
    if when is None:
        return f"<code>{escape(run_id)}</code>"
    return (f"<span class='nbflow-run' title='{escape(run_id, quote=True)}'>{escape(kind)} · "
            f"<time class='nbflow-time' data-format='short' datetime='{iso_utc(when)}'>{escape(short_time(when))}"
            "</time></span>")
