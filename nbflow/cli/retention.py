"""``nbflow db clean`` (delete old runs with their rows and files, as in Airflow) and ``nbflow storage``
(space used per DAG, what the retention settings would free, orphan files)."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from nbflow.cli.common import _local, _open_store, _plural, _require_dag, _settings

_DURATION = re.compile(r"^\s*(\d+)\s*(d|h|w)\s*$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def duration(text: str) -> timedelta:
    """``30d``, ``12h`` or ``2w`` (the argparse type of ``--older-than``)."""
    found = _DURATION.match(text)
    if found is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: write a whole number and a unit, "
                                         "as 30d (days), 12h (hours) or 2w (weeks)")
    return int(found[1]) * _UNITS[found[2]]


def add_parsers(sub: Any, db: Any) -> None:
    """``db clean`` under ``db``'s actions, and ``storage`` under the top-level commands."""
    p = db.add_parser("clean", help="delete finished runs with their task rows, outputs, logs and artifacts: "
                                    "older than --older-than/--before, else as the retention settings say")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--older-than", type=duration, metavar="AGE",
                      help="runs that ended longer ago than this, as 30d, 12h or 2w (whatever their state)")
    when.add_argument("--before", metavar="DATE", help="runs that ended before this date (local time unless it has an offset)")
    p.add_argument("--dag", metavar="DAG", help="only this DAG's runs")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    p.add_argument("--yes", action="store_true", help="delete without asking")
    p.set_defaults(func=cmd_db_clean)

    p = sub.add_parser("storage", help="space used per DAG (store rows, logs, artifacts) and what retention would free")
    p.add_argument("--orphans", action="store_true", help="list files under the log and artifact folders that no run owns")
    p.add_argument("--delete", action="store_true", help="with --orphans: delete them")
    p.add_argument("--yes", action="store_true", help="with --delete: delete without asking")
    p.set_defaults(func=cmd_storage)


def _policy(args: argparse.Namespace, settings: Any, now: datetime) -> tuple[Any, str]:
    from nbflow.store.retention import Policy
    from nbflow.timetables import local_timezone, parse_date

    if args.older_than is not None:
        cutoff = now - args.older_than
        return Policy.ended_before(cutoff, args.dag), f"runs that ended before {_local(cutoff)}"
    if args.before is not None:
        cutoff = parse_date(args.before, local_timezone(), field="--before").astimezone(UTC)
        return Policy.ended_before(cutoff, args.dag), f"runs that ended before {_local(cutoff)}"
    return Policy.from_settings(settings, now, args.dag), _describe_settings(settings)


def _describe_settings(settings: Any) -> str:
    if not settings.retention_days:
        kept = "retention_days = 0: runs are kept whatever their age"
    else:
        failed = (f"failed ones after {settings.retention_failed_days} days" if settings.retention_failed_days
                  else "failed ones kept")
        kept = f"runs older than retention_days = {settings.retention_days}, {failed}"
    most = settings.retention_max_runs_per_dag
    return kept + (f", past the newest {most} of each DAG" if most else "")


def confirm(question: str) -> bool | None:
    """The answer to a yes/no question, or None when standard input is not a terminal to ask on."""
    if not sys.stdin.isatty():
        return None
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def cmd_db_clean(args: argparse.Namespace) -> int:
    from nbflow.store.retention import clean, doomed_runs, tree_size
    from nbflow.paths import safe_path_part
    from pathlib import Path

    settings = _settings()
    now = datetime.now(UTC)
    store = _open_store()
    try:
        if args.dag is not None:
            _require_dag(argparse.Namespace(dag_id=args.dag, file=None), store)
        policy, what = _policy(args, settings, now)
        doomed = doomed_runs(store, policy)
        if not doomed:
            print(f"nothing to delete ({what}; active runs and each DAG's last run are kept)")
            return 0
        size = sum(tree_size(Path(root) / safe_path_part(run.dag_id) / safe_path_part(run.run_id))[1]
                   for run in doomed for root in (settings.logs_folder, settings.artifacts_folder))
        summary = f"{_plural(len(doomed), 'run')} ({what}), {_bytes(size)} of logs and artifacts"
        if args.dry_run:
            print(f"would delete {summary}:")
            for run in doomed:
                print(f"  {run.dag_id:<24} {run.run_id:<44} {run.state:<8} ended {_local(run.ended)}"
                      + ("  (past retention_max_runs_per_dag)" if run.reason == "max_runs" else ""))
            return 0
        refused = _refused(args, summary, "db clean", "add --yes to delete them (or --dry-run to list them)")
        if refused is not None:
            return refused
        report = clean(store, policy, logs_folder=settings.logs_folder, artifacts_folder=settings.artifacts_folder)
    finally:
        store.close()
    rows = sum(report.rows.values())
    print(f"deleted {_plural(len(report.runs), 'run')}, {_plural(rows, 'row')} and "
          f"{_plural(report.files, 'file')} ({_bytes(report.bytes)})")
    return 0


