"""Controls: what a person does to DAGs and runs by hand, from the command line or a notebook.

Pause and unpause a DAG, clear task instances so they run again, mark them success or failed,
queue a manual run, define pools. Each control is one change to the store and returns plain data;
none runs a task. Scheduler hosts see the change at their next look at the store
(``poll_interval``), which is what makes a control work the same whichever host, if any, is running.

A task instance that a host holds right now (``queued`` or ``running``) is never changed by a
control: the host's outcome is already on its way and would overwrite it. Such task instances are
reported in :attr:`Changes.skipped` instead.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from nbflow.errors import InvalidRequestError, NotFoundError, RunNotFoundError
from nbflow.mapping import split_key
from nbflow.planner import descendants, run_outcome, setups_and_teardowns
from nbflow.states import RunState, TaskState, check_run_transition, check_task_transition

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.settings import Settings
    from nbflow.store import Store

__all__ = [
    "Changes", "clear", "delete_pool", "find_dag", "list_pools", "live_schedulers", "mark", "pause", "scheduler_alive",
    "set_pool", "trigger", "unpause",
]

#: states a task instance can be marked with by hand
MARKABLE = ("success", "failed")
#: task instance states a scheduler host holds: controls leave them alone
HELD = ("queued", "running")
#: what ``only_failed`` clears
FAILED_STATES = ("failed", "upstream_failed")


class Changes(list):  # type: ignore[type-arg]
    """The ``(run_id, task_id)`` pairs a control changed (or, with ``dry_run``, would change).

    ``skipped`` lists the pairs left alone because a scheduler host holds them right now;
    ``run_states`` maps each touched run id to the run's state afterwards; ``other_dags``, the
    changes a clear made in other DAGs through ``ExternalTaskMarker``s, by DAG id.
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(items)
        self.skipped: list[tuple[str, str]] = []
        self.run_states: dict[str, str] = {}
        self.other_dags: dict[str, Changes] = {}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _opened(store: Store | None) -> Iterator[Store]:
    """The given store, or the current settings' store for the length of one control."""
    if store is not None:
        yield store
        return
    from nbflow.store import Store

    opened = Store.open()
    try:
        yield opened
    finally:
        opened.close()


# -- pause ------------------------------------------------------------------------------------------


def pause(dag_id: str, *, store: Store | None = None) -> None:
    """Stop new runs of ``dag_id`` from being created or started, without touching runs in progress:
    a running run finishes, so pausing is safe in the middle of the day. Raises
    :class:`~nbflow.errors.DagNotFoundError` for a DAG the store does not know, so a typo is not a
    silent no-op."""
    with _opened(store) as s:
        s.set_paused(dag_id, True)


def unpause(dag_id: str, *, store: Store | None = None) -> None:
    """Let the scheduler create and start runs of ``dag_id`` again. With ``catchup``, the runs it
    missed while paused are created then."""
    with _opened(store) as s:
        s.set_paused(dag_id, False)


# -- clear ------------------------------------------------------------------------------------------


def _whole_day(value: Any) -> bool:
    if isinstance(value, datetime):
        return False
    return isinstance(value, date) or (isinstance(value, str) and len(value.strip()) == 10)


def _pick_runs(dag: DAG, store: Store, start: Any, end: Any, run_id: str | None) -> list[dict[str, Any]]:
    """One run by id, or the runs whose logical date is in [start, end] (either end open)."""
    from nbflow.timetables import parse_date

    if run_id is not None:
        if start is not None or end is not None:
            raise InvalidRequestError("give either a run id or a date range, not both", dag.dag_id)
        row = store.get_run(dag.dag_id, run_id)
        if row is None:
            raise RunNotFoundError(dag.dag_id, run_id)
        return [row]
    low = parse_date(start, dag.timezone, field="start", dag_id=dag.dag_id) if start is not None else None
    high = parse_date(end, dag.timezone, field="end", dag_id=dag.dag_id) if end is not None else None
    if high is not None and _whole_day(end):  # "through 2024-01-31" includes that day's runs
        high = high + timedelta(days=1) - timedelta(microseconds=1)
    if low is not None and high is not None and high < low:
        raise InvalidRequestError(f"the range ends ({high.isoformat()}) before it starts ({low.isoformat()})", dag.dag_id)
    # Test runs belong to the process that ran them; no scheduler would pick them up again.
    rows = [
        row for row in store.list_runs(dag.dag_id, limit=None)
        if row["run_type"] != "test" and row["logical_date"] is not None
        and (low is None or row["logical_date"] >= low) and (high is None or row["logical_date"] <= high)
    ]
    return sorted(rows, key=lambda row: (row["logical_date"], row["id"]))


