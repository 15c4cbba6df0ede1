"""``BaseSensor``: a task that waits for something to be true, then succeeds.

A sensor asks one question over and over (``poke``). How it waits between questions is its
``mode``:

- ``"poke"`` keeps its worker slot and sleeps between pokes: cheap for short waits.
- ``"reschedule"`` pokes once per attempt and gives the slot back (``RescheduleTask``) until the
  next poke is due: the right choice for waits of minutes or hours, which would otherwise hold a
  slot that other tasks could use. Its timeout counts from the first poke of the try, which the run
  driver keeps across reschedules (``ti.first_attempt_at``).

``deferrable=True`` asks for the same thing as Airflow's deferrable sensors: that the wait hold no
worker slot. nbflow has no separate triggerer, so it means ``mode="reschedule"``.

Either way the sensor gives up after its own ``timeout`` (7 days unless told) with
:class:`~nbflow.errors.SensorTimeoutError`, or ends as skipped when ``soft_fail=True``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from nbflow.errors import (
    DagDefinitionError,
    InvalidOptionError,
    RescheduleTask,
    SensorTimeoutError,
    SkipTask,
)
from nbflow.operators.base import BaseOperator, duration_seconds

MODES = ("poke", "reschedule")
DEFAULT_POKE_INTERVAL = 60.0
DEFAULT_TIMEOUT = timedelta(days=7).total_seconds()


@dataclass(frozen=True)
class PokeReturnValue:
    """What ``poke`` may return instead of a bool, to hand a value to downstream tasks.

    When ``is_done`` is true the sensor succeeds and ``xcom_value`` becomes its output; a plain
    truthy return gives no output, since "it exists" is rarely worth storing.
    """

    is_done: bool
    xcom_value: Any = None

    def __bool__(self) -> bool:
        return bool(self.is_done)


class BaseSensor(BaseOperator):
    """Waits until :meth:`poke` says done. Subclass it and implement ``poke(context) -> bool``.

    Options: ``poke_interval`` (seconds or timedelta between pokes, default 60), ``timeout``
    (seconds or timedelta the sensor may wait in all, default 7 days; for the limit on one
    execution use ``execution_timeout``), ``soft_fail`` (time out as skipped instead of failed),
    ``mode`` (``"poke"`` or ``"reschedule"``), ``exponential_backoff`` (double the wait after each
    poke), ``max_wait`` (the cap on that doubled wait) and ``deferrable`` (free the worker slot between
    pokes: reschedule mode).
    """

    kind: ClassVar[str] = "sensor"

    def __init__(
        self,
        *,
        poke_interval: float | timedelta = DEFAULT_POKE_INTERVAL,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        soft_fail: bool = False,
        mode: str | None = None,
        exponential_backoff: bool = False,
        max_wait: float | timedelta | None = None,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        # ``timeout`` is taken here and never passed on: BaseOperator reads it as an alias of
        # execution_timeout, while for a sensor it is how long to keep waiting.
        super().__init__(**kwargs)
        # A poke interval (or a backoff cap) of 0 would poke in a busy loop; a timeout of 0 means
        # "poke once", which is a fair thing to ask.
        self.poke_interval = self._seconds_option("poke_interval", poke_interval, positive=True)
        self.timeout = self._seconds_option("timeout", timeout, positive=False)
        self.max_wait = None if max_wait is None else self._seconds_option("max_wait", max_wait, positive=True)
        if not isinstance(deferrable, bool):
            raise InvalidOptionError("deferrable", deferrable, "give True or False", self.dag_id, self.task_id)
        if deferrable and mode == "poke":
            raise DagDefinitionError(
                "deferrable=True frees the worker slot between pokes, which mode='poke' keeps; "
                "leave mode out (deferrable means mode='reschedule').",
                self.dag_id, self.task_id,
            )
        if mode is None:
            mode = "reschedule" if deferrable else "poke"
        if mode not in MODES:
            raise DagDefinitionError(
                f"mode={mode!r} is not a sensor mode. Use one of: "
                + ", ".join(repr(m) for m in MODES)
                + " ('reschedule' gives the worker slot back between pokes).",
                self.dag_id, self.task_id,
            )
        self.mode = mode
        self.deferrable = deferrable
        self.soft_fail = bool(soft_fail)
        self.exponential_backoff = bool(exponential_backoff)

    def _seconds_option(self, name: str, value: Any, *, positive: bool) -> float:
        seconds = duration_seconds(value)
        if seconds is None or seconds < 0 or (positive and seconds == 0):
            bound = "more than 0" if positive else "0 or more"
            raise InvalidOptionError(
                name, value, f"give {bound} seconds (a finite number or a datetime.timedelta)", self.dag_id, self.task_id,
            )
        return seconds

    # -- what subclasses implement ------------------------------------------------------------------

    def poke(self, context: dict[str, Any]) -> bool | PokeReturnValue:
        """Whether the condition holds now. Called once per poke; must not block for long."""
        raise NotImplementedError(f"{type(self).__name__} must implement poke(context)")

    def waiting_for(self) -> str:
        """A short phrase naming what the sensor waits for, used in logs and the timeout error."""
        return ""

    # -- running ------------------------------------------------------------------------------------

    def execute(self, context: dict[str, Any]) -> Any:
        if self.mode == "reschedule":
            return self._execute_once(context)
        return self._execute_poking(context)

    def _execute_poking(self, context: dict[str, Any]) -> Any:
        """Poke, sleep, repeat, in this slot; a last poke falls on the deadline itself."""
        deadline = time.monotonic() + self.timeout
        pokes = 0
        while True:
            done, value = _outcome(self.poke(context))
            pokes += 1
            if done:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._give_up(context)
            wait = min(self._interval_after(pokes), remaining)
            self._log(f"not yet after poke {pokes}; next poke in {wait:.3g} s")
            time.sleep(wait)

    def _execute_once(self, context: dict[str, Any]) -> Any:
        """Poke once; if not done, ask to run again later, unless the timeout has passed."""
        done, value = _outcome(self.poke(context))
        if done:
            return value
        now = datetime.now(UTC)
        first = getattr(context.get("ti"), "first_attempt_at", None) or now
        elapsed = max(0.0, (now - first).total_seconds())
        remaining = self.timeout - elapsed
        if remaining <= 0:
            return self._give_up(context)
        # Doubling from the first poke makes the next wait equal to the time waited so far plus one
        # interval, so the backoff needs no poke counter kept across reschedules.
        wait = elapsed + self.poke_interval if self.exponential_backoff else self.poke_interval
        if self.max_wait is not None and self.exponential_backoff:
            wait = min(wait, self.max_wait)
        wait = min(wait, remaining)
        self._log(f"not yet after {elapsed:.3g} s; giving the slot back for {wait:.3g} s")
        raise RescheduleTask(now + timedelta(seconds=wait))

    def _interval_after(self, pokes: int) -> float:
        """Seconds to sleep after the ``pokes``-th poke in poke mode."""
        if not self.exponential_backoff:
            return self.poke_interval
        wait = self.poke_interval * (2 ** min(pokes - 1, 60))
        return min(wait, self.max_wait) if self.max_wait is not None else wait

    def _give_up(self, context: dict[str, Any]) -> Any:
        error = SensorTimeoutError(dag_id_of(self, context), self.task_id, self.timeout, self.waiting_for())
        if self.soft_fail:
            raise SkipTask(f"soft_fail: {error}")
        raise error

    def _log(self, message: str) -> None:
        # The runner captures a task's standard output into its log file.
        what = self.waiting_for()
        print(f"sensor {self.task_id}{f' ({what})' if what else ''}: {message}", flush=True)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(mode=self.mode, poke_interval=self.poke_interval, sensor_timeout=self.timeout)
        return info


def dag_id_of(task: BaseOperator, context: dict[str, Any]) -> str | None:
    """The id of the running task's DAG, for messages.

    A task runs as a copy that travels without its DAG (see ``BaseOperator.__getstate__``), so the
    id comes from the context, which carries the DAG (or what a worker process knows of it).
    """
    return getattr(context.get("dag"), "dag_id", None) or getattr(context.get("ti"), "dag_id", None) or task.dag_id


def _outcome(result: Any) -> tuple[bool, Any]:
    """(done, output) from what ``poke`` returned."""
    if isinstance(result, PokeReturnValue):
        return bool(result.is_done), result.xcom_value if result.is_done else None
    return bool(result), None
