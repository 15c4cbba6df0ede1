"""When a DAG runs: schedules, time zones and data intervals, as pure datetime math.

A schedule is turned into a :class:`Timetable` by :func:`make_timetable`: a 5-field cron string or
preset (:class:`CronTimetable`), a ``timedelta`` (:class:`DeltaTimetable`), ``"@once"``
(:class:`OnceTimetable`) or ``None`` (:class:`NullTimetable`, manual runs only). Semantics are
Airflow's: a run's ``logical_date`` is its scheduled time, its data interval runs from the previous
scheduled time to its own, ``start_date`` is the first time a run may be scheduled (a scheduled time
equal to it counts) and ``end_date`` the last (inclusive).

Every datetime going out is aware and in the DAG's zone. Naive datetimes coming in are read as wall
clock in that zone. Compare, subtract and store results in UTC (``astimezone(timezone.utc)``): Python
subtracts and orders two datetimes that share a tzinfo by wall clock, ignoring DST, and (PEP 495) a
datetime inside a fall-back overlap never compares equal to one in another zone, not even the same
instant in UTC.

Time zones and DST
------------------
Each DAG has a zone (an IANA name, default the machine's) and cron is evaluated on its wall clock.

* Crons with FIXED hours (the hour field is a number, a list or a range of numbers: ``0 6 * * *``,
  ``30 2 * * *``, ``0 9,17 * * 1-5``) name wall-clock times, and run once per matching day:

  - a wall time skipped by a spring-forward gap runs at the instant the clocks jump, the first
    instant after the gap (02:30 on 2024-03-10 in New York runs at 03:00 EDT = 07:00 UTC). Several
    skipped times of one gap (``*/15 2 * * *``) and a time that also names that instant run once;
  - a wall time repeated by a fall-back overlap runs once, at its first occurrence (``fold=0``:
    01:30 on 2024-11-03 in New York runs at 01:30 EDT).

* Crons that STEP through the hours (a ``*`` or a step ``/`` in the hour field: ``0 * * * *``,
  ``*/15 * * * *``, ``0 */2 * * *``) follow elapsed time: they run at every real instant at which the
  local clock shows a matching time. Skipped wall times do not happen, repeated ones happen twice.
  When the step divides the shift, as hourly and finer crons do for a 1-hour shift, runs keep their
  real spacing across the change: an hourly DAG runs 23 times on New York's spring day and 25 times
  on its autumn day. Otherwise the one interval across the change is longer by the shift: an hourly
  cron in Australia/Lord_Howe (30-minute shift) has one 90-minute interval on either change day, and
  ``0 */2 * * *`` has one 3-hour interval in New York. A run never happens at a time the expression
  does not name.

* ``timedelta`` schedules run every ``delta`` of elapsed time from their anchor (the start_date), so
  a daily ``timedelta(days=1)`` from 06:00 EST runs at 07:00 EDT after spring forward.

* A naive date or datetime (``start_date="2024-03-10 02:30"``) is read like a fixed-hour cron time:
  a repeated time is its first occurrence, a skipped one is the instant the clocks jump.

Croniter validates each cron besides nbflow's own field check, but the iteration is nbflow's: it
works on naive wall-clock times and maps them to instants with the rules above, which keeps the
policy in one place and a year of hourly runs well under a tenth of a second.
"""

from __future__ import annotations

import abc
import calendar
import functools
import os
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nbflow.errors import InvalidDateError, ScheduleError, TimezoneError

__all__ = [
    "PRESETS",
    "CronTimetable",
    "DeltaTimetable",
    "NullTimetable",
    "OnceTimetable",
    "Timetable",
    "dst_change_between",
    "local_timezone",
    "make_timetable",
    "next_runs",
    "parse_date",
    "resolve_timezone",
    "scheduled_times",
    "timezone_name",
    "utcnow",
]

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


# -- time zones ------------------------------------------------------------------------------------


def _zone_from_key(key: str) -> tzinfo | None:
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _key_from_path(path: str) -> str | None:
    marker = "zoneinfo/"
    index = path.rfind(marker)
    return path[index + len(marker):] if index >= 0 else None


