"""``nbflow tasks ...``: list, test, clear, mark, logs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from nbflow.cli.common import (
    _settings,
    _open_store,
    _find_dag,
    _parse_conf,
    _local,
    _plural,
    _positive,
    _require_dag,
)
from nbflow.memory import format_size


# -- tasks ------------------------------------------------------------------------------------------


def cmd_tasks_list(args: argparse.Namespace) -> int:
    dag = _find_dag(args)
    for task_id in dag.topological_order():
        print(task_id)
    return 0


def cmd_tasks_test(args: argparse.Namespace) -> int:
    """Run one task alone, now, without recording anything; upstream outputs come from the latest
    run that has them."""
    import tempfile

    from nbflow.outputs import decode
    from nbflow.engine.runner import TaskRequest, run_task
    from nbflow.engine.lifecycle import logical_date_of

    dag = _find_dag(args)
    task = dag.get_task(args.task_id)
    when = logical_date_of(dag, args.logical_date or None)
    start, end = dag.timetable.data_interval(when)
    upstream = _latest_outputs(dag.dag_id, set(task.upstream_task_ids) | {r.task_id for r in task.output_refs()})
    log = Path(tempfile.mkdtemp(prefix="nbflow-task-test-")) / "task.log"
    request = TaskRequest(
        dag_id=dag.dag_id, task_id=task.task_id, run_id="tasks_test", try_number=1, max_tries=1,
        logical_date=when, data_interval_start=start, data_interval_end=end, conf=_parse_conf(args.conf, dag.dag_id),
        log_path=str(log), operator=task, dag=dag, upstream=upstream,
        max_output_bytes=_settings().max_output_bytes, max_log_bytes=_settings().max_log_bytes,
    )
    code = 0
    try:
        result = run_task(request)
    except Exception:
        code = 1
        result = None
    if log.exists():
        sys.stdout.write(log.read_text(encoding="utf-8"))
    if result is not None and result.output is not None:
        print(f"output: {decode(result.output.kind, result.output.data)!r}")
    elif result is not None and result.skipped:
        print(f"skipped: {result.skipped}")
    return code


def _latest_outputs(dag_id: str, wanted: set[str]) -> dict[str, tuple[str, str | bytes]]:
    if not wanted:
        return {}
    from nbflow.outputs import read_stored

    store = _open_store()
    found: dict[str, tuple[str, str | bytes]] = {}
    try:
        for run in store.list_runs(dag_id, limit=20):
            for task_id, row in store.get_outputs(run["id"]).items():
                if task_id in wanted and task_id not in found:
                    encoded = read_stored(row)  # decoded by the task under test, which needs the value
                    if encoded is not None:
                        found[task_id] = (encoded.kind, encoded.data)
    finally:
        store.close()
    return found


def _by_run(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for run_id, task_id in pairs:
        grouped.setdefault(run_id, []).append(task_id)
    return grouped


def _print_held(pairs: Sequence[tuple[str, str]]) -> None:
    for run_id, task_ids in _by_run(pairs).items():
        print(f"left alone, a scheduler runs them now: {run_id}: {', '.join(task_ids)}", file=sys.stderr)


def cmd_tasks_clear(args: argparse.Namespace) -> int:
    from nbflow.engine import controls

    dag = _find_dag(args)
    store = _open_store()
    try:
        changes = controls.clear(dag, start=args.start, end=args.end, run_id=args.run_id, task_ids=args.task_ids,
                                 downstream=args.downstream, only_failed=args.only_failed, dry_run=not args.yes,
                                 store=store)
        alive = controls.scheduler_alive(store) if args.yes and changes else False
    finally:
        store.close()
    _print_held(changes.skipped)
    runs = _by_run(changes)
    if not changes and not changes.other_dags:
        print("nothing to clear")
        return 0
    if not args.yes:
        print(f"would clear {_plural(len(changes), 'task instance')} in {_plural(len(runs), 'run')}:")
        for run_id, task_ids in runs.items():
            print(f"  {run_id}: {', '.join(task_ids)}")
        for other_id, theirs in changes.other_dags.items():  # through ExternalTaskMarkers
            for run_id, task_ids in _by_run(theirs).items():
                print(f"  DAG {other_id}, {run_id}: {', '.join(task_ids)}")
        print("add --yes to clear these")
        return 2
    print(f"cleared {_plural(len(changes), 'task instance')} in {_plural(len(runs), 'run')}; their runs are queued again")
    for other_id, theirs in changes.other_dags.items():
        print(f"also cleared through ExternalTaskMarker, DAG {other_id}: "
              f"{_plural(len(theirs), 'task instance')} in {_plural(len(_by_run(theirs)), 'run')}")
    if not alive:
        print("no scheduler is running: start one with `nbflow scheduler` (backfill runs: run the backfill again)")
    return 0


def cmd_tasks_mark(args: argparse.Namespace) -> int:
    from nbflow.engine import controls

    dag = _find_dag(args)
    store = _open_store()
    try:
        changes = controls.mark(dag, args.run_id, args.task_ids, args.state, downstream=args.downstream, store=store)
    finally:
        store.close()
    _print_held(changes.skipped)
    for _, task_id in changes:
        print(f"marked {task_id} {args.state}")
    if not changes:
        print(f"nothing to mark: the tasks are {args.state} already or held by a scheduler")
    print(f"run {args.run_id} is now {changes.run_states.get(args.run_id, '?')}")
    return 0


def cmd_tasks_logs(args: argparse.Namespace) -> int:
    """A task's log, every try or one; an unknown DAG, task, run or try is an error saying which."""
    from nbflow.errors import NotFoundError, RunNotFoundError, TaskNotFoundError, TryNotFoundError
    from nbflow.store import queries

    _positive(args.try_number, "--try", "a try number", args.dag_id)
    store = _open_store()
    try:
        dag_row = _require_dag(args, store)
        run = queries.run_or_latest(store, args.dag_id, args.run_id)
        if args.run_id and run is None:
            raise RunNotFoundError(args.dag_id, args.run_id)
        known = [t["task_id"] for t in queries.definition_tasks(dag_row)]
        if run is None:
            if known and args.task_id not in known:
                raise TaskNotFoundError(args.dag_id, args.task_id, known)
            raise NotFoundError(f"DAG '{args.dag_id}' has no runs yet, so task '{args.task_id}' has no log; start "
                                f"one with `nbflow dags trigger {args.dag_id}`")
        in_run = list(queries.task_states(store, run["id"]))
        if args.task_id not in in_run:
            raise TaskNotFoundError(args.dag_id, args.task_id, in_run or known)
        map_index = -1 if args.map_index is None else args.map_index
        detail = queries.task_instance_detail(store, args.dag_id, run["run_id"], args.task_id, map_index)
        if detail.instances:  # a mapped task: each instance's tries, by map index
            details = [queries.task_instance_detail(store, args.dag_id, run["run_id"], args.task_id, i["map_index"])
                       for i in detail.instances]
        else:
            details = [detail]
    finally:
        store.close()
    code = 0
    for one in details:
        code = max(code, _print_logs(args, run, one))
    return code


