"""Runs: one run now (``run_dag``), backfills, and what the store says of a run (``load_run``).

The work of a run is done by :class:`nbflow.engine.driver.RunDriver`; this module creates the run, picks
the executor and hands back the finished :class:`DagRun`.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from nbflow.engine.scheduler import DRIVEN_RUN_TYPES, Scheduler
from nbflow.engine.lifecycle import create_run, logical_date_of, run_id_for
from nbflow.engine.sync import source_kind, sync_dag
from nbflow.errors import NbflowError
from nbflow.states import RunState, TaskState

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.dagrun import DagRun
    from nbflow.executors import Executor
    from nbflow.settings import Settings
    from nbflow.store import Store

S = TaskState
__all__ = ["backfill", "load_run", "run_dag"]


# -- one run, now ----------------------------------------------------------------------------------


def _open_executor(executor: Any, settings: Settings) -> tuple[Executor, bool]:
    """The executor to use, and whether this call owns it (and must shut it down)."""
    from nbflow.executors import Executor, executor_for

    if isinstance(executor, Executor):
        return executor, False
    # the caller drives this run in the foreground (dag.test(), nbflow dags test): threads by default
    return executor_for(settings, None, executor), True


def run_dag(
    dag: DAG,
    *,
    logical_date: Any = None,
    conf: dict[str, Any] | None = None,
    executor: Any = None,
    run_type: str = "test",
    store: Store | None = None,
    settings: Settings | None = None,
    progress: bool | None = False,
) -> DagRun:
    """Create a run of ``dag`` and drive it to its end in this process; return the finished run.

    ``progress``: draw a bar of the tasks as they finish (``tqdm.auto``); None draws one when the
    DAG has many tasks (:data:`nbflow.engine.progress.MIN_TASKS`), as ``dag.test()`` does.
    """
    from nbflow.engine.progress import run_bar
    from nbflow.dagrun import check_conf
    from nbflow.params import run_params
    from nbflow.settings import get_settings
    from nbflow.store import Store

    dag.validate()
    settings = settings or get_settings()
    conf = check_conf(conf, dag.dag_id, max_bytes=settings.max_conf_bytes)
    run_params(dag.params, conf, dag.dag_id)  # a Param's value is checked before any run is made
    own_store = store is None
    store = store or Store.open(settings)
    try:
        sync_dag(store, dag, source_kind=source_kind(dag))
        new = create_run(store, dag, logical_date_of(dag, logical_date), run_type=run_type, conf=conf)
        assert new is not None  # only scheduled and backfill runs can exist already
        run_id, run_pk = new.run_id, new.run_pk
        pool, own_executor = _open_executor(executor, settings)
        bar = run_bar(dag.dag_id, len(dag.task_dict), progress)
        if bar is not None:
            bar.start(run_id)
        try:
            # A scheduler host for this one run, in this process: the same loop as every host.
            # Only its run type's own kind of run is picked up, and only this run; a test run is
            # driven by nobody else, so it is written without claims, while a manual run (which a
            # daemon could pick up too) is claimed like any.
            host = Scheduler(settings=settings, store=store, executor=pool, dags=[dag], kind="test",
                             create_runs=False, run_types=(run_type,), only_runs={run_pk},
                             claims=run_type in DRIVEN_RUN_TYPES)
            host.serve(exit_when_idle=True, grace=0.0)
        finally:
            if bar is not None:
                bar.close()
            if own_executor:
                pool.shutdown(wait=False)
        return load_run(store, dag.dag_id, run_id)
    finally:
        if own_store:
            store.close()


def load_run(store: Store, dag_id: str, run_id: str) -> DagRun:
    """A :class:`DagRun` as the store has it now."""
    from nbflow.dagrun import DagRun, TaskInstanceResult
    from nbflow.errors import RunNotFoundError
    from nbflow.outputs import load_value

    row = store.get_run(dag_id, run_id)
    if row is None:
        raise RunNotFoundError(dag_id, run_id)
    dag_row = store.get_dag(dag_id)
    tz = _zone_of(dag_row)
    order = {t["task_id"]: i for i, t in enumerate(((dag_row or {}).get("definition") or {}).get("tasks", []))}
    # a mapped task is one entry (its own state, its instances counted, the first failed one's
    # error); its instances' outputs become one list below
    from nbflow.store.queries import folded_task_instances

    task_rows = sorted(folded_task_instances(store, row["id"]), key=lambda ti: (order.get(ti["task_id"], len(order)), ti["id"]))
    for ti in task_rows:
        failed = next((i for i in ti.get("instances", ()) if i["state"] == "failed" and i["error"]), None)
        if failed is not None and not ti["error"]:
            ti["error"] = f"[{failed['map_index']}] {failed['error']}"
    instances = {
        ti["task_id"]: TaskInstanceResult(
            task_id=ti["task_id"], state=TaskState(ti["state"]), try_number=ti["try_number"] or 0,
            max_tries=ti["max_tries"] or 1, start_date=ti["start_date"], end_date=ti["end_date"],
            duration=ti["duration"], error=ti["error"], log_path=ti["log_path"], hostname=ti["hostname"],
            pid=ti["pid"], map_counts=ti.get("map_counts"),
        )
        for ti in task_rows
    }
    outputs: dict[str, Any] = {}
    mapped: dict[str, list[tuple[int, Any]]] = {}
    for out in store.get_outputs(row["id"]).values():
        found, value = load_value(out)  # run.outputs is the Python values: this unpickles
        if found and out["map_index"] >= 0:
            mapped.setdefault(out["task_id"], []).append((out["map_index"], value))
        elif found:
            outputs[out["task_id"]] = value
    for task_id, values in mapped.items():
        outputs[task_id] = [value for _, value in sorted(values, key=lambda pair: pair[0])]
    local = (lambda d: d.astimezone(tz) if d is not None else None)
    return DagRun(
        dag_id=dag_id, run_id=run_id, run_type=row["run_type"], state=RunState(row["state"]),
        logical_date=local(row["logical_date"]), data_interval_start=local(row["data_interval_start"]),
        data_interval_end=local(row["data_interval_end"]), start_date=local(row["start_date"]),
        end_date=local(row["end_date"]), conf=row["conf"] or {}, task_instances=instances, outputs=outputs,
    )


def _zone_of(dag_row: dict[str, Any] | None) -> Any:
    from nbflow.timetables import resolve_timezone

    try:
        return resolve_timezone(dag_row["timezone"] if dag_row and dag_row.get("timezone") else None)
    except NbflowError:
        return timezone.utc



# -- backfill ---------------------------------------------------------------------------------------


def _is_whole_day(value: Any) -> bool:
    from datetime import date

    if isinstance(value, datetime):
        return False
    return isinstance(value, date) or (isinstance(value, str) and len(value.strip()) == 10)

REPROCESS = ("none", "failed", "all")


def backfill(
    dag: DAG,
    start: Any,
    end: Any,
    *,
    reprocess: str = "none",
    executor: Any = None,
    settings: Settings | None = None,
    on_progress: Any = None,
    progress: bool = False,
) -> list[DagRun]:
    """Run every scheduled time of ``dag`` in [start, end], both ends included.

    Runs that already exist at a logical date are kept as they are (``reprocess="none"``), run again
    when they failed (``"failed"``: their unsuccessful tasks are cleared) or always (``"all"``). A
    run left unfinished by an interrupted backfill is resumed, not redone: its finished tasks stay
    finished. Up to ``max_active_runs`` runs go at once. ``on_progress(done, total, run_id)`` is
    called as runs end; ``progress=True`` (as ``dag.backfill()`` does) draws a bar of the runs
    with ``tqdm.auto`` instead: a widget in a notebook, a line in a terminal.
    """
    from nbflow.errors import InvalidRequestError
    from nbflow.settings import get_settings
    from nbflow.store import Store
    from nbflow.timetables import parse_date, scheduled_times

    if reprocess not in REPROCESS:
        raise InvalidRequestError(f"reprocess={reprocess!r} is not one of {', '.join(REPROCESS)}", dag.dag_id)
    dag.validate()
    settings = settings or get_settings()
    first = parse_date(start, dag.timezone, field="start", dag_id=dag.dag_id)
    last = parse_date(end, dag.timezone, field="end", dag_id=dag.dag_id)
    if _is_whole_day(end):  # "through 2024-01-31" includes that day's runs
        last = last + timedelta(days=1) - timedelta(microseconds=1)
    if last < first:
        raise InvalidRequestError(f"the backfill ends ({last.isoformat()}) before it starts ({first.isoformat()})", dag.dag_id)
    times = scheduled_times(dag.timetable, first, last, start_date=dag.start_date, end_date=dag.end_date)
    bar = None
    if progress and on_progress is None:
        from nbflow.engine.progress import backfill_bar

        on_progress = bar = backfill_bar(dag.dag_id)
    store = Store.open(settings)
    try:
        sync_dag(store, dag, source_kind=source_kind(dag))
        existing = {
            row["logical_date"].astimezone(timezone.utc): row
            for row in sorted(store.list_runs(dag.dag_id, limit=None), key=lambda r: r["id"])
            if row["logical_date"] is not None and row["run_type"] != "test"
        }
        chosen: list[tuple[datetime, str]] = []
        for when in times:
            row = existing.get(when.astimezone(timezone.utc))
            if row is None:
                create_run(store, dag, when, run_type="backfill")  # None: made meanwhile, the same run
                chosen.append((when, run_id_for("backfill", when)))
                continue
            state = row["state"]
            redo = reprocess == "all" or (reprocess == "failed" and state == "failed")
            if redo:
                keep = {"success"} if reprocess == "failed" else set()
                clear = {ti["ti_key"]: dag.task_dict[ti["task_id"]].retries
                         for ti in store.get_task_instances(row["id"])
                         if ti["state"] not in keep and ti["task_id"] in dag.task_dict}
                store.clear_task_instances(row["id"], clear)
            chosen.append((when, row["run_id"]))
        pks = {store.get_run(dag.dag_id, run_id)["id"] for _, run_id in chosen}
        total = len(chosen)
        already = sum(1 for _, rid in chosen if store.get_run(dag.dag_id, rid)["state"] in ("success", "failed"))
        done = [already]

        def progress(run_id: str) -> None:
            done[0] += 1
            if on_progress is not None:
                on_progress(done[0], total, run_id)

        if on_progress is not None and already:
            on_progress(already, total, None)
        scheduler = Scheduler(settings=settings, store=store, executor=executor, dags=[dag], kind="backfill",
                              create_runs=False, run_types=("scheduled", "manual", "backfill"), only_runs=pks,
                              on_run_finished=progress)
        scheduler.serve(exit_when_idle=True)
        return [load_run(store, dag.dag_id, run_id) for _, run_id in chosen]
    finally:
        if bar is not None:
            bar.close()
        store.close()