def local_timezone() -> tzinfo:
    """The machine's zone as a named ZoneInfo, so that it can be stored and shown by its IANA key.

    ``TZ`` wins (``Europe/Berlin``, ``:Europe/Berlin`` or a path into a zoneinfo tree), then the target
    of the ``/etc/localtime`` link, then ``/etc/timezone``; UTC when none names a known zone. Not
    cached: tests and long-lived kernels may change ``TZ``.
    """
    env = os.environ.get("TZ", "").strip().lstrip(":")
    if env:
        zone = _zone_from_key(_key_from_path(env) or env) if env.startswith("/") else _zone_from_key(env)
        if zone is not None:
            return zone
    key = _key_from_path(os.path.realpath("/etc/localtime"))
    if key:
        zone = _zone_from_key(key)
        if zone is not None:
            return zone
    try:
        with open("/etc/timezone", encoding="utf-8") as handle:
            zone = _zone_from_key(handle.read().strip())
    except OSError:
        zone = None
    return zone if zone is not None else ZoneInfo("UTC")


def resolve_timezone(value: str | tzinfo | None, dag_id: str | None = None) -> tzinfo:
    """Turn what a user wrote into a tzinfo; ``None`` means the machine's zone.

    Raises :class:`TimezoneError` for an unknown name, so a typo fails when the DAG is defined and not
    when its first run is due.
    """
    if value is None:
        return local_timezone()
    if isinstance(value, tzinfo):
        zone_name = getattr(value, "zone", None)  # a pytz zone: its arithmetic differs, use the same key
        if isinstance(zone_name, str) and not isinstance(value, ZoneInfo):
            return resolve_timezone(zone_name, dag_id)
        return value
    if isinstance(value, str):
        name = value.strip()
        if name.upper() in ("UTC", "Z"):
            return ZoneInfo("UTC")
        zone = _zone_from_key(name) if name else None
        if zone is not None:
            return zone
    raise TimezoneError(value, dag_id)


def timezone_name(tz: tzinfo) -> str:
    """A name to store and show: the IANA key of a ZoneInfo, ``UTC`` for UTC."""
    key = getattr(tz, "key", None)
    if isinstance(key, str):
        return key
    if tz is UTC or tz == UTC:
        return "UTC"
    return str(tz)


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


def _offsets(wall: datetime, tz: tzinfo) -> tuple[timedelta, timedelta]:
    """The UTC offsets of a wall time's first and second reading (PEP 495 ``fold`` 0 and 1).

    Equal for an ordinary time; first > second in a fall-back overlap; first < second in a
    spring-forward gap (the time does not exist).
    """
    first = wall.replace(tzinfo=tz, fold=0).utcoffset()
    second = wall.replace(tzinfo=tz, fold=1).utcoffset()
    assert first is not None and second is not None
    return first, second


def _offset_at(instant: datetime, tz: tzinfo) -> timedelta:
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
        if _offset_at(middle, tz) == before:
            low = middle
        else:
            high = middle
    return high.replace(tzinfo=UTC)


def _first_reading(wall: datetime, tz: tzinfo) -> datetime:
    """The instant (aware UTC) of a wall time under the fixed-hour policy of the module docstring."""
    first, second = _offsets(wall, tz)
    if first < second:
        return _jump_instant(wall, tz, first, second)
    return (wall - first).replace(tzinfo=UTC)


def _to_utc(value: datetime, tz: tzinfo) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        return _first_reading(value, tz)
    return value.astimezone(UTC)


# -- dates -----------------------------------------------------------------------------------------


def parse_date(
    value: Any,
    tz: tzinfo,
    *,
    field: str = "date",
    dag_id: str | None = None,
    task_id: str | None = None,
) -> datetime:
    """Read a start_date, end_date or logical date the way users write them, as an aware datetime.

    Accepts an ISO date or datetime string (with or without offset, ``T`` or space), a ``date`` (its
    midnight) or a ``datetime``. Naive values are wall clock in ``tz``; aware ones are converted to
    ``tz``. Anything else raises :class:`InvalidDateError` naming the field, the DAG and the task.
    """
    try:
        if isinstance(value, str):
            parsed: datetime | date = datetime.fromisoformat(value.strip())
        elif isinstance(value, (datetime, date)):
            parsed = value
        else:
            raise TypeError(type(value).__name__)
        if not isinstance(parsed, datetime):
            parsed = datetime(parsed.year, parsed.month, parsed.day)
        return _to_utc(parsed, tz).astimezone(tz)
    except (ValueError, TypeError, OverflowError):
        raise InvalidDateError(field, value, dag_id, task_id) from None