def _chosen_tasks(
    dag: DAG, task_ids: Iterable[str] | None, downstream: bool, with_setups: bool = False,
) -> list[str]:
    """The named tasks (default all), with their descendants when ``downstream`` and, with
    ``with_setups``, the setups and teardowns each needs (``setups_and_teardowns``), in dependency
    order."""
    named = list(task_ids) if task_ids else list(dag.task_dict)
    for task_id in named:
        dag.get_task(task_id)  # an unknown task id raises, naming the DAG's tasks
    chosen = set(named)
    if downstream:
        for task_id in named:
            chosen.update(descendants(dag, task_id))
    if with_setups:
        for task_id in list(chosen):
            chosen.update(setups_and_teardowns(dag, task_id))
    return [task_id for task_id in dag.topological_order() if task_id in chosen]


def clear(
    dag: DAG,
    *,
    start: Any = None,
    end: Any = None,
    run_id: str | None = None,
    task_ids: Iterable[str] | None = None,
    downstream: bool = False,
    only_failed: bool = False,
    dry_run: bool = False,
    store: Store | None = None,
) -> Changes:
    """Make task instances run again: after a bug fix, or when the data they read was late or wrong.

    Picks the run ``run_id``, or every run whose logical date is in [``start``, ``end``] (a date
    given as ``YYYY-MM-DD`` means the whole day; an end left out is open; test runs are left out),
    and in each the tasks ``task_ids`` (default all), with their descendants when ``downstream``
    (what used the bad data must be redone too) and the setups and teardowns they need (as in
    Airflow: the resource is made again for the work and released after it), only those that
    failed or are upstream-failed when ``only_failed``. Each goes back to ``none`` with fresh
    retries, its output is dropped, and its run goes back to ``queued`` for a scheduler to run. Past
    tries stay in the history, so the next try is numbered after them. Task instances a host holds
    are skipped and reported.

    A mapped task's instance is named ``task_id[map_index]`` (``"add[2]"``): that instance alone runs
    again (its task counts as running until it ends); naming the task clears all its instances, and
    it expands again from its upstream's output.
    """
    bases, instances = _split_named(dag, task_ids)
    chosen = _chosen_tasks(dag, bases, downstream, with_setups=True)
    with _opened(store) as s:
        runs = _pick_runs(dag, s, start, end, run_id)
        if downstream and not dry_run and _markers(dag, chosen):
            # a chain of markers deeper than allowed is refused before anything is changed
            _clear_runs(dag, s, runs, chosen, only_failed=only_failed, dry_run=True, downstream=True, budget=None)
        return _clear_runs(dag, s, runs, chosen, only_failed=only_failed, dry_run=dry_run, downstream=downstream,
                           budget=None, instances=instances)


def _split_named(dag: DAG, task_ids: Iterable[str] | None) -> tuple[list[str] | None, dict[str, set[int]]]:
    """The task ids named, and for those named as ``task_id[map_index]`` the instances meant."""
    if not task_ids:
        return None, {}
    bases: list[str] = []
    instances: dict[str, set[int]] = {}
    whole: set[str] = set()
    for name in task_ids:
        task_id, index = split_key(name)
        bases.append(task_id)
        if index < 0:
            whole.add(task_id)
            continue
        if not dag.get_task(task_id).is_mapped:
            raise InvalidRequestError(f"task '{task_id}' is not mapped, so it has no instance [{index}]: name it "
                                      f"as {task_id}", dag.dag_id)
        instances.setdefault(task_id, set()).add(index)
    for task_id in whole:
        instances.pop(task_id, None)  # the whole task named too: all of it
    return list(dict.fromkeys(bases)), instances


def _markers(dag: DAG, chosen: Iterable[str]) -> list[Any]:
    from nbflow.sensors.external import ExternalTaskMarker

    return [dag.task_dict[t] for t in chosen if isinstance(dag.task_dict[t], ExternalTaskMarker)]


