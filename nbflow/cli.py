"""The ``nbflow`` command line.

Each command parses its arguments and calls the public API; imports happen inside the command so that
``nbflow dags test`` pays only for what it uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from nbflow.errors import NbflowError


def _settings() -> Any:
    from nbflow.settings import get_settings

    return get_settings()


def _open_store() -> Any:
    from nbflow.store import Store

    return Store.open(_settings())


def _bag(args: argparse.Namespace) -> Any:
    from nbflow.discovery import collect

    paths = list(getattr(args, "file", None) or [])
    if not paths:
        folder = Path(_settings().dags_folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder]
    return collect(paths)


def _find_dag(args: argparse.Namespace) -> Any:
    bag = _bag(args)
    if args.dag_id not in bag.dags:
        for failure in bag.failures.values():
            print(f"warning: {failure.fileloc}: {failure.summary}", file=sys.stderr)
    return bag.get(args.dag_id)


def _parse_conf(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"nbflow: --conf is not valid JSON ({exc.msg} at column {exc.colno}): {text}") from None
    if not isinstance(value, dict):
        raise SystemExit("nbflow: --conf must be a JSON object, e.g. '{\"key\": 1}'")
    return value


def _local(value: Any) -> str:
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _print_run_footer(run: Any) -> None:
    from nbflow.settings import get_settings

    settings = get_settings()
    print()
    logs = {Path(p).parent.parent for p in run.log_paths.values()}
    if logs:
        print(f"logs:      {sorted(logs)[0]}")
    artifacts = Path(settings.artifacts_folder) / run.dag_id
    if artifacts.exists():
        print(f"artifacts: {artifacts}")
    print(f"store:     {settings.database_url}")


# -- dags -------------------------------------------------------------------------------------------


def _synced(args: argparse.Namespace, read: Any) -> tuple[Any, Any]:
    """Load the DAG files, record them (and their import errors) in the store, then ``read(store)``."""
    from nbflow.discovery import sync

    bag = _bag(args)
    store = _open_store()
    try:
        sync(bag, store)
        return bag, read(store)
    finally:
        store.close()


def cmd_dags_list(args: argparse.Namespace) -> int:
    bag, rows = _synced(args, lambda store: store.list_dags())
    if args.json:
        print(json.dumps([{k: r.get(k) for k in ("dag_id", "schedule", "timezone", "is_paused", "fileloc", "owner", "tags")} for r in rows], default=str, indent=2))
        return 0
    print(f"{'dag_id':<28} {'schedule':<28} {'timezone':<20} {'tasks':>5} {'paused':<6} file")
    for row in rows:
        tasks = len((row.get("definition") or {}).get("tasks", []))
        print(f"{row['dag_id']:<28} {str(row.get('schedule')):<28} {str(row.get('timezone')):<20} {tasks:>5} "
              f"{'yes' if row.get('is_paused') else 'no':<6} {row.get('fileloc') or '-'}")
    if bag.failures:
        print(f"\n{len(bag.failures)} file(s) failed to load; see `nbflow dags list-import-errors`:")
        for failure in bag.failures.values():
            print(f"  {failure.fileloc}: {failure.summary}")
    return 0


def cmd_dags_import_errors(args: argparse.Namespace) -> int:
    _, errors = _synced(args, lambda store: store.list_import_errors())
    if not errors:
        print("no import errors")
        return 0
    for error in errors:
        print(f"== {error['fileloc']}\n{error['summary']}\n{error['traceback']}")
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
        print(f"  {task_id:<32} {task.kind:<14} {task.trigger_rule.value:<28} <- {ups or '(root)'}")
    return 0


def _run(args: argparse.Namespace, run_type: str, dag: Any = None) -> int:
    from nbflow.runs import run_dag

    dag = dag or _find_dag(args)
    run = run_dag(dag, logical_date=args.logical_date, conf=_parse_conf(args.conf), executor=args.executor, run_type=run_type)
    print(run.summary())
    _print_run_footer(run)
    return 0 if run.state == "success" else 1


def cmd_dags_test(args: argparse.Namespace) -> int:
    return _run(args, "test")


def cmd_dags_trigger(args: argparse.Namespace) -> int:
    """Queue a manual run for a running scheduler (``--queue``), run it here and wait (``--wait``),
    or, by default, queue it when a scheduler is alive and run it here when none is."""
    from nbflow import controls

    if args.wait:
        return _run(args, "manual")
    dag = _find_dag(args)
    conf = _parse_conf(args.conf)
    store = _open_store()
    try:
        hosts = controls.live_schedulers(store)
        if not hosts and not args.queue:
            store.close()
            print(f"no scheduler is running: running {dag.dag_id} now, in this process", file=sys.stderr)
            return _run(args, "manual", dag)
        run_id = controls.trigger(dag, conf=conf, logical_date=args.logical_date, store=store)
        paused = bool((store.get_dag(dag.dag_id) or {}).get("is_paused"))
    finally:
        store.close()
    print(f"queued {run_id}")
    if hosts:
        host = hosts[0]
        print(f"the {host['kind']} scheduler {host['host_id']} (pid {host['pid']} on {host['hostname']}) will run it")
    else:
        print("no scheduler is running: start one with `nbflow scheduler` to run it")
    if paused:
        print(f"warning: {dag.dag_id} is paused; the run waits until `nbflow dags unpause {dag.dag_id}`", file=sys.stderr)
    print(f"follow it with `nbflow dags runs {dag.dag_id}`")
    return 0


def cmd_dags_next(args: argparse.Namespace) -> int:
    """The next scheduled times in the DAG's zone, UTC and this machine's zone, marking DST changes."""
    from datetime import UTC

    from nbflow.timetables import (NullTimetable, dst_change_between, local_timezone, next_runs, parse_date,
                                   timezone_name, utcnow)

    dag = _find_dag(args)
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


def _progress_bar(stream: Any, width: int = 20) -> Any:
    """An ``on_progress(done, total, run_id)`` that draws ``[####......] 3/10 runs`` on ``stream``:
    redrawn in place on a terminal, one line per update otherwise (logs, pipes)."""
    tty = stream.isatty()
    drawn = [False]

    def draw(done: int, total: int, run_id: str | None = None) -> None:
        filled = width * done // total if total else width
        text = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} runs"
        stream.write(f"\r{text}" if tty else f"{text}\n")
        stream.flush()
        drawn[0] = True

    def close() -> None:
        if tty and drawn[0]:
            stream.write("\n")
            stream.flush()

    draw.close = close  # type: ignore[attr-defined]
    return draw


def cmd_dags_backfill(args: argparse.Namespace) -> int:
    from nbflow.runs import backfill

    dag = _find_dag(args)
    progress = _progress_bar(sys.stderr)
    try:
        runs = backfill(dag, args.start, args.end, reprocess=args.reprocess, executor=args.executor, on_progress=progress)
    finally:
        progress.close()
    if not runs:
        print(f"{dag.dag_id} ({dag.timetable.description}) has no scheduled time from {args.start} to {args.end}")
        return 0
    print(f"{'run_id':<46} {'state':<8} {'logical date (local)'}")
    for run in runs:
        print(f"{run.run_id:<46} {run.state.value:<8} {_local(run.logical_date)}")
    failed = [run for run in runs if run.state == "failed"]
    print(f"\n{len(runs)} run(s): {len(runs) - len(failed)} succeeded, {len(failed)} failed")
    return 1 if failed else 0


def cmd_dags_pause(args: argparse.Namespace) -> int:
    from nbflow import controls

    _synced(args, lambda store: controls.pause(args.dag_id, store=store))
    print(f"paused {args.dag_id}: no new runs start; runs in progress finish")
    return 0


def cmd_dags_unpause(args: argparse.Namespace) -> int:
    from nbflow import controls

    _synced(args, lambda store: controls.unpause(args.dag_id, store=store))
    print(f"unpaused {args.dag_id}")
    return 0


def cmd_dags_runs(args: argparse.Namespace) -> int:
    store = _open_store()
    try:
        rows = store.list_runs(args.dag_id, limit=args.limit)
    finally:
        store.close()
    if not rows:
        print(f"no runs of {args.dag_id}")
        return 0
    print(f"{'run_id':<46} {'type':<9} {'state':<8} {'logical date (local)':<26} {'ended (local)'}")
    for row in rows:
        print(f"{row['run_id']:<46} {row['run_type']:<9} {row['state']:<8} {_local(row['logical_date']):<26} {_local(row.get('end_date'))}")
    return 0


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
    from nbflow.runner import TaskRequest, run_task
    from nbflow.runs import utcnow
    from nbflow.timetables import parse_date

    dag = _find_dag(args)
    task = dag.get_task(args.task_id)
    when = parse_date(args.logical_date, dag.timezone, field="logical_date", dag_id=dag.dag_id) if args.logical_date else utcnow().astimezone(dag.timezone)
    start, end = dag.timetable.data_interval(when)
    upstream = _latest_outputs(dag.dag_id, set(task.upstream_task_ids) | {r.task_id for r in task.output_refs()})
    log = Path(tempfile.mkdtemp(prefix="nbflow-task-test-")) / "task.log"
    request = TaskRequest(
        dag_id=dag.dag_id, task_id=task.task_id, run_id="tasks_test", try_number=1, max_tries=1,
        logical_date=when, data_interval_start=start, data_interval_end=end, conf=_parse_conf(args.conf),
        log_path=str(log), operator=task, dag=dag, upstream=upstream,
        max_output_bytes=_settings().max_output_bytes,
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
    store = _open_store()
    found: dict[str, tuple[str, str | bytes]] = {}
    try:
        for run in store.list_runs(dag_id, limit=20):
            for task_id, row in store.get_outputs(run["id"]).items():
                if task_id in wanted and task_id not in found:
                    if row.get("value_json") is not None:
                        found[task_id] = ("json", row["value_json"])
                    elif row.get("artifact_path") and Path(row["artifact_path"]).exists():
                        path = Path(row["artifact_path"])
                        found[task_id] = ("json", path.read_text("utf-8")) if path.suffix == ".json" else ("pickle", path.read_bytes())
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
    from nbflow import controls

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
    if not changes:
        print("nothing to clear")
        return 0
    if not args.yes:
        print(f"would clear {len(changes)} task instance(s) in {len(runs)} run(s):")
        for run_id, task_ids in runs.items():
            print(f"  {run_id}: {', '.join(task_ids)}")
        print("add --yes to clear these")
        return 2
    print(f"cleared {len(changes)} task instance(s) in {len(runs)} run(s); their runs are queued again")
    if not alive:
        print("no scheduler is running: start one with `nbflow scheduler` (backfill runs: run the backfill again)")
    return 0


def cmd_tasks_mark(args: argparse.Namespace) -> int:
    from nbflow import controls

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
    store = _open_store()
    try:
        runs = store.list_runs(args.dag_id, limit=1) if not args.run_id else [store.get_run(args.dag_id, args.run_id)]
        if not runs or runs[0] is None:
            from nbflow.errors import RunNotFoundError

            raise RunNotFoundError(args.dag_id, args.run_id or "(latest)")
        run = runs[0]
        tries = store.get_tries(run["id"], args.task_id)
        ti = store.get_task_instance(args.dag_id, run["run_id"], args.task_id)
    finally:
        store.close()
    rows = sorted(tries, key=lambda t: t["try_number"])
    if not rows and ti is not None and ti.get("try_number"):
        rows = [ti]  # still running: its try has no row yet
    if args.try_number:
        rows = [t for t in rows if t["try_number"] == args.try_number]
    if not rows:
        print(f"task {args.task_id} has not run in run {run['run_id']}", file=sys.stderr)
        return 1
    for row in rows:
        path = row.get("log_path")
        print(f"==> try {row['try_number']}: {row['state']} on {row.get('hostname') or '?'} pid {row.get('pid') or '?'}, "
              f"{_local(row.get('start_date'))} to {_local(row.get('end_date'))}")
        if not path:
            print("(the task wrote nothing to its log)")
        elif Path(path).exists():
            print(Path(path).read_text(encoding="utf-8"), end="")
        else:
            print(f"(the log file {path} is gone)")
    return 0


# -- scheduled notebook reports ---------------------------------------------------------------------

GENERATED = "# Generated by `nbflow schedule`"
REPORT_TEMPLATE = '''{mark}: run the command again to change it. To edit this file by hand,
# delete this comment first, so that the command never overwrites your changes.
"""{title}"""

from nbflow import DAG
from nbflow.operators.notebook import NotebookOperator

with DAG(
    {dag_id!r},
    schedule={schedule!r},
    timezone={timezone!r},
    start_date={start!r},
    catchup=False,
    tags=["report"],
    description={description!r},
):
    NotebookOperator(
        task_id="report",
        notebook={notebook!r},
        parameters={parameters},
        report={report!r},
    )
'''


def parse_param(text: str) -> tuple[str, Any]:
    """``key=value``: the value as JSON when it parses (ints, floats, true/false, lists, objects),
    ``True``/``False``/``None`` as Python spells them, else the text itself."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise SystemExit(f"nbflow: -p takes key=value with a Python name as key, not {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        pass
    return key, {"True": True, "False": False, "None": None}.get(raw, raw)


def _report_dag_id(notebook: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "_-." else "_" for c in notebook.stem).strip("._-")
    return f"report_{stem or 'notebook'}"


def cmd_schedule(args: argparse.Namespace) -> int:
    """Write a one-task DAG file that runs a notebook on a cron schedule, into dags_folder."""
    import pprint

    from nbflow import DAG
    from nbflow.discovery import collect, load_file, sync
    from nbflow.timetables import resolve_timezone, timezone_name, utcnow

    notebook = Path(args.notebook).expanduser().resolve()
    if notebook.suffix != ".ipynb" or not notebook.is_file():
        raise SystemExit(f"nbflow: {args.notebook} is not a notebook file (.ipynb)")
    parameters = dict(parse_param(p) for p in args.param or [])
    dag_id = args.dag_id or _report_dag_id(notebook)
    folder = Path(_settings().dags_folder)
    target = folder / f"{dag_id}.py"
    zone = resolve_timezone(args.timezone or _settings().default_timezone or None, dag_id)
    start = utcnow().astimezone(zone).replace(second=0, microsecond=0)
    # Check the id, cron and zone before writing anything: these raise errors that name the bad value.
    DAG(dag_id, schedule=args.cron, timezone=zone, start_date=start, fileloc=str(target))
    if target.exists() and GENERATED not in target.read_text(encoding="utf-8", errors="replace"):
        raise SystemExit(f"nbflow: {target} exists and was not written by `nbflow schedule`; "
                         "pick another --dag-id or move that file")
    folder.mkdir(parents=True, exist_ok=True)
    other = collect([folder]).dags.get(dag_id)
    if other is not None and Path(str(other.fileloc)).resolve() != target.resolve():
        raise SystemExit(f"nbflow: DAG id {dag_id!r} is already defined in {other.fileloc}; pick another --dag-id")
    target.write_text(REPORT_TEMPLATE.format(
        title=f"Runs {notebook.name} on the schedule {args.cron!r} ({timezone_name(zone)}).",
        mark=GENERATED, dag_id=dag_id, schedule=args.cron, timezone=timezone_name(zone),
        start=start.isoformat(), description=f"scheduled report of {notebook}", notebook=str(notebook),
        parameters=pprint.pformat(parameters, sort_dicts=False), report=None if args.report == "none" else args.report,
    ), encoding="utf-8")
    dags, failure = load_file(target)
    if failure is not None:
        print(f"nbflow: wrote {target}, but it does not load: {failure.summary}\n{failure.traceback}", file=sys.stderr)
        return 1
    store = _open_store()
    try:
        sync(collect([target]), store)
    finally:
        store.close()
    dag = dags[0]
    print(f"scheduled {dag_id}: {notebook}")
    print(f"  DAG file:   {target}")
    print(f"  schedule:   {dag.timetable.description}")
    if parameters:
        print(f"  parameters: {json.dumps(parameters, default=str)}")
    print("  next runs:")
    for when in dag.next_runs(3):
        print(f"    {when.strftime('%Y-%m-%d %H:%M %Z')}   ({_local(when)} local)")
    print(f"run it now:          nbflow dags trigger {dag_id} --wait")
    print("run it on schedule:  keep a scheduler running (`nbflow scheduler`, or `%nbflow scheduler start` in a notebook)")
    print(f"see its reports:     nbflow reports {dag_id}")
    return 0


def _report_files(settings: Any, dag_id: str, run_id: str, task_id: str) -> tuple[str | None, str | None]:
    """The output notebook and HTML report of a notebook task, from the artifacts folder."""
    from nbflow.runs import safe_path_part

    root = Path(settings.artifacts_folder)
    for folder in (root / safe_path_part(dag_id) / safe_path_part(run_id) / safe_path_part(task_id),
                   root / dag_id / run_id / task_id):
        notebooks = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
        if notebooks:
            html = notebooks[0].with_suffix(".html")
            htmls = [html] if html.exists() else sorted(folder.glob("*.html"))
            return str(notebooks[0]), (str(htmls[0]) if htmls else None)
    return None, None


def cmd_reports(args: argparse.Namespace) -> int:
    """Each run of a DAG with the output notebooks and HTML reports of its notebook tasks."""
    settings = _settings()
    store = _open_store()
    try:
        if store.get_dag(args.dag_id) is None:
            from nbflow.errors import DagNotFoundError

            raise DagNotFoundError(args.dag_id, [d["dag_id"] for d in store.list_dags()])
        runs = store.list_runs(args.dag_id, limit=args.limit)
        tasks = {run["id"]: store.get_task_instances(run["id"]) for run in runs}
    finally:
        store.close()
    if not runs:
        print(f"{args.dag_id} has no runs yet: run it now with `nbflow dags trigger {args.dag_id} --wait`")
        return 0
    print(f"{'run_id':<46} {'state':<8} logical date (local)")
    for run in runs:
        print(f"{run['run_id']:<46} {run['state']:<8} {_local(run['logical_date'])}")
        instances = tasks[run["id"]]
        notebook_tasks = [ti for ti in instances if ti.get("operator") == "NotebookOperator"] or instances
        for ti in sorted(notebook_tasks, key=lambda t: t["task_id"]):
            output, html = _report_files(settings, args.dag_id, run["run_id"], ti["task_id"])
            if output is None and ti.get("operator") != "NotebookOperator":
                continue
            print(f"    {ti['task_id']} ({ti['state']})")
            print(f"      notebook: {output or '-'}")
            print(f"      report:   {html or '-'}")
    return 0


# -- scheduler --------------------------------------------------------------------------------------


def cmd_scheduler(args: argparse.Namespace) -> int:
    if args.action == "status":
        return _scheduler_status()
    import signal
    import threading

    from nbflow.scheduler import Scheduler

    stop = threading.Event()
    scheduler = Scheduler(executor=args.executor, dag_paths=args.file)

    def graceful(signum: int, frame: Any) -> None:
        print(f"nbflow scheduler: got signal {signum}, finishing running tasks", file=sys.stderr)
        stop.set()
        scheduler.wake()

    signal.signal(signal.SIGTERM, graceful)
    signal.signal(signal.SIGINT, graceful)
    print(f"nbflow scheduler {scheduler.host_id} on {_settings().database_url}", file=sys.stderr, flush=True)
    scheduler.serve(stop, exit_when_idle=args.exit_when_idle, grace=args.grace)
    print(f"nbflow scheduler: stopped; finished {len(scheduler.finished_runs)} run(s)", file=sys.stderr)
    return 0


def _scheduler_status() -> int:
    from datetime import datetime, timezone

    settings = _settings()
    store = _open_store()
    try:
        hosts = store.list_hosts()
    finally:
        store.close()
    now = datetime.now(timezone.utc)
    alive = [h for h in hosts if h["state"] == "running" and h["heartbeat_at"] is not None
             and (now - h["heartbeat_at"]).total_seconds() < settings.host_stale_after]
    if not alive:
        print("no scheduler is running")
    for host in alive:
        detail = host.get("detail") or {}
        age = (now - host["heartbeat_at"]).total_seconds()
        print(f"{host['kind']:<8} {host['host_id']}  pid {host['pid']} on {host['hostname']}, up since "
              f"{_local(host['started_at'])}, heartbeat {age:.1f} s ago")
        print(f"         {detail.get('running_tasks', 0)} task(s) running in {len(detail.get('runs', []))} run(s)"
              + (": " + ", ".join(detail.get("runs", [])[:5]) if detail.get("runs") else ""))
    return 0 if alive else 3


# -- pools ------------------------------------------------------------------------------------------


def cmd_pools_list(args: argparse.Namespace) -> int:
    from nbflow import controls

    store = _open_store()
    try:
        rows = controls.list_pools(store)
    finally:
        store.close()
    if not rows:
        print("no pools: tasks run without pool limits; define one with `nbflow pools set NAME SLOTS`")
        return 0
    print(f"{'pool':<24} {'slots':>5} {'occupied':>8}  description")
    for row in rows:
        print(f"{row['name']:<24} {row['slots']:>5} {row['occupied']:>8}  {row.get('description') or ''}".rstrip())
    return 0


def cmd_pools_set(args: argparse.Namespace) -> int:
    from nbflow import controls

    store = _open_store()
    try:
        controls.set_pool(args.name, args.slots, description=args.description, store=store)
    finally:
        store.close()
    print(f"pool {args.name}: {args.slots} slot(s)")
    return 0


def cmd_pools_delete(args: argparse.Namespace) -> int:
    from nbflow import controls

    store = _open_store()
    try:
        controls.delete_pool(args.name, store=store)
    finally:
        store.close()
    print(f"deleted pool {args.name}")
    return 0


# -- db, config, demo -------------------------------------------------------------------------------


def cmd_db(args: argparse.Namespace) -> int:
    from nbflow.store import migrate

    url = _settings().database_url
    if args.db_command == "init":
        migrate.init_db(url)
        print(f"initialised {url}")
    elif args.db_command == "upgrade":
        migrate.upgrade_db(url)
        print(f"upgraded {url} to {migrate.HEAD_REVISION}")
    elif args.db_command == "check":
        migrate.check_db(url)
        print(f"{url}: schema is current ({migrate.HEAD_REVISION})")
    elif args.db_command == "reset":
        if not args.yes:
            print(f"this deletes every run, task instance and output in {url}; add --yes to do it", file=sys.stderr)
            return 2
        migrate.reset_db(url)
        print(f"reset {url}")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    settings = _settings()
    for key, value in settings.as_dict().items():
        print(f"{key} = {value}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from nbflow.discovery import load_file
    from nbflow.runs import run_dag

    demo_file = Path(__file__).parent / "examples" / "demo_pipeline.py"
    dags, failure = load_file(demo_file)
    if failure is not None:
        raise SystemExit(f"nbflow: the demo pipeline failed to load: {failure.summary}\n{failure.traceback}")
    code = 0
    for dag in dags:
        run = run_dag(dag, run_type="manual", executor=args.executor)
        print(run.summary())
        _print_run_footer(run)
        from nbflow.paths import task_folder

        folder = task_folder(_settings().artifacts_folder, dag.dag_id, run.run_id, "report")
        notebook, html = folder / "demo_report.ipynb", folder / "demo_report.html"
        if notebook.exists():
            print(f"notebook:  {notebook}")
        if html.exists():
            print(f"report:    {html}")
        code = code or (0 if run.state == "success" else 1)
    return code


def cmd_version(args: argparse.Namespace) -> int:
    from nbflow import __version__

    print(f"nbflow {__version__}")
    return 0


# -- parser -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nbflow", description="Workflows that live inside Jupyter.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_files(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("-f", "--file", action="append", metavar="PATH",
                       help="a DAG file or folder to load instead of dags_folder (repeatable)")
        return p

    def with_run(p: argparse.ArgumentParser) -> None:
        p.add_argument("--logical-date", "-d", help="the run's logical date (default: now)")
        p.add_argument("--conf", "-c", help="JSON object given to the run as conf")
        p.add_argument("--executor", "-e", choices=["inline", "thread", "process"], help="default: the executor setting")

    dags = sub.add_parser("dags", help="list, show, test, trigger, backfill and pause DAGs").add_subparsers(dest="dags_command", required=True, metavar="ACTION")
    p = with_files(dags.add_parser("list", help="the DAGs of dags_folder"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_dags_list)
    with_files(dags.add_parser("list-import-errors", help="DAG files that failed to load")).set_defaults(func=cmd_dags_import_errors)
    p = with_files(dags.add_parser("show", help="a DAG's tasks and dependencies"))
    p.add_argument("dag_id")
    p.set_defaults(func=cmd_dags_show)
    p = with_files(dags.add_parser("test", help="run a DAG once now, in this process"))
    p.add_argument("dag_id")
    with_run(p)
    p.set_defaults(func=cmd_dags_test)
    p = with_files(dags.add_parser(
        "trigger", help="a manual run: queued for a running scheduler, or run now when none is running"))
    p.add_argument("dag_id")
    with_run(p)
    how = p.add_mutually_exclusive_group()
    how.add_argument("--queue", action="store_true", help="only queue the run, for a scheduler to pick up")
    how.add_argument("--wait", action="store_true", help="run it now in this process and wait for it")
    p.set_defaults(func=cmd_dags_trigger)
    p = with_files(dags.add_parser("next", help="the next scheduled times, in the DAG's zone, UTC and local time"))
    p.add_argument("dag_id")
    p.add_argument("-n", type=int, default=10, help="how many (default 10)")
    p.add_argument("--after", metavar="DATE", help="list the times after this date (default: now)")
    p.set_defaults(func=cmd_dags_next)
    p = with_files(dags.add_parser("backfill", help="run every scheduled time from --start to --end"))
    p.add_argument("dag_id")
    p.add_argument("--start", required=True, metavar="DATE", help="first logical date (included)")
    p.add_argument("--end", required=True, metavar="DATE", help="last logical date (included; a date means the whole day)")
    p.add_argument("--reprocess", choices=["none", "failed", "all"], default="none",
                   help="runs that exist already: keep them (none, the default), rerun the failed ones, or rerun all")
    p.add_argument("--executor", "-e", choices=["inline", "thread", "process"], help="default: the executor setting")
    p.set_defaults(func=cmd_dags_backfill)
    for name, func, text in (("pause", cmd_dags_pause, "start no new runs of a DAG"),
                             ("unpause", cmd_dags_unpause, "let the scheduler run a DAG again")):
        p = with_files(dags.add_parser(name, help=text))
        p.add_argument("dag_id")
        p.set_defaults(func=func)
    p = dags.add_parser("runs", help="a DAG's runs, newest first")
    p.add_argument("dag_id")
    p.add_argument("--limit", type=int, default=25)
    p.set_defaults(func=cmd_dags_runs)

    tasks = sub.add_parser("tasks", help="list, test, clear and mark tasks, and read their logs").add_subparsers(dest="tasks_command", required=True, metavar="ACTION")
    p = with_files(tasks.add_parser("list", help="a DAG's task ids in dependency order"))
    p.add_argument("dag_id")
    p.set_defaults(func=cmd_tasks_list)
    p = with_files(tasks.add_parser("test", help="run one task alone, recording nothing"))
    p.add_argument("dag_id")
    p.add_argument("task_id")
    p.add_argument("--logical-date", "-d")
    p.add_argument("--conf", "-c")
    p.set_defaults(func=cmd_tasks_test)
    p = with_files(tasks.add_parser("clear", help="make task instances run again (lists them; --yes clears)"))
    p.add_argument("dag_id")
    p.add_argument("-t", "--task", dest="task_ids", action="extend", nargs="+", metavar="TASK",
                   help="the tasks to clear (default: all)")
    p.add_argument("--start", metavar="DATE", help="runs with a logical date from this date")
    p.add_argument("--end", metavar="DATE", help="runs with a logical date up to this date (a date means the whole day)")
    p.add_argument("--run-id", "-r", help="only this run (instead of --start/--end)")
    p.add_argument("--downstream", action="store_true", help="their downstream tasks too")
    p.add_argument("--only-failed", action="store_true", help="only failed and upstream-failed task instances")
    p.add_argument("--yes", action="store_true", help="clear them (without it, only list them)")
    p.set_defaults(func=cmd_tasks_clear)
    p = with_files(tasks.add_parser("mark", help="set task instances of a run to success or failed"))
    p.add_argument("dag_id")
    p.add_argument("task_ids", nargs="+", metavar="TASK")
    p.add_argument("--run-id", "-r", required=True)
    p.add_argument("--state", required=True, choices=["success", "failed"])
    p.add_argument("--downstream", action="store_true", help="their downstream tasks too")
    p.set_defaults(func=cmd_tasks_mark)
    p = tasks.add_parser("logs", help="print a task's log files (every try)")
    p.add_argument("dag_id")
    p.add_argument("task_id")
    p.add_argument("--run-id", "-r", help="default: the latest run")
    p.add_argument("--try", dest="try_number", type=int, help="only this try")
    p.set_defaults(func=cmd_tasks_logs)

    p = sub.add_parser("schedule", help="run a notebook on a cron schedule: writes a one-task DAG file into dags_folder")
    p.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb file to run")
    p.add_argument("--cron", required=True, help='when, in the time zone, e.g. "0 7 * * *" or @daily')
    p.add_argument("--timezone", "--tz", metavar="TZ", help="IANA zone (default: default_timezone, else this machine's)")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE",
                   help="a notebook parameter (repeatable); the value is parsed as JSON when it can be, else kept as text")
    p.add_argument("--report", choices=["html", "none"], default="html",
                   help="write an HTML report next to the output notebook (default: html)")
    p.add_argument("--dag-id", help="default: report_<notebook name>")
    p.set_defaults(func=cmd_schedule)
    p = sub.add_parser("reports", help="a DAG's runs with their output notebooks and HTML reports")
    p.add_argument("dag_id")
    p.add_argument("--limit", type=int, default=25)
    p.set_defaults(func=cmd_reports)

    p = sub.add_parser("scheduler", help="run the scheduler daemon, or show which schedulers run")
    p.add_argument("action", nargs="?", choices=["run", "status"], default="run")
    p.add_argument("--exit-when-idle", action="store_true", help="return once no run is active and none is due")
    p.add_argument("--executor", "-e", choices=["inline", "thread", "process"])
    p.add_argument("--grace", type=float, default=60.0, help="seconds to let running tasks finish on SIGTERM")
    p.add_argument("-f", "--file", action="append", metavar="PATH", help="DAG files or folders (default: dags_folder)")
    p.set_defaults(func=cmd_scheduler)

    pools = sub.add_parser("pools", help="named limits on task slots running at once").add_subparsers(
        dest="pools_command", required=True, metavar="ACTION")
    pools.add_parser("list", help="pools with their slots and how many are occupied").set_defaults(func=cmd_pools_list)
    p = pools.add_parser("set", help="create or resize a pool")
    p.add_argument("name")
    p.add_argument("slots", type=int)
    p.add_argument("--description")
    p.set_defaults(func=cmd_pools_set)
    p = pools.add_parser("delete", help="remove a pool")
    p.add_argument("name")
    p.set_defaults(func=cmd_pools_delete)

    db = sub.add_parser("db", help="the metadata database")
    db.add_argument("db_command", choices=["init", "upgrade", "check", "reset"])
    db.add_argument("--yes", action="store_true", help="confirm reset")
    db.set_defaults(func=cmd_db)

    config = sub.add_parser("config", help="settings").add_subparsers(dest="config_command", required=True, metavar="ACTION")
    config.add_parser("show", help="every setting and its value").set_defaults(func=cmd_config_show)

    p = sub.add_parser("demo", help="run the demo pipeline and print where its outputs are")
    p.add_argument("--executor", "-e", choices=["inline", "thread", "process"])
    p.set_defaults(func=cmd_demo)
    sub.add_parser("version", help="print the version").set_defaults(func=cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NbflowError as exc:
        print(f"nbflow: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


def run() -> None:
    """The console entry point: ``main``, then a fast exit.

    Tearing down the interpreter after SQLAlchemy is loaded takes about 0.1 s, which is a fifth of a
    small ``nbflow dags test``; everything worth keeping is flushed first, and the executors have
    already stopped their workers.
    """
    import logging
    import os

    try:
        code = main()
    except SystemExit as exc:  # argparse and usage errors
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            code = 2
        else:
            code = exc.code or 0
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    run()