def dst_change_between(tz: tzinfo, a: datetime, b: datetime) -> timedelta | None:
    """How much the UTC offset of ``tz`` changed from ``a`` to ``b`` (``None`` when it did not).

    For views that mark a DST change between two neighbouring runs; two changes that cancel out
    between ``a`` and ``b`` count as none.
    """
    change = _offset_at(_to_utc(b, tz).replace(tzinfo=None), tz) - _offset_at(
        _to_utc(a, tz).replace(tzinfo=None), tz
    )
    return change or None


# -- cron parsing ----------------------------------------------------------------------------------

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


@dataclass(frozen=True)
class _Cron:
    """A parsed 5-field cron: its values per field and how its days combine."""

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


@functools.lru_cache(maxsize=512)
def _compile(cron: str) -> _Cron:
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
    return _Cron(
        tuple(sorted(minutes)), tuple(sorted(hours)), days, last_day, months, weekdays, day_or,
        steps_hours="*" in parts[1] or "/" in parts[1],
    )


# -- timetables ------------------------------------------------------------------------------------


class Timetable(abc.ABC):
    """When a DAG's runs are scheduled; every result is aware and in :attr:`tz`.

    Subclasses implement :meth:`next_after` and :meth:`previous_before`; iteration, data intervals and
    "latest at or before" follow from those two.
    """

    tz: tzinfo
    description: str
    periodic: bool = True

    @abc.abstractmethod
    def next_after(self, after: datetime) -> datetime | None:
        """The first scheduled time strictly after ``after``; ``None`` when there is none."""

    @abc.abstractmethod
    def previous_before(self, at: datetime) -> datetime | None:
        """The last scheduled time strictly before ``at``; ``None`` when there is none."""

    def latest_at_or_before(self, at: datetime) -> datetime | None:
        """The most recent scheduled time, ``at`` itself included: what a run without catchup uses."""
        return self.previous_before(_to_utc(at, self.tz) + _TICK)

    def data_interval(self, logical_date: datetime) -> tuple[datetime, datetime]:
        """The data a run covers: from the previous scheduled time to its own logical date."""
        end = _to_utc(logical_date, self.tz).astimezone(self.tz)
        start = self.previous_before(end) if self.periodic else None
        return (start if start is not None else end), end

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """Scheduled times strictly after ``after``, ascending (endless for periodic timetables)."""
        current = self.next_after(after)
        while current is not None:
            yield current
            current = self.next_after(current)

    def _key(self) -> tuple[Any, ...]:
        return (self.description, timezone_name(self.tz))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