def _clear_runs(
    dag: DAG, s: Store, runs: list[dict[str, Any]], chosen: list[str], *, only_failed: bool, dry_run: bool,
    downstream: bool, budget: int | None, instances: dict[str, set[int]] | None = None,
) -> Changes:
    """What :func:`clear` does in the picked runs of one DAG; with ``downstream``, then through its
    ``ExternalTaskMarker``s into other DAGs, ``budget`` more DAGs deep (None: the marker's own
    ``recursion_depth``)."""
    order = {task_id: i for i, task_id in enumerate(chosen)}
    result = Changes()
    markers = _markers(dag, chosen) if downstream else []
    for run in runs:
        for marker in markers:
            _clear_marked(dag, s, run, marker, result, only_failed=only_failed, dry_run=dry_run, budget=budget)
        wanted: dict[str, int] = {}
        was: dict[str, str] = {}
        reopen: list[str] = []
        for ti in sorted(s.get_task_instances(run["id"]), key=lambda ti: (order.get(ti["task_id"], -1), ti["map_index"])):
            base, task_id, state = ti["task_id"], ti["ti_key"], ti["state"]
            if base not in order or state == TaskState.NONE.value:
                continue  # not asked for, or nothing to clear
            if instances and base in instances:
                if ti["map_index"] not in instances[base]:
                    if ti["map_index"] < 0 and TaskState(state).finished:
                        reopen.append(base)  # its instance runs again: the task is running again
                    continue
            if only_failed and state not in FAILED_STATES:
                continue
            if state in HELD:
                result.skipped.append((run["run_id"], task_id))
                continue
            check_task_transition(TaskState(state), TaskState.NONE)
            wanted[task_id] = dag.task_dict[base].retries
            was[task_id] = state
        if not wanted:
            continue
        result.extend((run["run_id"], task_id) for task_id in wanted)
        if dry_run:
            result.run_states[run["run_id"]] = run["state"]
            continue
        check_run_transition(RunState(run["state"]), RunState.QUEUED)
        cleared_bases = {split_key(key)[0] for key in wanted}
        s.clear_task_instances(run["id"], wanted, reopen=[t for t in reopen if t in cleared_bases])
        s.add_events([{"kind": "task_cleared", "dag_id": dag.dag_id, "run_id": run["run_id"], "task_id": task_id,
                       "detail": {"from_state": was[task_id]}} for task_id in wanted])
        result.run_states[run["run_id"]] = RunState.QUEUED.value
    return result


def _clear_marked(
    dag: DAG, s: Store, run: dict[str, Any], marker: Any, result: Changes, *, only_failed: bool, dry_run: bool,
    budget: int | None,
) -> None:
    """Clear the task an ``ExternalTaskMarker`` of ``run`` points at, with its downstream, in the
    other DAG's run of the marker's logical date; that DAG's changes go in ``result.other_dags``."""
    from nbflow.timetables import parse_date

    left = marker.recursion_depth if budget is None else budget
    if left <= 0:
        raise InvalidRequestError(
            f"clearing through ExternalTaskMarker '{marker.task_id}' would go past the recursion_depth of "
            "the first marker cleared (as in Airflow, that marker's depth bounds the whole chain): the "
            "markers form a cycle, or a chain longer than that; raise that recursion_depth if the chain is meant",
            dag.dag_id,
        )
    other_id, task_id, when = marker.target(dag, run)
    other = find_dag(other_id, store=s)
    wanted = parse_date(when, other.timezone, field="logical_date", dag_id=dag.dag_id, task_id=marker.task_id)
    runs = [r for r in s.list_runs(other.dag_id, limit=None)
            if r["run_type"] != "test" and r["logical_date"] is not None and r["logical_date"] == wanted]
    if not runs:
        return  # nothing ran there yet: nothing to clear, as in Airflow
    chosen = _chosen_tasks(other, [task_id], True, with_setups=True)
    changes = _clear_runs(other, s, runs, chosen, only_failed=only_failed, dry_run=dry_run, downstream=True,
                          budget=left - 1)
    mine = result.other_dags.setdefault(other.dag_id, Changes())
    mine.extend(changes)
    mine.skipped.extend(changes.skipped)
    mine.run_states.update(changes.run_states)
    for deeper, more in changes.other_dags.items():
        theirs = result.other_dags.setdefault(deeper, Changes())
        theirs.extend(more)
        theirs.skipped.extend(more.skipped)
        theirs.run_states.update(more.run_states)


# -- mark -------------------------------------------------------------------------------------------


