"""``ExternalTaskSensor``: wait for a task (or a whole run) of another DAG; ``ExternalTaskMarker``:
the other way round, make clearing a task here clear a task of another DAG.

Tasks can depend only on tasks of their own DAG; across DAGs, a sensor watches the metadata store
for the other DAG's run at the matching logical date. This is the one model module that reads the
store, and it imports it inside ``poke`` so that defining a DAG never touches a database.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from nbflow.errors import (
    DagDefinitionError,
    InvalidOptionError,
    SkipTask,
    TaskFailedError,
    TaskNotFoundError,
)
from nbflow.operators.empty import EmptyOperator
from nbflow.sensors.base import BaseSensor, dag_id_of

_DAY = timedelta(days=1)


class ExternalTaskSensor(BaseSensor):
    """Done when ``external_task_id`` of ``external_dag_id`` (or, without a task id, that DAG's
    run) is in one of ``allowed_states`` for the run whose logical date is this run's logical date
    minus ``execution_delta``.

    When it is in one of ``failed_states`` the sensor fails at once rather than waiting out its
    timeout, since that run will not succeed by itself (with ``soft_fail=True`` it ends as skipped).
    A missing run means "not yet". ``execution_delta`` in whole days is counted on the DAG's
    calendar, so "the day before at 06:00" stays 06:00 across a DST change; any other delta is an
    exact duration.
    """

    def __init__(
        self,
        *,
        external_dag_id: str,
        external_task_id: str | None = None,
        allowed_states: Iterable[str] = ("success",),
        failed_states: Iterable[str] = ("failed", "upstream_failed"),
        execution_delta: timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        self.allowed_states = _state_names(allowed_states)
        self.failed_states = _state_names(failed_states)
        both = self.allowed_states & self.failed_states
        if both:
            raise DagDefinitionError(
                f"states {sorted(both)} are both allowed and failed; a state can be only one of them.",
                self.dag_id, self.task_id,
            )
        if execution_delta is not None and not isinstance(execution_delta, timedelta):
            raise DagDefinitionError(
                f"execution_delta={execution_delta!r} is not a datetime.timedelta.", self.dag_id, self.task_id,
            )
        self.execution_delta = execution_delta or timedelta(0)

    def waiting_for(self) -> str:
        what = f"task '{self.external_task_id}' of DAG" if self.external_task_id else "run of DAG"
        return f"{what} '{self.external_dag_id}' in {sorted(self.allowed_states)}"

    def external_logical_date(self, context: dict[str, Any]) -> datetime:
        """The logical date, in UTC, of the other DAG's run this sensor watches."""
        logical_date: datetime = context["logical_date"]
        delta = self.execution_delta
        if delta % _DAY == timedelta(0):
            return (logical_date - delta).astimezone(UTC)
        return logical_date.astimezone(UTC) - delta

    def poke(self, context: dict[str, Any]) -> bool:
        from nbflow.store import Store

        wanted = self.external_logical_date(context)
        store = Store.open()
        try:
            run = next(
                (r for r in store.list_runs(self.external_dag_id, limit=None)
                 if r["logical_date"] is not None and r["logical_date"] == wanted),
                None,
            )
            if run is None:
                self._log(f"no run of DAG '{self.external_dag_id}' at {wanted.isoformat()} yet")
                return False
            if self.external_task_id is None:
                state = run["state"]
            else:
                row = store.get_task_instance(self.external_dag_id, run["run_id"], self.external_task_id)
                if row is None:
                    known = [ti["task_id"] for ti in store.get_task_instances(run["id"])]
                    raise TaskNotFoundError(self.external_dag_id, self.external_task_id, known)
                state = row["state"]
        finally:
            store.close()
        state = str(state)
        if state in self.failed_states:
            self._fail(context, run["run_id"], state)
        return state in self.allowed_states

    def _fail(self, context: dict[str, Any], run_id: str, state: str) -> None:
        what = (f"task '{self.external_task_id}' of DAG '{self.external_dag_id}'" if self.external_task_id
                else f"DAG '{self.external_dag_id}'")
        message = (
            f"{what} is in state '{state}' in run '{run_id}', one of failed_states "
            f"{sorted(self.failed_states)}. Fix and clear that run, then clear this task."
        )
        if self.soft_fail:
            raise SkipTask(f"soft_fail: {message}")
        raise TaskFailedError(dag_id_of(self, context) or "", self.task_id, message)


def _state_names(states: Iterable[Any]) -> frozenset[str]:
    # States may be given as TaskState/RunState members (str enums) or as their names.
    if isinstance(states, str):
        states = [states]
    return frozenset(str(getattr(state, "value", state)) for state in states)


class ExternalTaskMarker(EmptyOperator):
    """Marks that ``external_task_id`` of ``external_dag_id`` depends on this task's run: clearing
    this task with its downstream (``nbflow tasks clear --downstream``, ``clear(..., downstream=True)``)
    also clears that task and its downstream in the other DAG's run at ``logical_date`` (a template,
    rendered with this run's context: this run's logical date unless told), and that run goes back to
    the queue. Markers in the other DAG are followed in turn, ``recursion_depth`` DAGs deep at most,
    which stops a cycle of markers. Running it does nothing.

    The pair is the other half of an :class:`ExternalTaskSensor`: the sensor makes the other DAG
    wait for this one, the marker makes a fix here reach it.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("external_dag_id", "external_task_id", "logical_date")

    def __init__(
        self,
        *,
        external_dag_id: str,
        external_task_id: str,
        logical_date: str | datetime = "{{ logical_date.isoformat() }}",
        recursion_depth: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (("external_dag_id", external_dag_id), ("external_task_id", external_task_id)):
            if not isinstance(value, str) or not value:
                raise InvalidOptionError(name, value, "give an id, as text", self.dag_id, self.task_id)
        if not isinstance(logical_date, (str, datetime)):
            raise InvalidOptionError("logical_date", logical_date, "give a datetime or a template of one",
                                     self.dag_id, self.task_id)
        if isinstance(recursion_depth, bool) or not isinstance(recursion_depth, int) or recursion_depth < 1:
            raise InvalidOptionError("recursion_depth", recursion_depth, "give a whole number, 1 or more",
                                     self.dag_id, self.task_id)
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        self.logical_date = logical_date
        self.recursion_depth = recursion_depth

    def target(self, dag: Any, run: dict[str, Any]) -> tuple[str, str, Any]:
        """(other DAG id, its task id, logical date as rendered) for this marker in ``run`` of ``dag``."""
        from nbflow.templates import build_context, render_value

        zone = dag.timezone
        context = build_context(
            dag=dag, task=self, run_id=run["run_id"], logical_date=run["logical_date"].astimezone(zone),
            data_interval_start=(run["data_interval_start"] or run["logical_date"]).astimezone(zone),
            data_interval_end=(run["data_interval_end"] or run["logical_date"]).astimezone(zone),
            conf=run.get("conf") or {}, ti=None,
        )
        return tuple(render_value(getattr(self, name), context, self, name)  # type: ignore[return-value]
                     for name in ("external_dag_id", "external_task_id", "logical_date"))
