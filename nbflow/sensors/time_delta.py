"""Sensors that wait for a time: ``TimeDeltaSensor`` (relative to the data interval) and
``TimeSensor`` (a wall-clock time in the DAG's zone)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from nbflow.errors import DagDefinitionError
from nbflow.sensors.base import BaseSensor


class TimeDeltaSensor(BaseSensor):
    """Done once now is at least ``data_interval_end + delta``.

    Measured from the end of the run's data interval, not from when the task starts, so a run that
    is late (a backfill, a catch-up) does not wait again for time that has already passed.
    """

    def __init__(self, *, delta: timedelta | float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(delta, (int, float)) and not isinstance(delta, bool):
            delta = timedelta(seconds=delta)
        if not isinstance(delta, timedelta):
            raise DagDefinitionError(
                f"delta={delta!r} is not a duration. Give a datetime.timedelta or seconds.", self.dag_id, self.task_id,
            )
        self.delta = delta

    def target(self, context: dict[str, Any]) -> datetime:
        """The instant this sensor waits for, in UTC."""
        return context["data_interval_end"].astimezone(UTC) + self.delta

    def waiting_for(self) -> str:
        return f"data_interval_end + {self.delta}"

    def poke(self, context: dict[str, Any]) -> bool:
        return datetime.now(UTC) >= self.target(context)


class TimeSensor(BaseSensor):
    """Done once the wall clock passes ``target_time`` on the day the data interval ends.

    The day and the clock are those of the DAG's time zone (the zone of ``logical_date``), so
    ``TimeSensor(target_time=time(9))`` in a DAG of ``Asia/Seoul`` waits for 09:00 in Seoul,
    whatever the zone of the machine. A ``target_time`` with its own ``tzinfo`` uses that zone.
    """

    def __init__(self, *, target_time: time, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(target_time, time):
            raise DagDefinitionError(
                f"target_time={target_time!r} is not a datetime.time; write e.g. datetime.time(9, 30).",
                self.dag_id, self.task_id,
            )
        self.target_time = target_time

    def target(self, context: dict[str, Any]) -> datetime:
        """The instant this sensor waits for, as an aware datetime."""
        zone = self.target_time.tzinfo or context["logical_date"].tzinfo or UTC
        day = context["data_interval_end"].astimezone(zone).date()
        return datetime.combine(day, self.target_time.replace(tzinfo=None), tzinfo=zone)

    def waiting_for(self) -> str:
        return f"time {self.target_time.isoformat()}"

    def poke(self, context: dict[str, Any]) -> bool:
        return datetime.now(UTC) >= self.target(context)
