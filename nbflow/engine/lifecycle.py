"""Creating a run: its id, its data interval and its task rows, in one transaction.

Every way a run starts (``dag.test()``, a backfill, a manual trigger, a host's schedule) creates it
here, so run ids are built one way and a run's task rows are never half written. A run id names
its kind and logical date (``scheduled__2024-06-03T07:00:00+00:00``): scheduled and backfill runs
are idempotent by id (two hosts creating the same scheduled run make one), while test and manual
runs of the same instant get ``__2``, ``__3`` ... so that each trigger makes its own run.
Asset-triggered runs (``asset_triggered__<time of the newest triggering event>``) are numbered the
same way, and are made at most once per set of events: the run claims its events in the store in
its own transaction, so a host that finds them taken creates nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from nbflow.states import RunState, TaskState

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.store import Store

#: run types whose id is the logical date alone: a second creation is the same run, not a new one
IDEMPOTENT_RUN_TYPES = frozenset({"scheduled", "backfill"})


@dataclass(frozen=True)
class NewRun:
    """A run just created: its id and the store's key for it."""

    run_id: str
    run_pk: int


def run_id_for(run_type: str, logical_date: datetime, attempt: int = 1) -> str:
    """The one way run ids are made: ``<type>__<logical date in UTC>``, then ``__<n>`` from the second."""
    base = f"{run_type}__{logical_date.astimezone(timezone.utc).isoformat(timespec='seconds')}"
    return base if attempt <= 1 else f"{base}__{attempt}"


def logical_date_of(dag: DAG, value: Any = None) -> datetime:
    """``value`` read in the DAG's zone (any form ``start_date`` takes), or now to the second."""
    from nbflow.timetables import parse_date

    if value is not None:
        return parse_date(value, dag.timezone, field="logical_date", dag_id=dag.dag_id)
    return datetime.now(timezone.utc).replace(microsecond=0).astimezone(dag.timezone)


def task_rows(dag: DAG, logical_date: datetime | None = None, run_type: str = "manual") -> list[dict[str, Any]]:
    """The task instance rows a new run of ``dag`` starts with. A task whose own ``start_date`` is
    after the run's logical date, or whose ``end_date`` is before it, starts ``skipped``: it is not
    part of that run (Airflow makes no instance of it there), and its downstream goes by its
    trigger rule. Backfills take every task, as Airflow's do."""
    if run_type == "backfill":
        logical_date = None
    return [
        {"task_id": t.task_id, "state": (TaskState.SKIPPED if _outside(t, logical_date) else TaskState.NONE).value,
         "max_tries": t.retries + 1, "operator": type(t).__name__, "pool": t.pool, "priority_weight": t.priority_weight,
         **({"error": f"skipped: the task's window ({_window(t)}) does not hold this run's logical date"}
            if _outside(t, logical_date) else {})}
        for t in dag.task_dict.values()
    ]


def _outside(task: Any, logical_date: datetime | None) -> bool:
    if logical_date is None:
        return False
    return bool((task.start_date is not None and logical_date < task.start_date)
                or (task.end_date is not None and logical_date > task.end_date))


def _window(task: Any) -> str:
    start = task.start_date.isoformat() if task.start_date is not None else "..."
    end = task.end_date.isoformat() if task.end_date is not None else "..."
    return f"start_date {start}, end_date {end}"


def create_run(
    store: Store, dag: DAG, logical_date: datetime, *, run_type: str, conf: dict[str, Any] | None = None,
    run_id: str | None = None, consume: Sequence[int] = (),
) -> NewRun | None:
    """Create a queued run of ``dag`` at ``logical_date`` with all its task rows.

    For scheduled and backfill runs, None when that run exists already (another host, or an earlier
    backfill, made it). Other kinds always make a new run, numbering its id past the ones taken; the
    store's unique (dag, run id) decides between two creators racing for one number. A ``run_id``
    given by the caller (a ``TriggerDagRunOperator``'s ``trigger_run_id``) is used as is: None when
    the DAG has a run of that id already. With ``consume`` (the asset events an asset-triggered
    run takes), None when another host took them first.
    """
    start, end = dag.timetable.data_interval(logical_date)
    rows = task_rows(dag, logical_date, run_type)
    attempt = 1
    while True:
        this_id = run_id if run_id is not None else run_id_for(run_type, logical_date, attempt)
        run_pk = store.create_run(
            dag_id=dag.dag_id, run_id=this_id, run_type=run_type, logical_date=logical_date,
            data_interval_start=start, data_interval_end=end, conf=dict(conf or {}),
            state=RunState.QUEUED.value, task_rows=rows, if_absent=True, consume=consume,
        )
        if run_pk is not None:
            return NewRun(this_id, run_pk)
        if run_id is not None or run_type in IDEMPOTENT_RUN_TYPES:
            return None
        if consume and store.get_run(dag.dag_id, this_id) is None:
            return None  # the id was free: the events were taken, by another host's run
        attempt += 1