class CronTimetable(Timetable):
    """A cron expression (or preset) on the wall clock of ``tz``, with the DST policy of this module."""

    def __init__(self, expression: str, tz: tzinfo, dag_id: str | None = None) -> None:
        if not isinstance(expression, str):
            raise ScheduleError(expression, "a cron expression must be a string", dag_id)
        text = " ".join(expression.split())
        cron = PRESETS.get(text.lower(), text)
        if cron.startswith("@"):
            raise ScheduleError(expression, _unknown_preset(cron), dag_id)
        try:
            self._cron = _compile(cron)
        except _CronProblem as problem:
            raise ScheduleError(expression, problem.problem, dag_id, field=problem.field) from problem.__cause__
        self.expression = text
        self.cron = cron
        self.tz = tz
        self.elapsed_time = self._cron.steps_hours
        self.description = f"{text} ({timezone_name(tz)})"

    def _key(self) -> tuple[Any, ...]:
        return (self.cron, timezone_name(self.tz))

    def next_after(self, after: datetime) -> datetime | None:
        return next(self.iter_after(after), None)

    def previous_before(self, at: datetime) -> datetime | None:
        return next(self.iter_before(at), None)

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        start = _to_utc(after, self.tz)
        local = start.astimezone(self.tz)
        wall = local.replace(tzinfo=None, fold=0)
        if not local.fold:
            first, second = _offsets(wall, self.tz)
            if first > second:  # the first reading of a repeated time: the second readings come later
                wall -= first - second
        found = self._elapsed_after(wall, start) if self.elapsed_time else self._fixed_after(wall, start)
        for instant in found:
            yield instant.astimezone(self.tz)

    def iter_before(self, at: datetime) -> Iterator[datetime]:
        """Scheduled times strictly before ``at``, descending."""
        end = _to_utc(at, self.tz)
        local = end.astimezone(self.tz)
        wall = local.replace(tzinfo=None, fold=0)
        if local.fold:  # the second reading of a repeated time: all first readings came earlier
            first, second = _offsets(wall, self.tz)
            wall += first - second
        found = self._elapsed_before(wall, end) if self.elapsed_time else self._fixed_before(wall, end)
        for instant in found:
            yield instant.astimezone(self.tz)

    # The four generators below map wall times to aware UTC instants. Starting walls are chosen by the
    # callers so that no instant on the right side of the bound is missed; the bound is then applied
    # to instants, since wall time runs backwards once in a fall-back overlap.

    def _fixed_after(self, wall: datetime, after: datetime) -> Iterator[datetime]:
        previous = None
        for candidate in self._cron.walls_after(wall):
            instant = _first_reading(candidate, self.tz)
            if instant > after and instant != previous:  # several skipped times share one jump
                previous = instant
                yield instant

    def _fixed_before(self, wall: datetime, before: datetime) -> Iterator[datetime]:
        previous = None
        for candidate in self._cron.walls_before(wall):
            instant = _first_reading(candidate, self.tz)
            if instant < before and instant != previous:
                previous = instant
                yield instant

    def _elapsed_after(self, wall: datetime, after: datetime) -> Iterator[datetime]:
        # Inside an overlap, first readings are yielded as found and second readings held back until
        # the overlap's walls are passed: every second reading is later than every first one.
        held: list[datetime] = []
        for candidate in self._cron.walls_after(wall):
            first, second = _offsets(candidate, self.tz)
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

    def _elapsed_before(self, wall: datetime, before: datetime) -> Iterator[datetime]:
        held: list[datetime] = []
        for candidate in self._cron.walls_before(wall):
            first, second = _offsets(candidate, self.tz)
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


