"""Cron expressions: presets, parsing, and the instants a 5-field cron names on a zone's wall clock.

:func:`parse_cron` turns a preset or a 5-field cron string into a :class:`Cron`, the values each field
allows, or raises :class:`~nbflow.errors.ScheduleError` naming the bad field. croniter validates each
expression as a second opinion (imported on first use, so DAGs without a cron never load it).

:meth:`Cron.instants_after` and :meth:`Cron.instants_before` walk the matching naive wall times and map
them to instants with the DST policy documented in :mod:`nbflow.timetables`: crons with fixed hours
follow the wall clock (:func:`first_reading`), crons that step through the hours follow elapsed time.
"""

from __future__ import annotations

import calendar
import functools
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Iterator

from nbflow.errors import ScheduleError

__all__ = ["PRESETS", "Cron", "first_reading", "offset_at", "parse_cron", "utc_offsets"]

UTC = timezone.utc
_TICK = timedelta(microseconds=1)  # the resolution of datetime: "strictly after t" is "at or after t + tick"
_DAY = timedelta(days=1)

PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


# -- parsing ---------------------------------------------------------------------------------------

_MONTHS = {name: i for i, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
_WEEKDAYS = {name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None
    range_text: str = ""

    @property
    def allowed(self) -> str:
        return self.range_text or f"{self.low}-{self.high}"


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTHS, "1-12 (or JAN-DEC)"),
    _Field("day-of-week", 0, 7, _WEEKDAYS, "0-7 (0 and 7 are Sunday, or SUN-SAT)"),
)


class _CronProblem(Exception):
    def __init__(self, problem: str, field: str | None = None) -> None:
        super().__init__(problem)
        self.problem, self.field = problem, field


def _parse_value(text: str, spec: _Field, whole: str) -> int:
    upper = text.upper()
    if spec.names is not None and upper in spec.names:
        return spec.names[upper]
    if not text.isdigit():
        if text.isalpha() and spec.names is None:
            hint = " (names such as MON or JAN only fit the month and day-of-week fields)"
        elif text.isalpha():
            hint = f" (use {spec.allowed})"
        else:
            hint = ""
        where = "" if text == whole else f" has '{text}', which"
        raise _CronProblem(f"the {spec.name} field '{whole}'{where} is not a number{hint}", spec.name)
    number = int(text)
    if not spec.low <= number <= spec.high:
        where = "" if text == whole else f" has {number}, which"
        raise _CronProblem(f"the {spec.name} field '{whole}'{where} is out of range {spec.allowed}", spec.name)
    return number


def _parse_field(whole: str, spec: _Field) -> tuple[frozenset[int], bool]:
    """The values one field allows, and whether it asks for the month's last day (``L``)."""
    values: set[int] = set()
    last_day = False
    span = spec.high - spec.low + (0 if spec.name == "day-of-week" else 1)
    for part in whole.split(","):
        if not part:
            raise _CronProblem(f"the {spec.name} field '{whole}' has an empty item in its list", spec.name)
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or not 1 <= int(step_text) <= span:
                raise _CronProblem(
                    f"the {spec.name} field '{whole}' has step '{step_text}'; a step must be a whole "
                    f"number from 1 to {span}", spec.name)
            step = int(step_text)
        if base in ("*", "?") and (base == "*" or spec.name in ("day-of-month", "day-of-week")):
            first, last = spec.low, spec.high
        elif base.upper() == "L" and spec.name == "day-of-month" and not slash:
            last_day = True
            continue
        elif "-" in base:
            start_text, _, end_text = base.partition("-")
            first = _parse_value(start_text, spec, whole)
            last = _parse_value(end_text, spec, whole)
            if first > last:
                raise _CronProblem(
                    f"the {spec.name} field '{whole}' has the range '{base}', which runs backwards; "
                    f"write it as two ranges ('{start_text}-{spec.high},{spec.low}-{end_text}')", spec.name)
        elif spec.name == "day-of-week" and ("#" in base or base.upper().startswith("L")):
            raise _CronProblem(
                f"the {spec.name} field '{whole}' uses '{base}': nth and last weekdays ('#', 'L') are "
                "not supported; only day-of-month accepts 'L' (the last day)", spec.name)
        else:
            first = _parse_value(base, spec, whole)
            # 'a/n' runs to the field's end; for day-of-week that is Saturday, so 7 is not Sunday again
            last = (6 if spec.name == "day-of-week" else spec.high) if slash else first
        values.update(range(first, last + 1, step))
    if spec.name == "day-of-week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values), last_day


_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # with Feb 29, the most each can have


# -- wall times and instants -----------------------------------------------------------------------


def utc_offsets(wall: datetime, tz: tzinfo) -> tuple[timedelta, timedelta]:
    """The UTC offsets of a wall time's first and second reading (PEP 495 ``fold`` 0 and 1).

    Equal for an ordinary time; first > second in a fall-back overlap; first < second in a
    spring-forward gap (the time does not exist).
    """
    first = wall.replace(tzinfo=tz, fold=0).utcoffset()
    second = wall.replace(tzinfo=tz, fold=1).utcoffset()
    assert first is not None and second is not None
    return first, second


