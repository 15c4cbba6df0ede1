"""Branching on the calendar: ``BranchDayOfWeekOperator`` and ``BranchDateTimeOperator``.

Both read the clock in the DAG's time zone (the zone of the run's ``logical_date``), never the
machine's: "on Mondays" or "between 09:00 and 17:00" mean the DAG's Mondays and office hours. With
``use_task_logical_date=True`` they judge the run's logical date instead of now, so a backfill of
last month branches as those days would have.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any, ClassVar, Iterable

from nbflow.errors import DagDefinitionError, InvalidOptionError
from nbflow.operators.branch import BaseBranchOperator


class WeekDay(enum.IntEnum):
    """The days of the week, numbered as ``datetime.isoweekday()`` numbers them (Monday is 1)."""

    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7

    @classmethod
    def get_weekday_number(cls, week_day_str: str) -> int:
        """The number of a day given by its English name in any case (``"monday"``, ``"Monday"``)."""
        try:
            return cls[week_day_str.strip().upper()].value
        except (KeyError, AttributeError):
            names = ", ".join(day.name.capitalize() for day in cls)
            raise ValueError(f"{week_day_str!r} is not a day of the week; use one of {names}") from None

    @classmethod
    def convert(cls, day: str | WeekDay | Iterable[str | WeekDay]) -> set[int]:
        """The day numbers meant by a day, its name, or a collection of either."""
        if isinstance(day, (str, WeekDay)):
            day = [day]
        numbers: set[int] = set()
        for item in day:
            if isinstance(item, WeekDay):
                numbers.add(item.value)
            elif isinstance(item, str):
                numbers.add(cls.get_weekday_number(item))
            else:
                raise ValueError(f"{item!r} is not a day of the week; give a WeekDay or a day's name")
        return numbers


def _follow(task_id: str, name: str, value: Any) -> list[str]:
    """A follow list as a list of task ids: a single id, a list of ids, or an empty list (skip all)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    raise InvalidOptionError(name, value, "give a task id or a list of task ids (an empty list skips every direct downstream task)",
                             None, task_id)


def _zone(context: dict[str, Any]) -> tzinfo:
    """The DAG's time zone: the run's logical date is aware in it, wherever the task runs."""
    return context["logical_date"].tzinfo or UTC


class BranchDayOfWeekOperator(BaseBranchOperator):
    """Follows ``follow_task_ids_if_true`` when today (in the DAG's zone) is one of ``week_day``,
    else ``follow_task_ids_if_false``; the other direct downstream tasks are skipped.

    ``week_day`` is a :class:`WeekDay`, a day's name (``"Saturday"``) or a collection of either
    (``{WeekDay.SATURDAY, WeekDay.SUNDAY}``).
    """

    def __init__(
        self,
        *,
        follow_task_ids_if_true: str | Iterable[str],
        follow_task_ids_if_false: str | Iterable[str],
        week_day: str | WeekDay | Iterable[str | WeekDay],
        use_task_logical_date: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.follow_task_ids_if_true = _follow(self.task_id, "follow_task_ids_if_true", follow_task_ids_if_true)
        self.follow_task_ids_if_false = _follow(self.task_id, "follow_task_ids_if_false", follow_task_ids_if_false)
        try:
            self.week_day_numbers = WeekDay.convert(week_day)
        except (ValueError, TypeError) as exc:
            raise DagDefinitionError(f"week_day={week_day!r} is not usable: {exc}", self.dag_id, self.task_id) from None
        if not self.week_day_numbers:
            raise InvalidOptionError("week_day", week_day, "give at least one day", self.dag_id, self.task_id)
        self.week_day = week_day
        self.use_task_logical_date = bool(use_task_logical_date)

    def choose_branch(self, context: dict[str, Any]) -> list[str]:
        zone = _zone(context)
        when = context["logical_date"] if self.use_task_logical_date else datetime.now(UTC)
        today = when.astimezone(zone).isoweekday()
        return self.follow_task_ids_if_true if today in self.week_day_numbers else self.follow_task_ids_if_false


class BranchDateTimeOperator(BaseBranchOperator):
    """Follows ``follow_task_ids_if_true`` when now (or the logical date) lies in
    ``[target_lower, target_upper]``, else ``follow_task_ids_if_false``.

    Each bound is a ``datetime`` or a ``time``, or None for "no bound on that side" (not both). A
    naive bound is read in the DAG's zone. ``time`` bounds are put on the day being judged; when the
    upper time is before the lower one (``22:00`` to ``02:00``), the window crosses midnight and
    ends the next day. As in Airflow, that window starts on the judged day, so 01:00 is outside
    ``[22:00 today, 02:00 tomorrow]``: put a second branch on ``[00:00, 02:00]`` to catch it.
    """

    def __init__(
        self,
        *,
        target_lower: datetime | time | None,
        target_upper: datetime | time | None,
        follow_task_ids_if_true: str | Iterable[str],
        follow_task_ids_if_false: str | Iterable[str],
        use_task_logical_date: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, bound in (("target_lower", target_lower), ("target_upper", target_upper)):
            if bound is not None and not isinstance(bound, (datetime, time)):
                raise InvalidOptionError(name, bound, "give a datetime.datetime, a datetime.time or None", self.dag_id, self.task_id)
        if target_lower is None and target_upper is None:
            raise DagDefinitionError(
                "target_lower and target_upper are both None; give at least one bound (None leaves that side open)",
                self.dag_id, self.task_id,
            )
        self.target_lower = target_lower
        self.target_upper = target_upper
        self.follow_task_ids_if_true = _follow(self.task_id, "follow_task_ids_if_true", follow_task_ids_if_true)
        self.follow_task_ids_if_false = _follow(self.task_id, "follow_task_ids_if_false", follow_task_ids_if_false)
        self.use_task_logical_date = bool(use_task_logical_date)

    def window(self, when: datetime) -> tuple[datetime | None, datetime | None]:
        """The bounds as aware datetimes for judging ``when`` (aware, in the DAG's zone)."""
        zone = when.tzinfo or UTC

        def as_datetime(bound: datetime | time | None) -> datetime | None:
            if bound is None:
                return None
            if isinstance(bound, datetime):
                return bound if bound.tzinfo is not None else bound.replace(tzinfo=zone)
            day = datetime.combine(when.date(), bound.replace(tzinfo=None))
            return day.replace(tzinfo=bound.tzinfo or zone)

        lower, upper = as_datetime(self.target_lower), as_datetime(self.target_upper)
        both_dates = isinstance(self.target_lower, datetime) and isinstance(self.target_upper, datetime)
        if lower is not None and upper is not None and not both_dates and upper < lower:
            upper = upper + timedelta(days=1)
        return lower, upper

    def choose_branch(self, context: dict[str, Any]) -> list[str]:
        zone = _zone(context)
        when = (context["logical_date"] if self.use_task_logical_date else datetime.now(UTC)).astimezone(zone)
        lower, upper = self.window(when)
        inside = (lower is None or lower <= when) and (upper is None or when <= upper)
        return self.follow_task_ids_if_true if inside else self.follow_task_ids_if_false