class DeltaTimetable(Timetable):
    """Runs at ``anchor + k * delta`` in elapsed time, for every whole ``k`` (DST does not bend it)."""

    def __init__(self, delta: timedelta, tz: tzinfo, anchor: datetime) -> None:
        if not isinstance(delta, timedelta) or delta <= timedelta(0):
            raise ScheduleError(delta, "a timedelta schedule must be longer than zero")
        self.delta = delta
        self.tz = tz
        self.anchor = _to_utc(anchor, tz).astimezone(tz)
        self.description = f"every {delta}"

    def _key(self) -> tuple[Any, ...]:
        return (self.delta, self.anchor.astimezone(UTC), timezone_name(self.tz))

    def _at(self, k: int) -> datetime | None:
        try:
            return (self.anchor.astimezone(UTC) + k * self.delta).astimezone(self.tz)
        except OverflowError:
            return None

    def next_after(self, after: datetime) -> datetime | None:
        elapsed = _to_utc(after, self.tz) - self.anchor.astimezone(UTC)
        return self._at(elapsed // self.delta + 1)

    def previous_before(self, at: datetime) -> datetime | None:
        elapsed = _to_utc(at, self.tz) - self.anchor.astimezone(UTC)
        return self._at(-(-elapsed // self.delta) - 1)  # ceil(elapsed / delta) - 1


class OnceTimetable(Timetable):
    """``@once``: a single run at ``start_date``; none without one."""

    periodic = False

    def __init__(self, tz: tzinfo, start_date: datetime | None = None) -> None:
        self.tz = tz
        self.start_date = _to_utc(start_date, tz).astimezone(tz) if start_date is not None else None
        self.description = "@once"

    def _key(self) -> tuple[Any, ...]:
        return (self.start_date.astimezone(UTC) if self.start_date else None,)

    def next_after(self, after: datetime) -> datetime | None:
        start = self.start_date
        return start if start is not None and start > _to_utc(after, self.tz) else None

    def previous_before(self, at: datetime) -> datetime | None:
        start = self.start_date
        return start if start is not None and start < _to_utc(at, self.tz) else None


class NullTimetable(Timetable):
    """``schedule=None``: the DAG runs only when triggered."""

    periodic = False

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.description = "manual"

    def next_after(self, after: datetime) -> datetime | None:
        return None

    def previous_before(self, at: datetime) -> datetime | None:
        return None


def _unknown_preset(text: str) -> str:
    import difflib

    known = [*PRESETS, "@once"]
    close = difflib.get_close_matches(text.lower(), known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"'{text}' is not a known preset (known: {', '.join(known)}){hint}"


def make_timetable(
    schedule: Any, tz: tzinfo, start_date: datetime | None = None, dag_id: str | None = None
) -> Timetable:
    """The timetable for what a DAG was given as ``schedule``; a bad value raises ScheduleError.

    ``None``/``"None"`` is manual, ``"@once"`` one run at start_date, a preset or 5-field cron string
    a :class:`CronTimetable`, a ``timedelta`` a :class:`DeltaTimetable` anchored at ``start_date``
    (required: without it the runs would have no anchor), and a Timetable is used as it is.
    """
    if isinstance(schedule, Timetable):
        return schedule
    if schedule is None or (isinstance(schedule, str) and schedule.strip() == "None"):
        return NullTimetable(tz)
    if isinstance(schedule, str):
        if schedule.strip().lower() == "@once":
            return OnceTimetable(tz, start_date)
        return CronTimetable(schedule, tz, dag_id)
    if isinstance(schedule, timedelta):
        if schedule <= timedelta(0):
            raise ScheduleError(schedule, "a timedelta schedule must be longer than zero", dag_id)
        if start_date is None:
            raise ScheduleError(
                schedule, "a timedelta schedule needs a start_date to count its runs from; pass "
                "start_date=...", dag_id)
        return DeltaTimetable(schedule, tz, start_date)
    raise ScheduleError(schedule, f"a schedule cannot be a {type(schedule).__name__}", dag_id)


# -- plans -----------------------------------------------------------------------------------------


def scheduled_times(
    timetable: Timetable,
    start: datetime,
    end: datetime,
    *,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
) -> list[datetime]:
    """Every scheduled time in ``[start, end]`` that also lies in ``[start_date, end_date]``.

    Both ends are included, so a backfill from a run's logical date includes that run. For ``@once``
    it is the start date, if it falls inside.
    """
    tz = timetable.tz
    low = max(_to_utc(start, tz), _to_utc(start_date, tz)) if start_date is not None else _to_utc(start, tz)
    high = min(_to_utc(end, tz), _to_utc(end_date, tz)) if end_date is not None else _to_utc(end, tz)
    if low > high:
        return []
    times: list[datetime] = []
    for when in timetable.iter_after(low - _TICK):
        if when > high:
            break
        times.append(when)
    return times


def next_runs(
    timetable: Timetable,
    n: int,
    after: datetime | None = None,
    *,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
) -> list[datetime]:
    """The next ``n`` scheduled times strictly after ``after`` (default now), within the DAG's dates."""
    tz = timetable.tz
    low = _to_utc(after, tz) if after is not None else utcnow()
    if start_date is not None and _to_utc(start_date, tz) > low:
        low = _to_utc(start_date, tz) - _TICK
    high = _to_utc(end_date, tz) if end_date is not None else None
    times: list[datetime] = []
    if n <= 0:
        return times
    for when in timetable.iter_after(low):
        if high is not None and when > high:
            break
        times.append(when)
        if len(times) == n:
            break
    return times
