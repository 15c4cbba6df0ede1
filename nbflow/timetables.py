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

Croniter validates each cron besides nbflow's own field check, but the iteration is nbflow's
(:mod:`nbflow.cron`): it works on naive wall-clock times and maps them to instants with the rules
above, which keeps the policy in one place and a year of hourly runs well under a tenth of a second.
"""

from __future__ import annotations

import abc
import os
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nbflow.cron import PRESETS, first_reading, offset_at, parse_cron
from nbflow.cronwords import describe_cron, describe_schedule
from nbflow.errors import InvalidDateError, InvalidRequestError, ScheduleError, TimezoneError

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
    if isinstance(value, ZoneInfo) and type(value) is not ZoneInfo and isinstance(getattr(value, "key", None), str):
        # a ZoneInfo subclass (pendulum's Timezone): the stdlib zone of the same name, whose
        # arithmetic the rest of nbflow relies on
        return resolve_timezone(value.key, dag_id)
    if isinstance(value, tzinfo) and type(value).__module__.startswith("pendulum"):
        offset = value.utcoffset(None)  # pendulum's FixedTimezone names no zone: keep its offset
        if offset is not None:
            return ZoneInfo("UTC") if not offset else timezone(offset)
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


def plain_datetime(value: Any) -> Any:
    """A stdlib ``datetime`` / ``date`` / ``timedelta`` for a subclass of one (pendulum's DateTime,
    Date, Duration), its zone a ZoneInfo when it names one; anything else unchanged. Subclasses
    override arithmetic (pendulum's DateTime minus a DateTime is an Interval whose ``//`` fails on a
    timedelta), so they are converted where they come in and never reach the datetime math."""
    if isinstance(value, datetime) and type(value) is not datetime:
        zone = resolve_timezone(value.tzinfo) if value.tzinfo is not None else None
        return datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                        value.microsecond, tzinfo=zone, fold=value.fold)
    if isinstance(value, date) and not isinstance(value, datetime) and type(value) is not date:
        return date(value.year, value.month, value.day)
    if isinstance(value, timedelta) and type(value) is not timedelta:
        return timedelta(days=value.days, seconds=value.seconds, microseconds=value.microseconds)
    return value


def _to_utc(value: datetime, tz: tzinfo) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        return first_reading(value, tz)
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
            parsed = plain_datetime(value)
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
    change = offset_at(_to_utc(b, tz).replace(tzinfo=None), tz) - offset_at(
        _to_utc(a, tz).replace(tzinfo=None), tz
    )
    return change or None


# -- timetables ------------------------------------------------------------------------------------


class Timetable(abc.ABC):
    """When a DAG's runs are scheduled; every result is aware and in :attr:`tz`.

    Subclasses implement :meth:`next_after` and :meth:`previous_before`; iteration, data intervals and
    "latest at or before" follow from those two.
    """

    tz: tzinfo
    description: str
    periodic: bool = True
    #: the asset condition (:mod:`nbflow.assets`) that also starts runs; None for time alone
    asset_condition: Any = None

    @abc.abstractmethod
    def next_after(self, after: datetime) -> datetime | None:
        """The first scheduled time strictly after ``after``; ``None`` when there is none."""

    @abc.abstractmethod
    def previous_before(self, at: datetime) -> datetime | None:
        """The last scheduled time strictly before ``at``; ``None`` when there is none."""

    @property
    def summary(self) -> str:
        """The schedule in plain English (:mod:`nbflow.cronwords`); an unknown kind shows its description."""
        return self.description

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
        self._cron = parse_cron(expression, dag_id)
        self.expression = " ".join(expression.split())
        self.cron = self._cron.expression
        self.tz = tz
        self.elapsed_time = self._cron.steps_hours
        self.description = f"{self.expression} ({timezone_name(tz)})"

    @property
    def summary(self) -> str:
        return f"{describe_cron(self.expression)} ({timezone_name(self.tz)})"

    def _key(self) -> tuple[Any, ...]:
        return (self.cron, timezone_name(self.tz))

    def next_after(self, after: datetime) -> datetime | None:
        return next(self.iter_after(after), None)

    def previous_before(self, at: datetime) -> datetime | None:
        return next(self.iter_before(at), None)

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        for instant in self._cron.instants_after(_to_utc(after, self.tz), self.tz):
            yield instant.astimezone(self.tz)

    def iter_before(self, at: datetime) -> Iterator[datetime]:
        """Scheduled times strictly before ``at``, descending."""
        for instant in self._cron.instants_before(_to_utc(at, self.tz), self.tz):
            yield instant.astimezone(self.tz)


class DeltaTimetable(Timetable):
    """Runs at ``anchor + k * delta`` in elapsed time, for every whole ``k`` (DST does not bend it)."""

    def __init__(self, delta: timedelta, tz: tzinfo, anchor: datetime) -> None:
        if not isinstance(delta, timedelta) or delta <= timedelta(0):
            raise ScheduleError(delta, "a timedelta schedule must be longer than zero")
        self.delta = delta
        self.tz = tz
        self.anchor = _to_utc(anchor, tz).astimezone(tz)
        self.description = f"every {delta}"

    @property
    def summary(self) -> str:
        return describe_schedule(self.delta)

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

    @property
    def summary(self) -> str:
        return describe_schedule("@once")

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

    @property
    def summary(self) -> str:
        return describe_schedule(None)

    def next_after(self, after: datetime) -> datetime | None:
        return None

    def previous_before(self, at: datetime) -> datetime | None:
        return None


class AssetTriggeredTimetable(Timetable):
    """``schedule=asset`` (a list, or a condition): no runs on time, one run each time the
    condition holds over new asset events (the scheduler decides that against the store)."""

    periodic = False

    def __init__(self, condition: Any, tz: tzinfo) -> None:
        self.tz = tz
        self.asset_condition = condition
        self.description = f"assets: {condition.expression()}"

    def _key(self) -> tuple[Any, ...]:
        return (self.description,)

    def next_after(self, after: datetime) -> datetime | None:
        return None

    def previous_before(self, at: datetime) -> datetime | None:
        return None


class AssetOrTimeTimetable(Timetable):
    """:class:`~nbflow.assets.AssetOrTimeSchedule`: the times of ``inner``, and the asset condition too."""

    def __init__(self, inner: Timetable, condition: Any) -> None:
        self.inner = inner
        self.tz = inner.tz
        self.periodic = inner.periodic
        self.asset_condition = condition
        self.description = f"{inner.description} or assets: {condition.expression()}"

    @property
    def summary(self) -> str:
        return f"{self.inner.summary}, or when assets {self.asset_condition.expression()} are updated"

    def _key(self) -> tuple[Any, ...]:
        return (self.inner._key(), self.description)

    def next_after(self, after: datetime) -> datetime | None:
        return self.inner.next_after(after)

    def previous_before(self, at: datetime) -> datetime | None:
        return self.inner.previous_before(at)

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        return self.inner.iter_after(after)


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
    from nbflow.assets import AssetOrTimeSchedule, BaseAsset, as_condition, is_asset_schedule

    if isinstance(schedule, AssetOrTimeSchedule):
        return AssetOrTimeTimetable(make_timetable(schedule.timetable, tz, start_date, dag_id), schedule.assets)
    if is_asset_schedule(schedule):
        return AssetTriggeredTimetable(as_condition(schedule, dag_id), tz)
    if isinstance(schedule, (list, tuple)) and any(isinstance(v, BaseAsset) for v in schedule):
        as_condition(schedule, dag_id)  # raises, naming the item that is not an asset
    if isinstance(schedule, (list, tuple)):
        raise ScheduleError(schedule, "a list schedule lists assets: write schedule=[Asset('uri'), ...]", dag_id)
    if schedule is None or (isinstance(schedule, str) and schedule.strip() == "None"):
        return NullTimetable(tz)
    if isinstance(schedule, str):
        if schedule.strip().lower() == "@once":
            return OnceTimetable(tz, start_date)
        return CronTimetable(schedule, tz, dag_id)
    if isinstance(schedule, timedelta):
        if getattr(schedule, "months", 0) or getattr(schedule, "years", 0):
            raise ScheduleError(schedule, "a duration in months or years has no fixed length; use a cron "
                                "schedule such as '0 0 1 * *' (monthly) instead", dag_id)
        schedule = plain_datetime(schedule)
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


#: the most scheduled times one question lists (``dag.next_runs``, ``nbflow dags next -n``, the
#: REST API's ``?n=``): plenty to look ahead, and a huge count cannot keep a process busy for minutes
MAX_NEXT_RUNS = 1000


def check_run_count(n: Any, dag_id: str | None = None, option: str = "n") -> int:
    """``n`` if it is a whole number from 1 to :data:`MAX_NEXT_RUNS`, else an
    :class:`~nbflow.errors.InvalidRequestError` naming the DAG and the range."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_NEXT_RUNS:
        raise InvalidRequestError(
            f"{option}={n!r}: ask for a whole number of scheduled times from 1 to {MAX_NEXT_RUNS}", dag_id)
    return n


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