def offset_at(instant: datetime, tz: tzinfo) -> timedelta:
    """The UTC offset of ``tz`` at an instant given as naive UTC."""
    offset = instant.replace(tzinfo=UTC).astimezone(tz).utcoffset()
    assert offset is not None
    return offset


def _jump_instant(wall: datetime, tz: tzinfo, before: timedelta, after: timedelta) -> datetime:
    """The instant the clocks jump over a gap holding ``wall``: the first instant after the gap.

    The gap lies between ``wall - after`` (still the old offset) and ``wall - before`` (already the
    new one); zoneinfo does not expose its transitions, so bisect down to the microsecond.
    """
    low, high = wall - after, wall - before  # naive UTC
    while high - low > _TICK:
        middle = low + (high - low) // 2
        if offset_at(middle, tz) == before:
            low = middle
        else:
            high = middle
    return high.replace(tzinfo=UTC)


def first_reading(wall: datetime, tz: tzinfo) -> datetime:
    """The instant (aware UTC) of a wall time under the fixed-hour policy of :mod:`nbflow.timetables`."""
    first, second = utc_offsets(wall, tz)
    if first < second:
        return _jump_instant(wall, tz, first, second)
    return (wall - first).replace(tzinfo=UTC)


# -- compiled crons --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cron:
    """A parsed 5-field cron: its values per field and how its days combine."""

    expression: str       # the 5 fields, presets resolved
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    last_day: bool
    months: frozenset[int]
    weekdays: frozenset[int]
    day_or: bool          # both day fields restricted: a day matches either (as in croniter)
    steps_hours: bool     # '*' or a step in the hour field: the elapsed-time policy applies

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_month = day.day in self.days or (
            self.last_day and day.day == calendar.monthrange(day.year, day.month)[1])
        by_week = (day.weekday() + 1) % 7 in self.weekdays
        return (by_month or by_week) if self.day_or else (by_month and by_week)

    def walls_after(self, after: datetime) -> Iterator[datetime]:
        """Matching naive wall times strictly after ``after``, ascending, until year 9999 ends."""
        day = after.date()
        hours, minutes = self.hours, self.minutes
        if self.day_matches(day):
            for hour in hours[bisect_left(hours, after.hour):]:
                for minute in minutes:
                    wall = datetime(day.year, day.month, day.day, hour, minute)
                    if wall > after:
                        yield wall
        try:
            day += _DAY
            while True:
                if day.month not in self.months:  # skip the month in one step
                    day = date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)
                    continue
                if self.day_matches(day):
                    for hour in hours:
                        for minute in minutes:
                            yield datetime(day.year, day.month, day.day, hour, minute)
                day += _DAY
        except (OverflowError, ValueError):
            return

    def walls_before(self, before: datetime) -> Iterator[datetime]:
        """Matching naive wall times strictly before ``before``, descending, back to year 1."""
        day = before.date()
        hours, minutes = self.hours[::-1], self.minutes[::-1]
        if self.day_matches(day):
            for hour in self.hours[:bisect_right(self.hours, before.hour)][::-1]:
                for minute in minutes:
                    wall = datetime(day.year, day.month, day.day, hour, minute)
                    if wall < before:
                        yield wall
        try:
            day -= _DAY
            while True:
                if day.month not in self.months:
                    day = date(day.year, day.month, 1) - _DAY
                    continue
                if self.day_matches(day):
                    for hour in hours:
                        for minute in minutes:
                            yield datetime(day.year, day.month, day.day, hour, minute)
                day -= _DAY
        except (OverflowError, ValueError):
            return

    def instants_after(self, after: datetime, tz: tzinfo) -> Iterator[datetime]:
        """Instants (aware UTC) the cron names on the wall clock of ``tz``, strictly after ``after``."""
        local = after.astimezone(tz)
        wall = local.replace(tzinfo=None, fold=0)
        if not local.fold:
            first, second = utc_offsets(wall, tz)
            if first > second:  # the first reading of a repeated time: the second readings come later
                wall -= first - second
        yield from (
            self._elapsed_after(wall, after, tz) if self.steps_hours else self._fixed_after(wall, after, tz)
        )

    def instants_before(self, before: datetime, tz: tzinfo) -> Iterator[datetime]:
        """The same, strictly before ``before`` and descending."""
        local = before.astimezone(tz)
        wall = local.replace(tzinfo=None, fold=0)
        if local.fold:  # the second reading of a repeated time: all first readings came earlier
            first, second = utc_offsets(wall, tz)
            wall += first - second
        yield from (
            self._elapsed_before(wall, before, tz) if self.steps_hours else self._fixed_before(wall, before, tz)
        )

    # The four generators below map wall times to aware UTC instants. Starting walls are chosen by the
    # callers so that no instant on the right side of the bound is missed; the bound is then applied
    # to instants, since wall time runs backwards once in a fall-back overlap.

    def _fixed_after(self, wall: datetime, after: datetime, tz: tzinfo) -> Iterator[datetime]:
        previous = None
        for candidate in self.walls_after(wall):
            instant = first_reading(candidate, tz)
            if instant > after and instant != previous:  # several skipped times share one jump
                previous = instant
                yield instant

    def _fixed_before(self, wall: datetime, before: datetime, tz: tzinfo) -> Iterator[datetime]:
        previous = None
        for candidate in self.walls_before(wall):
            instant = first_reading(candidate, tz)
            if instant < before and instant != previous:
                previous = instant
                yield instant

    def _elapsed_after(self, wall: datetime, after: datetime, tz: tzinfo) -> Iterator[datetime]:
        # Inside an overlap, first readings are yielded as found and second readings held back until
        # the overlap's walls are passed: every second reading is later than every first one.
        held: list[datetime] = []
        for candidate in self.walls_after(wall):
            first, second = utc_offsets(candidate, tz)
            instant = (candidate - first).replace(tzinfo=UTC)
            if first > second:
                while held and held[0] < instant:  # left over from an earlier overlap
                    yield held.pop(0)
                if instant > after:
                    yield instant
                later = (candidate - second).replace(tzinfo=UTC)
                if later > after:
                    held.append(later)
                continue
            yield from held
            held.clear()
            if first == second and instant > after:
                yield instant
        yield from held

    def _elapsed_before(self, wall: datetime, before: datetime, tz: tzinfo) -> Iterator[datetime]:
        held: list[datetime] = []
        for candidate in self.walls_before(wall):
            first, second = utc_offsets(candidate, tz)
            instant = (candidate - first).replace(tzinfo=UTC)
            if first > second:
                later = (candidate - second).replace(tzinfo=UTC)
                while held and held[0] > later:
                    yield held.pop(0)
                if later < before:
                    yield later
                if instant < before:
                    held.append(instant)
                continue
            yield from held
            held.clear()
            if first == second and instant < before:
                yield instant
        yield from held