def mark(
    dag: DAG,
    run_id: str,
    task_ids: Iterable[str],
    state: str,
    *,
    downstream: bool = False,
    store: Store | None = None,
) -> Changes:
    """Set task instances of one run to ``success`` or ``failed`` by hand: to let a run go on past a
    task whose work was done another way, or to stop its downstream from running.

    With ``downstream`` their descendants are marked too. Then, if every task instance of the run
    has finished, the run takes the outcome the planner gives (a failed leaf fails it); otherwise it
    goes back to ``queued`` so a scheduler plans the rest from the marked states.
    """
    value = str(getattr(state, "value", state))
    if value not in MARKABLE:
        raise InvalidRequestError(
            f"cannot mark tasks {state!r}: the state must be one of {', '.join(MARKABLE)}", dag.dag_id
        )
    named = list(task_ids)
    if not named:
        raise InvalidRequestError("name at least one task to mark", dag.dag_id)
    chosen = set(_chosen_tasks(dag, named, downstream))
    result = Changes()
    with _opened(store) as s:
        run = s.get_run(dag.dag_id, run_id)
        if run is None:
            raise RunNotFoundError(dag.dag_id, run_id)
        now = _utcnow()
        states = {task_id: TaskState.NONE for task_id in dag.task_dict}
        changes: list[dict[str, Any]] = []
        for ti in s.get_task_instances(run["id"]):
            task_id, current = ti["task_id"], TaskState(ti["state"])
            if task_id not in states or ti["map_index"] >= 0:
                continue  # the task left the DAG's definition; a mapped task is marked as a whole
            states[task_id] = current
            if task_id not in chosen or current.value == value:
                continue
            if current.value in HELD:
                result.skipped.append((run_id, task_id))
                continue
            states[task_id] = check_task_transition(current, TaskState(value))
            changes.append({
                "task_id": task_id, "state": value, "end_date": now, "claimed_by": None, "next_retry_at": None,
                "error": "marked failed by hand" if value == "failed" else None,
            })
            result.append((run_id, task_id))
        outcome = run_outcome(dag, states)
        new_run_state = RunState.QUEUED if outcome is None else RunState(outcome.value)
        check_run_transition(RunState(run["state"]), new_run_state)
        if outcome is None:
            run_changes: dict[str, Any] = {"state": RunState.QUEUED.value, "end_date": None}
        else:
            run_changes = {"state": outcome.value, "end_date": run["end_date"] if run["state"] == outcome.value else now}
        events = [{"kind": "task_marked", "dag_id": dag.dag_id, "run_id": run_id, "task_id": c["task_id"],
                   "detail": {"state": value}} for c in changes]
        s.record(run["id"], task_changes=changes, run_changes=run_changes, events=events)
        result.run_states[run_id] = run_changes["state"]
    return result


# -- trigger ----------------------------------------------------------------------------------------


def trigger(
    dag: DAG,
    *,
    conf: dict[str, Any] | None = None,
    logical_date: Any = None,
    run_id: str | None = None,
    store: Store | None = None,
) -> str:
    """Queue a manual run of ``dag`` (logical date: now, unless given) and return its run id.

    Nothing runs here: a scheduler host picks the run up, so the caller returns at once and the run
    survives the caller's process. Use :func:`scheduler_alive` to know whether one will. A given
    ``run_id`` is used as is; one the DAG has already is refused (clear that run to run it again).
    """
    from nbflow.dagrun import check_conf
    from nbflow.params import run_params
    from nbflow.engine.lifecycle import create_run, logical_date_of
    from nbflow.engine.sync import source_kind, sync_dag

    dag.validate()
    conf = check_conf(conf, dag.dag_id)
    run_params(dag.params, conf, dag.dag_id)  # a Param's value is checked before any run is made
    when = logical_date_of(dag, logical_date)
    with _opened(store) as s:
        sync_dag(s, dag, source_kind=source_kind(dag))
        if run_id is not None and not str(run_id).strip():
            raise InvalidRequestError("a run id must not be empty; leave it out to have one made", dag.dag_id)
        new = create_run(s, dag, when, run_type="manual", conf=conf, run_id=run_id)
        if new is None:  # only a given run id can be taken: manual runs are otherwise numbered
            raise InvalidRequestError(
                f"it has a run '{run_id}' already; clear that run to run it again "
                "(TriggerDagRunOperator: reset_dag_run=True), or give another run id", dag.dag_id,
            )
        return new.run_id