def cmd_storage(args: argparse.Namespace) -> int:
    from nbflow.store.retention import Policy
    from nbflow.store.storage import delete_orphans, orphans, usage

    if args.delete and not args.orphans:
        print("nbflow: error: storage --delete deletes orphan files: give it with --orphans", file=sys.stderr)
        return 2
    if args.yes and not args.delete:
        print("nbflow: error: storage --yes confirms --orphans --delete: give it with them", file=sys.stderr)
        return 2
    settings = _settings()
    folders = {"logs_folder": settings.logs_folder, "artifacts_folder": settings.artifacts_folder}
    store = _open_store()
    try:
        if args.orphans:
            found = orphans(store, **folders)
            return _orphans(found, args, folders, delete_orphans)
        rows = usage(store, Policy.from_settings(settings, datetime.now(UTC)), **folders)
    finally:
        store.close()
    if not rows:
        print("no DAGs or runs in the store")
        return 0
    print(f"{'dag':<28} {'runs':>6} {'rows':>8} {'logs':>10} {'artifacts':>10}  retention would free")
    total = [0, 0, 0, 0, 0, 0]
    for row in rows:
        free = f"{_plural(row.freeable_runs, 'run')}, {_bytes(row.freeable_bytes)}" if row.freeable_runs else "-"
        print(f"{row.dag_id:<28} {row.runs:>6} {row.rows:>8} {_bytes(row.log_bytes):>10} "
              f"{_bytes(row.artifact_bytes):>10}  {free}")
        for i, value in enumerate((row.runs, row.rows, row.log_bytes, row.artifact_bytes, row.freeable_runs,
                                   row.freeable_bytes)):
            total[i] += value
    print(f"{'total':<28} {total[0]:>6} {total[1]:>8} {_bytes(total[2]):>10} {_bytes(total[3]):>10}  "
          f"{_plural(total[4], 'run')}, {_bytes(total[5])}")
    print(f"retention: {_describe_settings(settings)}; `nbflow db clean` applies it now, "
          f"scheduler hosts every {settings.retention_interval:g} s" if settings.retention_interval else
          f"retention: {_describe_settings(settings)}; retention_interval = 0: only `nbflow db clean` applies it")
    return 0


def _orphans(found: list[Any], args: argparse.Namespace, folders: dict[str, Any], delete: Any) -> int:
    from nbflow.store.retention import tree_size

    if not found:
        print(f"no orphan files under {folders['logs_folder']} or {folders['artifacts_folder']}")
        return 0
    size = 0
    for path in found:
        files, used = tree_size(path)
        size += used
        print(f"{path}  ({_plural(files, 'file')}, {_bytes(used)})")
    summary = f"{_plural(len(found), 'orphan')}, {_bytes(size)}"
    if not args.delete:
        print(f"{summary}; `nbflow storage --orphans --delete` deletes them")
        return 0
    refused = _refused(args, summary, "storage --orphans --delete", "add --yes")
    if refused is not None:
        return refused
    files, freed = delete(found, **folders)
    print(f"deleted {_plural(files, 'file')} ({_bytes(freed)})")
    return 0


def _refused(args: argparse.Namespace, summary: str, command: str, fix: str) -> int | None:
    """The exit code when a deletion is not confirmed (``--yes`` or an answer at the terminal), else None."""
    if args.yes:
        return None
    answer = confirm(f"delete {summary}?")
    if answer is None:
        print(f"nbflow: error: {command} would delete {summary}; standard input is not a terminal to "
              f"confirm on: {fix}", file=sys.stderr)
        return 2
    if not answer:
        print("nothing deleted")
        return 1
    return None


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
