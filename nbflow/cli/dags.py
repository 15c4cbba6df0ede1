"""``nbflow dags ...``: list, show, test, trigger, next, backfill, pause, runs."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from nbflow.cli.common import (
    _open_store,
    _find_dag,
    _parse_conf,
    _local,
    _synced,
    _run,
    _bag,
    _describe_stalled,
    _missing_dag,
    _stalled_schedulers,
    _not_loaded,
    _plural,
    _positive,
    _require_dag,
    _roots,
    _within,
)


# -- dags -------------------------------------------------------------------------------------------


def cmd_dags_list(args: argparse.Namespace) -> int:
    """The DAGs the scheduler would run: those loaded from dags_folder (or the ``-f`` paths). DAGs the
    store knows that did not load are listed apart with the reason, so that a deleted file or a DAG
    run once from a script does not pass for a scheduled one."""
    bag, rows = _synced(args, lambda store: store.list_dags(), summary=True)
    roots = _roots(args)
    loaded = [row for row in rows if row["dag_id"] in bag.dags]
    apart = [(row, _not_loaded(row, bag, roots)) for row in rows if row["dag_id"] not in bag.dags]
    if args.file:  # -f restricts the list to those paths: DAGs elsewhere are not this list's business
        apart = [(row, status) for row, status in apart if row.get("fileloc") and _within(row["fileloc"], roots)]
    if args.json:
        keys = ("dag_id", "schedule", "timezone", "is_paused", "fileloc", "owner", "tags")
        listed = [{**{k: row.get(k) for k in keys}, "status": "loaded"} for row in loaded]
        listed += [{**{k: row.get(k) for k in keys}, "status": status} for row, status in apart]
        print(json.dumps(listed, default=str, indent=2))
        return 0
    where = " and ".join(str(root) for root in roots)
    if not loaded:
        print(f"no DAGs in {where}: a .py file there that builds a DAG (or a notebook with a %%dag cell) is loaded")
    else:
        print(f"{'dag_id':<28} {'schedule':<28} {'timezone':<20} {'tasks':>5} {'paused':<6} file")
    for row in loaded:
        tasks = len((row.get("definition") or {}).get("tasks", []))
        print(f"{row['dag_id']:<28} {str(row.get('schedule')):<28} {str(row.get('timezone')):<20} {tasks:>5} "
              f"{'yes' if row.get('is_paused') else 'no':<6} {row.get('fileloc') or '-'}")
    if apart:
        print(f"\nknown to the store but not loaded from {where}, so no scheduler runs them:")
        print(f"{'dag_id':<28} {'status':<22} file")
        for row, status in apart:
            print(f"{row['dag_id']:<28} {status:<22} {row.get('fileloc') or '-'}")
    return 0


def cmd_dags_import_errors(args: argparse.Namespace) -> int:
    bag, _ = _synced(args, lambda store: None)
    if not bag.failures:
        print(f"no import errors in {' and '.join(str(root) for root in _roots(args))}")
        return 0
    for failure in bag.failures.values():
        print(f"== {failure.fileloc}\n{failure.summary}\n{failure.traceback}".rstrip())
    return 1


def cmd_dags_show(args: argparse.Namespace) -> int:
    dag = _find_dag(args)
    print(repr(dag))
    if dag.description:
        print(dag.description)
    print(f"time zone: {dag.describe()['timezone']}   start: {dag.start_date}   catchup: {dag.catchup}")
    print()
    for task_id in dag.topological_order():
        task = dag.task_dict[task_id]
        ups = ", ".join(sorted(task.upstream_task_ids))
        kind = f"{task.kind} ({task.runs_with})" if task.runs_with else task.kind
        print(f"  {task_id:<32} {kind:<14} {task.trigger_rule.value:<28} <- {ups or '(root)'}")
    return 0


def cmd_dags_test(args: argparse.Namespace) -> int:
    return _run(args, "test")


def cmd_dags_trigger(args: argparse.Namespace) -> int:
    """Queue a manual run for a running scheduler (``--queue``), run it here and wait (``--wait``),
    or, by default, queue it when a scheduler is alive and run it here when none is."""
    from nbflow.engine import controls

    if args.wait:
        return _run(args, "manual")
    from nbflow.engine.sync import source_kind, sync_dag
    from nbflow.store import queries

    dag = _find_dag(args)
    conf = _parse_conf(args.conf, dag.dag_id)
    store = _open_store()
    try:
        hosts = controls.live_schedulers(store)
        stalled = [] if hosts else _stalled_schedulers(store)
        if not hosts and not stalled and not args.queue:
            # Recording the DAG is the run's first write: a busy store says so now, before this
            # command announces anything.
            sync_dag(store, dag, source_kind=source_kind(dag))
            store.close()
            print(f"no scheduler is running: running {dag.dag_id} now, in this process", file=sys.stderr)
            return _run(args, "manual", dag)
        run_id = controls.trigger(dag, conf=conf, logical_date=args.logical_date, store=store)
        paused = queries.is_paused(store, dag.dag_id)
    finally:
        store.close()
    print(f"queued {run_id}")
    if hosts:
        host = hosts[0]
        print(f"the {host['kind']} scheduler {host['host_id']} (pid {host['pid']} on {host['hostname']}) will run it")
    elif stalled:
        print(f"{_describe_stalled(stalled[0])}; it runs the run when it catches up (see `nbflow scheduler status`)")
    else:
        print("no scheduler is running: start one with `nbflow scheduler` to run it")
    if paused:
        print(f"warning: {dag.dag_id} is paused; the run waits until `nbflow dags unpause {dag.dag_id}`", file=sys.stderr)
    print(f"follow it with `nbflow dags runs {dag.dag_id}`")
    return 0


def cmd_dags_next(args: argparse.Namespace) -> int:
    """The next scheduled times in the DAG's zone, UTC and this machine's zone, marking DST changes."""
    from datetime import UTC

    from nbflow.timetables import (NullTimetable, check_run_count, dst_change_between, local_timezone, next_runs,
                                   parse_date, timezone_name, utcnow)

    dag = _find_dag(args)
    check_run_count(args.n, dag.dag_id, option="-n")
    if isinstance(dag.timetable, NullTimetable):
        print(f"{dag.dag_id} has no schedule: it runs only when triggered (`nbflow dags trigger {dag.dag_id}`)")
        return 0
    after = parse_date(args.after, dag.timezone, field="--after", dag_id=dag.dag_id) if args.after else utcnow()
    times = next_runs(dag.timetable, args.n, after, start_date=dag.start_date, end_date=dag.end_date)
    if not times:
        print(f"{dag.dag_id} ({dag.timetable.description}) has no scheduled time after {_local(after)}")
        return 0
    zones = [(timezone_name(dag.timezone), dag.timezone), ("UTC", UTC)]
    local = local_timezone()
    zones.append((f"local ({timezone_name(local)})", local))
    width = max(24, *(len(name) for name, _ in zones))
    print(f"schedule: {dag.timetable.description}")
    print(" ".join(f"{name:<{width}}" for name, _ in zones).rstrip())
    previous = after
    for when in times:
        marks = []
        change = dst_change_between(dag.timezone, previous, when)
        if change:
            marks.append(f"DST {_signed_hours(change)}")
        if timezone_name(local) != timezone_name(dag.timezone):
            local_change = dst_change_between(local, previous, when)
            if local_change:
                marks.append(f"local DST {_signed_hours(local_change)}")
        cells = [when.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") for _, zone in zones]
        print((" ".join(f"{cell:<{width}}" for cell in cells) + "  ".join(marks)).rstrip())
        previous = when
    return 0


def _signed_hours(delta: Any) -> str:
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60}:{abs(minutes) % 60:02d}"


def cmd_dags_backfill(args: argparse.Namespace) -> int:
    from nbflow.engine.runs import backfill

    dag = _find_dag(args)
    runs = backfill(dag, args.start, args.end, reprocess=args.reprocess, executor=args.executor, progress=True)
    if not runs:
        print(f"{dag.dag_id} ({dag.timetable.description}) has no scheduled time from {args.start} to {args.end}")
        return 0
    print(f"{'run_id':<46} {'state':<8} {'logical date (local)'}")
    for run in runs:
        print(f"{run.run_id:<46} {run.state.value:<8} {_local(run.logical_date)}")
    failed = [run for run in runs if run.state == "failed"]
    print(f"\n{_plural(len(runs), 'run')}: {len(runs) - len(failed)} succeeded, {len(failed)} failed")
    return 1 if failed else 0


def _set_paused(args: argparse.Namespace, paused: bool) -> None:
    from nbflow.engine import controls
    from nbflow.errors import DagNotFoundError

    change = controls.pause if paused else controls.unpause
    try:
        _synced(args, lambda store: change(args.dag_id, store=store))
    except DagNotFoundError:
        raise _missing_dag(args, _bag(args, summary=False), args.dag_id) from None


def cmd_dags_pause(args: argparse.Namespace) -> int:
    _set_paused(args, True)
    print(f"paused {args.dag_id}: no new runs start; runs in progress finish")
    return 0


def cmd_dags_unpause(args: argparse.Namespace) -> int:
    _set_paused(args, False)
    print(f"unpaused {args.dag_id}")
    return 0


def cmd_dags_runs(args: argparse.Namespace) -> int:
    _positive(args.limit, "--limit", "a number of runs", args.dag_id)
    store = _open_store()
    try:
        _require_dag(args, store)
        rows = store.list_runs(args.dag_id, limit=args.limit)
    finally:
        store.close()
    if not rows:
        print(f"{args.dag_id} has no runs yet: start one with `nbflow dags trigger {args.dag_id}`")
        return 0
    print(f"{'run_id':<46} {'type':<9} {'state':<8} {'logical date (local)':<26} {'ended (local)'}")
    for row in rows:
        print(f"{row['run_id']:<46} {row['run_type']:<9} {row['state']:<8} {_local(row['logical_date']):<26} {_local(row.get('end_date'))}")
    return 0