@functools.lru_cache(maxsize=512)
def _compile(cron: str) -> Cron:
    """Parse and check a 5-field cron; cached since many DAGs share a handful of expressions."""
    parts = cron.split()
    if len(parts) != 5:
        if not parts:
            raise _CronProblem("it is empty")
        extra = {
            6: "; 6-field crons with a seconds field are not supported",
            7: "; 7-field crons with seconds and years are not supported",
        }.get(len(parts), "")
        noun = "field" if len(parts) == 1 else "fields"
        raise _CronProblem(
            f"it has {len(parts)} {noun} ('{cron}'), but a cron needs exactly 5 (minute hour "
            f"day-of-month month day-of-week){extra}")
    parsed = [_parse_field(text, spec) for text, spec in zip(parts, _FIELDS)]
    (minutes, _), (hours, _), (days, last_day), (months, _), (weekdays, _) = parsed
    # The day fields combine as in croniter: a day matches either when both are restricted (not '*'),
    # both when one is '*'.
    any_weekday = parts[4] in ("*", "?")
    day_or = parts[2] not in ("*", "?") and not any_weekday
    if any_weekday and not last_day and not any(
        day <= _MONTH_DAYS[month - 1] for day in days for month in months
    ):
        raise _CronProblem(
            f"the day-of-month field '{parts[2]}' never falls in the month field '{parts[3]}', so the "
            "schedule would never run", "day-of-month")
    try:
        from croniter import croniter

        croniter(cron)  # a second opinion on the syntax: nbflow must never accept what croniter refuses
    except Exception as exc:
        raise _CronProblem(f"croniter rejects it ({exc})") from exc
    return Cron(
        cron, tuple(sorted(minutes)), tuple(sorted(hours)), days, last_day, months, weekdays, day_or,
        steps_hours="*" in parts[1] or "/" in parts[1],
    )


def _unknown_preset(text: str) -> str:
    import difflib

    known = [*PRESETS, "@once"]
    close = difflib.get_close_matches(text.lower(), known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"'{text}' is not a known preset (known: {', '.join(known)}){hint}"


def parse_cron(expression: str, dag_id: str | None = None) -> Cron:
    """A preset or 5-field cron string as a :class:`Cron`; a bad one raises ScheduleError naming the field.

    Runs of whitespace between fields count as one and presets are case-insensitive.
    """
    if not isinstance(expression, str):
        raise ScheduleError(expression, "a cron expression must be a string", dag_id)
    text = " ".join(expression.split())
    cron = PRESETS.get(text.lower(), text)
    if cron.startswith("@"):
        raise ScheduleError(expression, _unknown_preset(cron), dag_id)
    try:
        return _compile(cron)
    except _CronProblem as problem:
        raise ScheduleError(expression, problem.problem, dag_id, field=problem.field) from problem.__cause__