def _print_logs(args: argparse.Namespace, run: dict, detail: Any) -> int:
    from nbflow.errors import TryNotFoundError

    tries, ti = detail.tries, detail.ti
    instance = f"[{ti['map_index']}]" if ti is not None and ti.get("map_index", -1) >= 0 else ""
    rows = sorted(tries, key=lambda t: t["try_number"])
    if not rows and ti is not None and ti.get("try_number"):
        rows = [ti]  # still running: its try has no row yet
    if args.try_number is not None:
        ran = [t["try_number"] for t in rows]
        if args.try_number not in ran:
            raise TryNotFoundError(args.dag_id, args.task_id + instance, run["run_id"], args.try_number, ran)
        rows = [t for t in rows if t["try_number"] == args.try_number]
    if not rows:
        state = ti.get("state") if ti else "none"
        print(f"DAG '{args.dag_id}', task '{args.task_id}{instance}' has not run in run {run['run_id']} (state: {state})",
              file=sys.stderr)
        return 1
    for row in rows:
        path = row.get("log_path")
        peak = f", peak memory {format_size(row['peak_rss'])}" if row.get("peak_rss") else ""
        print(f"==> {args.task_id}{instance} try {row['try_number']}: {row['state']} on {row.get('hostname') or '?'} pid {row.get('pid') or '?'}, "
              f"{_local(row.get('start_date'))} to {_local(row.get('end_date'))}{peak}")
        if not path:
            print("(the task wrote nothing to its log)")
        elif Path(path).exists():
            print(Path(path).read_text(encoding="utf-8"), end="")
        else:
            print(f"(the log file {path} is gone)")
    return 0


def cmd_tasks_states(args: argparse.Namespace) -> int:
    """Each task instance of a run (the latest by default) with its state, tries and times; a mapped
    task's instances follow it, one line per map index (as Airflow's ``tasks states-for-dag-run``)."""
    from nbflow.errors import RunNotFoundError
    from nbflow.store import queries

    store = _open_store()
    try:
        _require_dag(args, store)
        run = queries.run_or_latest(store, args.dag_id, args.run_id)
        if run is None:
            if args.run_id:
                raise RunNotFoundError(args.dag_id, args.run_id)
            print(f"{args.dag_id} has no runs yet: start one with `nbflow dags trigger {args.dag_id}`")
            return 0
        rows = queries.in_dag_order(store, args.dag_id, queries.folded_task_instances(store, run["id"]))
        # the peak memory of each instance's latest try (where it was measured)
        peaks = {(t["task_id"], t.get("map_index", -1), t["try_number"]): t.get("peak_rss") for t in store.get_tries(run["id"])}
    finally:
        store.close()

    def peak(ti: dict) -> str:
        return format_size(peaks.get((ti["task_id"], ti.get("map_index", -1), ti["try_number"]))) or "-"

    print(f"run {run['run_id']} ({run['state']})")
    print(f"{'task_id':<40} {'map_index':>9} {'state':<16} {'tries':>5} {'peak mem':>9}  {'started (local)':<26} ended (local)")
    for ti in rows:
        counts = ti.get("map_counts")
        print(f"{ti['task_id']:<40} {'':>9} {ti['state']:<16} {ti['try_number'] or 0:>5} {peak(ti):>9}  "
              f"{_local(ti.get('start_date')):<26} {_local(ti.get('end_date'))}"
              + (f"  ({', '.join(f'{n} {state}' for state, n in sorted(counts.items()))})" if counts else ""))
        for one in ti.get("instances", ()):
            print(f"{'':<40} {one['map_index']:>9} {one['state']:<16} {one['try_number'] or 0:>5} {peak(one):>9}  "
                  f"{_local(one.get('start_date')):<26} {_local(one.get('end_date'))}")
    return 0