def find_dag(dag_id: str, *, store: Store | None = None) -> DAG:
    """The DAG object of ``dag_id``, for a task that acts on another DAG (``TriggerDagRunOperator``,
    ``ExternalTaskMarker``): a DAG built in this process (a kernel, a host given its DAGs) first, else
    the file the store says defines it, else ``dags_folder``, each file loaded in a separate process
    within ``dag_file_timeout`` as a scheduler host loads it."""
    from pathlib import Path

    from nbflow.context import built_dags
    from nbflow.engine.dagparsing import DagFileParser
    from nbflow.engine.discovery import collect
    from nbflow.errors import DagImportError, DagNotFoundError
    from nbflow.settings import get_settings

    built = built_dags().get(dag_id)
    if built is not None:
        return built
    settings = get_settings()
    parse = DagFileParser(settings.dag_file_timeout)
    with _opened(store) as s:
        row = s.get_dag(dag_id)
        fileloc = (row or {}).get("fileloc") or ""
        if fileloc.endswith((".py", ".ipynb")) and Path(fileloc).is_file():
            dags, failure = parse([Path(fileloc)])[str(Path(fileloc).resolve())]
            if failure is not None:
                raise DagImportError(fileloc, failure.summary, dag_id=dag_id)
            for dag in dags:
                if dag.dag_id == dag_id:
                    return dag
        folder = Path(settings.dags_folder).expanduser()
        bag = collect([folder], load=parse) if folder.is_dir() else None
        if bag is not None and dag_id in bag.dags:
            return bag.dags[dag_id]
        known = sorted({r["dag_id"] for r in s.list_dags()} | set(bag.dags if bag else ()))
    raise DagNotFoundError(dag_id, known)


# -- scheduler hosts --------------------------------------------------------------------------------


def live_schedulers(store: Store | None = None, *, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The scheduler hosts that will pick up a queued run: running, heartbeating within
    ``host_stale_after``, and (on this machine) with their process still there. A backfill's host
    (or any host of :data:`~nbflow.engine.scheduler.OWN_RUNS_ONLY_KINDS`) drives only its own runs, so it
    does not count."""
    from nbflow.engine.scheduler import OWN_RUNS_ONLY_KINDS, pid_alive
    from nbflow.settings import get_settings

    settings = settings or get_settings()
    now = _utcnow()
    hostname = socket.gethostname()
    with _opened(store) as s:
        hosts = s.list_hosts(state="running")
    return [
        host for host in hosts
        if host["kind"] not in OWN_RUNS_ONLY_KINDS and host["heartbeat_at"] is not None
        and (now - host["heartbeat_at"]).total_seconds() < settings.host_stale_after
        and (host["hostname"] != hostname or pid_alive(host["pid"]))
    ]


def scheduler_alive(store: Store | None = None, *, settings: Settings | None = None) -> bool:
    """Whether a queued run will be picked up without anyone running it by hand."""
    return bool(live_schedulers(store, settings=settings))


# -- pools ------------------------------------------------------------------------------------------


def set_pool(name: str, slots: int, *, description: str | None = None, store: Store | None = None) -> None:
    """Create or resize a pool: at most ``slots`` task slots of tasks naming it run at once, over
    every DAG and host, so a shared resource (a database, an API quota) is not overwhelmed."""
    if not str(name).strip():
        raise InvalidRequestError("a pool needs a name")
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 0:
        raise InvalidRequestError(f"pool '{name}': slots must be a whole number of at least 0, not {slots!r}")
    with _opened(store) as s:
        s.set_pool(name, slots, description)


def delete_pool(name: str, *, store: Store | None = None) -> None:
    """Remove a pool; its tasks then run without that limit. An unknown name raises, naming the
    pools there are, so a typo does not pass for success."""
    with _opened(store) as s:
        known = [row["name"] for row in s.list_pools()]
        if name not in known:
            listed = f" Pools: {', '.join(known)}." if known else " There are no pools."
            raise NotFoundError(f"no pool named '{name}'.{listed}")
        s.delete_pool(name)


def list_pools(store: Store | None = None) -> list[dict[str, Any]]:
    """Every pool with ``name``, ``slots``, ``description`` and ``occupied`` (slots in use now)."""
    with _opened(store) as s:
        return s.list_pools()
