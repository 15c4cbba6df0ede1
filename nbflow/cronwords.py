"""Schedules in words, for the people who read them rather than write them.

In English the sentences are built here; in the other languages cron-descriptor has (German,
Japanese, Korean, ...) they come from it, through :mod:`nbflow.cronlocale`, chosen by ``language=``
or the user's locale. English is our own for a measured reason: cron-descriptor's English promises
runs a cron does not make (``*/7 * * * *`` is "Every 7 minutes", but :56 to :00 is 4; ``0 */5 * * *``
"Every 5 hours", but 20:00 to 00:00 is 4), and the English sentences below are checked against the
times :mod:`nbflow.cron` walks (tests/test_cronwords.py).

A schedule is written for the machine (``30 7 * * 1-5``); listings, graph views and messages want it
for people ("at 07:30, Monday to Friday"). :func:`describe_cron` phrases a 5-field cron or preset and
:func:`describe_schedule` every value a DAG accepts as ``schedule``.

The words are built from the values each field allows (:class:`nbflow.cron.Cron`), so ``0,15,30,45``
and ``*/15`` read alike and a sentence cannot promise runs the expression does not make. The text of
the hour field is read only to choose between two true phrasings: ``0 */6 * * *`` reads as "every 6
hours", ``0 0,6,12,18 * * *`` as the four times. What has no short phrasing is spelled out field by
field ("at minutes 3, 17 and 44 past hours 1-5 every day"): longer, never wrong.

Times are wall-clock times in the DAG's zone; a cron does not carry its zone, so these words do not
name one (:attr:`nbflow.timetables.CronTimetable.summary` does).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Collection, Sequence

from nbflow.cron import Cron, parse_cron
from nbflow.errors import ScheduleError

__all__ = ["describe_cron", "describe_schedule"]

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")  # cron's 0-6
_EVERY_MONTH_DAY = frozenset(range(1, 32))
# Up to _NAMED times of day are always named one by one; up to _MOST_NAMED when no "every ..." fits.
# Beyond that a list of clock times is harder to read than the fields themselves.
_NAMED = 4
_MOST_NAMED = 6


def describe_cron(expression: str, language: str | None = None) -> str:
    """A short sentence for a 5-field cron or preset: ``"0 6 * * *"`` -> ``"at 06:00 every day"``.

    In English unless ``language`` (``"de"``, ``"ja"``, ...) or, without it, the user's locale names
    another language cron-descriptor has (:mod:`nbflow.cronlocale`): ``"Um 06:00"``.
    A bad expression raises the :class:`~nbflow.errors.ScheduleError` of
    :func:`nbflow.cron.parse_cron`, whose ``field`` names the bad field.
    """
    from nbflow.cronlocale import describe_in, is_english, resolve_language

    cron = parse_cron(expression)
    code = resolve_language(language)
    if not is_english(code):
        return describe_in(cron.expression, code)
    hour_text = cron.expression.split()[1]
    time, recurring = _time_of_day(cron.minutes, cron.hours, hour_text)
    days, bare = _days(cron, recurring)
    if not days:
        return time
    # "Monday to Friday" stands alone after a comma; so does anything after "every hour, on the hour"
    separator = ", " if bare or time.endswith("on the hour") else " "
    return f"{time}{separator}{days}"


def describe_schedule(schedule: Any, language: str | None = None) -> str:
    """Words for anything a DAG accepts as ``schedule`` (see :func:`nbflow.timetables.make_timetable`).

    ``None`` is "manual runs only", ``"@once"`` "once", a ``timedelta`` "every 2 hours" or "every 1 day
    6 hours", a cron or preset string goes to :func:`describe_cron`, and a timetable answers with its
    own ``summary``. Anything else raises :class:`~nbflow.errors.ScheduleError`, as a DAG would.
    """
    if schedule is None or (isinstance(schedule, str) and schedule.strip() == "None"):
        return "manual runs only"
    if isinstance(schedule, str):
        return "once" if schedule.strip().lower() == "@once" else describe_cron(schedule, language)
    if isinstance(schedule, timedelta):
        if schedule <= timedelta(0):
            raise ScheduleError(schedule, "a timedelta schedule must be longer than zero")
        return _every_span(schedule)
    # Timetables are recognised by their summary: nbflow.timetables imports this module for those
    # summaries, so importing it back here would make the two depend on each other.
    summary = getattr(schedule, "summary", None)
    if isinstance(summary, str):
        return summary
    raise ScheduleError(schedule, f"a schedule cannot be a {type(schedule).__name__}")


# -- time of day -----------------------------------------------------------------------------------


def _time_of_day(minutes: tuple[int, ...], hours: tuple[int, ...], hour_text: str) -> tuple[str, bool]:
    """The clock half of the sentence, and whether it recurs within each day.

    A phrase that recurs ("every 15 minutes") already implies every day, so "every day" goes unsaid.
    """
    if len(hours) == 24:
        return _within_each_hour(minutes), True
    if len(minutes) == 1:
        return _once_in_hours(minutes[0], hours, hour_text)
    times = len(minutes) * len(hours)
    if times <= _NAMED:
        return _at_times(minutes, hours), False
    step = _step(minutes)
    if step is not None and _covers(minutes, step, 60) and hours[-1] - hours[0] == len(hours) - 1:
        first, last = _clock(hours[0], minutes[0]), _clock(hours[-1], minutes[-1])
        return f"{_every(step, 'minute')} from {first} to {last}", True
    if times <= _MOST_NAMED:
        return _at_times(minutes, hours), False
    return f"at {_counted('minute', minutes)} past {_counted('hour', hours)}", False


def _within_each_hour(minutes: tuple[int, ...]) -> str:
    if len(minutes) == 1:
        return f"every hour{_past(minutes[0])}"
    step = _step(minutes)
    if step is not None and _covers(minutes, step, 60):
        if minutes[0] == 0:
            return _every(step, "minute")
        return f"{_every(step, 'minute')} at {_numbers(minutes)} past the hour"
    return f"every hour at {_counted('minute', minutes)}"


def _once_in_hours(minute: int, hours: tuple[int, ...], hour_text: str) -> tuple[str, bool]:
    """One minute in some of the hours: a list of times, or "every N hours" when the hours are regular."""
    step = _step(hours)
    # A range or step as written ("9-17", "*/6") asks to be read as one; a short list ("0,12") as times.
    as_run = "-" in hour_text or "/" in hour_text
    if step is not None and (as_run or len(hours) > _NAMED):
        if hours[0] == 0 and _covers(hours, step, 24):
            return f"{_every(step, 'hour')}{_past(minute)}", True
        first, last = _clock(hours[0], minute), _clock(hours[-1], minute)
        return f"{_every(step, 'hour')} from {first} to {last}", True
    if len(hours) <= _MOST_NAMED:
        return _at_times((minute,), hours), False
    return f"at {_counted('minute', (minute,))} past {_counted('hour', hours)}", False


def _at_times(minutes: Sequence[int], hours: Sequence[int]) -> str:
    return "at " + _join([_clock(hour, minute) for hour in hours for minute in minutes])


def _past(minute: int) -> str:
    return ", on the hour" if minute == 0 else f" at minute {minute}"


def _clock(hour: int, minute: int) -> str:
    return f"{hour:02d}:{minute:02d}"


def _every(step: int, unit: str) -> str:
    return f"every {unit}" if step == 1 else f"every {step} {unit}s"


def _step(values: Sequence[int]) -> int | None:
    """The common difference of two or more evenly spaced values; ``None`` when there is none."""
    if len(values) < 2:
        return None
    step = values[1] - values[0]
    return step if all(b - a == step for a, b in zip(values, values[1:])) else None


def _covers(values: Sequence[int], step: int, size: int) -> bool:
    """Whether evenly spaced values keep their spacing across the wrap (minute 59 to 0, hour 23 to 0)."""
    return size % step == 0 and values[0] < step and len(values) == size // step


# -- days ------------------------------------------------------------------------------------------


def _days(cron: Cron, recurring: bool) -> tuple[str, bool]:
    """The calendar half of the sentence ("" for every day), and whether it stands bare after a comma."""
    months = "" if len(cron.months) == 12 else _join(_cycle(cron.months, _MONTHS, first=1))
    by_month = not cron.days >= _EVERY_MONTH_DAY
    by_week = len(cron.weekdays) < 7
    if cron.day_or:
        if by_month and by_week:
            either = f"on {_month_days(cron)} of the month or on {_join(_cycle(cron.weekdays, _WEEKDAYS))}"
            return (f"{either}, in {months}" if months else either), False
        by_month = by_week = False  # one field matching every day makes every day match
    # Without day_or one of the two fields was '*' (parse_cron ORs them whenever both are restricted),
    # so at most one of them restricts the days here.
    if by_week:
        items = _cycle(cron.weekdays, _WEEKDAYS)
        names = _join(items)
        if len(items) == 1 and " to " in names:
            return (f"{names}, in {months}" if months else names), True
        return (f"on {names} in {months}" if months else f"on {names}"), False
    if by_month:
        if len(cron.months) == 1 and not cron.last_day:
            (month,) = cron.months
            return f"on {_MONTHS[month - 1]} {_join(_number_items(sorted(cron.days)))}", False
        return f"on {_month_days(cron)} of {months or 'every month'}", False
    if recurring:
        return (f"in {months}" if months else ""), False
    return (f"every day in {months}" if months else "every day"), False


def _month_days(cron: Cron) -> str:
    items = _number_items(sorted(cron.days))
    if items:
        items[0] = ("day " if len(cron.days) == 1 else "days ") + items[0]
    if cron.last_day:
        items.append("the last day")
    return _join(items)


def _cycle(values: Collection[int], names: Sequence[str], first: int = 0) -> list[str]:
    """Weekday or month names, with runs of three or more as "A to B".

    Weeks and years wrap around, so a run may too: "Friday to Sunday", "November to February". Each
    run starts at a value whose predecessor is absent; with all values present there is no such start,
    but callers never ask for every weekday or every month.
    """
    size = len(names)
    present = [first + i in values for i in range(size)]
    items: list[str] = []
    for start in range(size):
        if not present[start] or present[start - 1]:
            continue
        length = 1
        while length < size and present[(start + length) % size]:
            length += 1
        run = [names[(start + i) % size] for i in range(length)]
        items.extend([f"{run[0]} to {run[-1]}"] if length >= 3 else run)
    return items


# -- numbers and lists -----------------------------------------------------------------------------


def _counted(unit: str, values: Sequence[int]) -> str:
    return f"{unit}{'s' if len(values) > 1 else ''} {_numbers(values)}"


def _numbers(values: Sequence[int]) -> str:
    return _join(_number_items(values))


def _number_items(values: Sequence[int]) -> list[str]:
    """Sorted numbers as list items: runs of three or more as "a-b", long even spacings as "a, b, c, ..., z"."""
    step = _step(values)
    if step is not None and step > 1 and len(values) >= 5:
        return [f"{values[0]}, {values[1]}, {values[2]}, ..., {values[-1]}"]
    items: list[str] = []
    start = 0
    for end in range(1, len(values) + 1):
        if end < len(values) and values[end] == values[end - 1] + 1:
            continue
        run = values[start:end]
        items.extend([f"{run[0]}-{run[-1]}"] if len(run) >= 3 else [str(value) for value in run])
        start = end
    return items


def _join(items: Sequence[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


# -- timedelta -------------------------------------------------------------------------------------


def _every_span(delta: timedelta) -> str:
    """ "every 2 hours", "every day", "every 1 day 6 hours": the units a person would count in."""
    if delta.days % 7 == 0 and not delta.seconds and not delta.microseconds:
        return _every(delta.days // 7, "week")
    hours, rest = divmod(delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    milliseconds, microseconds = divmod(delta.microseconds, 1000)
    fraction = [(delta.microseconds, "microsecond")] if microseconds else [(milliseconds, "millisecond")]
    parts = [(n, unit) for n, unit in [(delta.days, "day"), (hours, "hour"), (minutes, "minute"),
                                       (seconds, "second"), *fraction] if n]
    if len(parts) == 1:
        return _every(*parts[0])
    # Several units keep their numbers, "every 1 day 6 hours", so the first one is not misread as a step.
    return "every " + " ".join(f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in parts)
