"""``DateTimeSensor``: wait until a given date and time.

Where ``TimeSensor`` waits for a clock time on the run's day, this waits for one instant, which may
be computed per run with a template: ``target_time="{{ data_interval_end + macros.timedelta(hours=2) }}"``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Sequence

from nbflow.errors import InvalidOptionError, TaskFailedError
from nbflow.sensors.base import BaseSensor

_ALLOWED = "give a datetime.datetime or an ISO 8601 string (a Jinja template may compute it)"


class DateTimeSensor(BaseSensor):
    """Done once now is at or past ``target_time``.

    ``target_time`` is a ``datetime`` or an ISO 8601 string, rendered as a template first. A
    time without a zone is read in the DAG's time zone, like every time nbflow is given.
    """

    template_fields: ClassVar[Sequence[str]] = ("target_time",)

    def __init__(self, *, target_time: str | datetime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(target_time, str):
            if "{{" not in target_time and "{%" not in target_time:
                try:
                    datetime.fromisoformat(target_time.strip())
                except ValueError:
                    raise InvalidOptionError("target_time", target_time, _ALLOWED, self.dag_id, self.task_id) from None
        elif not isinstance(target_time, datetime):
            raise InvalidOptionError("target_time", target_time, _ALLOWED, self.dag_id, self.task_id)
        self.target_time = target_time

    def target(self, context: dict[str, Any]) -> datetime:
        """The instant this sensor waits for, aware (in the DAG's zone when none is given)."""
        value = self.target_time
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                raise TaskFailedError(
                    self.dag_id or "", self.task_id,
                    f"target_time rendered to {value!r}, which is not an ISO 8601 date and time; fix the template",
                ) from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=context["logical_date"].tzinfo or UTC)
        return value

    def waiting_for(self) -> str:
        return f"{self.target_time}"

    def poke(self, context: dict[str, Any]) -> bool:
        return datetime.now(UTC) >= self.target(context)
