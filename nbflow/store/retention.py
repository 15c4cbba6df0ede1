"""Retention: which finished runs are past the time (or count) they are kept, and deleting them.

A run is deleted whole: its rows in every table keyed by it (task instances, tries, outputs, pushed
values, its events; asset events it consumed stay consumed) and its files, the log and artifact
folders ``<root>/<dag>/<run>`` that :mod:`nbflow.paths` names, plus any file a row points to in a
folder of that run. Runs still queued or running are never touched, nor each DAG's last run (the
newest created) and its newest scheduled run, whose logical date is where the schedule goes on from:
without it, a DAG with catchup would run its whole history again.

Deletion goes in small batches, one short transaction each, so that no host waits on a long lock;
several hosts may clean at once (on PostgreSQL, rows another host is deleting are skipped, on SQLite
transactions take turns) and a run deleted by another host in between is simply not there any more.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, or_, select, update

from nbflow.paths import safe_path_part
from nbflow.store import schema
from nbflow.store.engine import read_connection, write_transaction

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from nbflow.settings import Settings
    from nbflow.store import Store

log = logging.getLogger(__name__)

#: runs deleted per transaction
BATCH_SIZE = 100
#: the states a run may be deleted in; queued and running runs are in use
FINISHED = ("success", "failed")

_run, _ti, _try = schema.dag_run, schema.task_instance, schema.task_try
_output, _xcom, _event, _taken = schema.task_output, schema.task_xcom, schema.event, schema.asset_dag_event
#: the tables whose rows belong to one run by its pk, children first
_RUN_TABLES = (_xcom, _output, _try, _ti)


@dataclass(frozen=True)
class Policy:
    """Which finished runs go: successful ones that ended before ``before``, failed ones that ended
    before ``failed_before`` (None: never by age), and those past the newest ``max_runs`` of their
    DAG (0: no limit); only DAG ``dag_id`` when given."""

    before: datetime | None = None
    failed_before: datetime | None = None
    max_runs: int = 0
    dag_id: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, now: datetime, dag_id: str | None = None) -> Policy:
        """The retention settings at ``now``: ``retention_days`` 0 keeps every run by age."""
        days, failed_days = settings.retention_days, settings.retention_failed_days
        return cls(
            before=now - timedelta(days=days) if days else None,
            failed_before=now - timedelta(days=failed_days) if days and failed_days else None,
            max_runs=settings.retention_max_runs_per_dag,
            dag_id=dag_id,
        )

    @classmethod
    def ended_before(cls, cutoff: datetime, dag_id: str | None = None) -> Policy:
        """Every finished run that ended before ``cutoff``, whatever its state (``db clean --before``)."""
        return cls(before=cutoff, failed_before=cutoff, dag_id=dag_id)

    @property
    def deletes_nothing(self) -> bool:
        return self.before is None and self.failed_before is None and not self.max_runs


@dataclass(frozen=True)
class DoomedRun:
    """A run the policy deletes, and why: ``"age"`` or ``"max_runs"``."""

    pk: int
    dag_id: str
    run_id: str
    state: str
    ended: datetime | None
    reason: str


@dataclass
class CleanReport:
    """What a clean deleted: the runs, rows per table, files and their bytes; ``more`` when a batch
    was full, so more runs may be due."""

    runs: list[DoomedRun] = field(default_factory=list)
    rows: Counter[str] = field(default_factory=Counter)
    files: int = 0
    bytes: int = 0
    more: bool = False


def _ended() -> Any:
    """When a run counts as ended: its end, else the latest thing known of it."""
    return func.coalesce(_run.c.end_date, _run.c.start_date, _run.c.queued_at, _run.c.logical_date)


def doomed_runs(store: Store, policy: Policy, *, limit: int | None = None) -> list[DoomedRun]:
    """The runs ``policy`` deletes, oldest first (at most ``limit``)."""
    if policy.deletes_nothing:
        return []
    ranked = select(
        _run.c.id, _run.c.dag_id, _run.c.run_id, _run.c.state, _run.c.run_type, _ended().label("ended"),
        # 1 is the DAG's newest run; runs past max_runs have a higher number
        func.row_number().over(partition_by=_run.c.dag_id, order_by=_run.c.id.desc()).label("newest"),
        # 1 (among scheduled runs) is the one the schedule goes on from
        func.row_number().over(partition_by=(_run.c.dag_id, _run.c.run_type),
                               order_by=(_run.c.logical_date.desc(), _run.c.id.desc())).label("newest_of_type"),
    )
    if policy.dag_id is not None:
        ranked = ranked.where(_run.c.dag_id == policy.dag_id)
    runs = ranked.subquery()
    old = []
    if policy.before is not None:
        old.append(and_(runs.c.state == "success", runs.c.ended < policy.before))
    if policy.failed_before is not None:
        old.append(and_(runs.c.state == "failed", runs.c.ended < policy.failed_before))
    if policy.max_runs:
        old.append(runs.c.newest > policy.max_runs)
    query = (
        select(runs)
        .where(runs.c.state.in_(FINISHED), runs.c.newest > 1,
               or_(runs.c.run_type != "scheduled", runs.c.newest_of_type > 1), or_(*old))
        .order_by(runs.c.id)
    )
    if limit is not None:
        query = query.limit(limit)
    with read_connection(store._engine, store.url) as conn:
        rows = conn.execute(query).mappings().all()
    found = []
    for row in rows:
        ended = row["ended"]
        cutoff = policy.before if row["state"] == "success" else policy.failed_before
        by_age = cutoff is not None and ended is not None and ended < cutoff
        found.append(DoomedRun(int(row["id"]), row["dag_id"], row["run_id"], row["state"], ended,
                               "age" if by_age else "max_runs"))
    return found


def clean(
    store: Store,
    policy: Policy,
    *,
    logs_folder: str | Path,
    artifacts_folder: str | Path,
    batch_size: int = BATCH_SIZE,
    max_batches: int | None = None,
) -> CleanReport:
    """Delete the runs ``policy`` names with their rows and files, ``batch_size`` runs per
    transaction, up to ``max_batches`` batches (None: until none is left)."""
    report = CleanReport()
    batches = 0
    while max_batches is None or batches < max_batches:
        doomed = doomed_runs(store, policy, limit=batch_size)
        if not doomed:
            report.more = False
            break
        batches += 1
        deleted = delete_runs(store, doomed, logs_folder=logs_folder, artifacts_folder=artifacts_folder)
        report.runs += deleted.runs
        report.rows.update(deleted.rows)
        report.files += deleted.files
        report.bytes += deleted.bytes
        report.more = len(doomed) >= batch_size
        if not deleted.runs:
            # every one was taken by another host or became active meanwhile: look again next time
            break
    return report


def delete_runs(
    store: Store, runs: Sequence[DoomedRun], *, logs_folder: str | Path, artifacts_folder: str | Path
) -> CleanReport:
    """Delete ``runs`` (one transaction) that are still finished and still there, then their files."""
    report = CleanReport()
    if not runs:
        return report
    wanted = {run.pk: run for run in runs}
    with write_transaction(store._engine, store.url) as conn:
        lock = select(_run.c.id).where(_run.c.id.in_(list(wanted)), _run.c.state.in_(FINISHED))
        if conn.dialect.name != "sqlite":
            # a row another host is deleting is skipped rather than waited for
            lock = lock.with_for_update(skip_locked=True)
        pks = [int(pk) for pk in conn.execute(lock).scalars()]
        if not pks:
            return report
        paths = _row_paths(conn, pks)
        for table in _RUN_TABLES:
            report.rows[table.name] += conn.execute(delete(table).where(table.c.run_pk.in_(pks))).rowcount
        conn.execute(update(_taken).where(_taken.c.run_pk.in_(pks)).values(run_pk=None))
        gone = [wanted[pk] for pk in pks]
        for dag_id in {run.dag_id for run in gone}:
            run_ids = [run.run_id for run in gone if run.dag_id == dag_id]
            report.rows[_event.name] += conn.execute(
                delete(_event).where(_event.c.dag_id == dag_id, _event.c.run_id.in_(run_ids))
            ).rowcount
        report.rows[_run.name] += conn.execute(delete(_run).where(_run.c.id.in_(pks))).rowcount
    report.runs = gone
    shared = _folders_still_used(store, gone)
    roots = [Path(logs_folder), Path(artifacts_folder)]
    for run in gone:
        folders = {root / safe_path_part(run.dag_id) / safe_path_part(run.run_id) for root in roots}
        folders |= {folder for path in paths.get(run.pk, ()) if (folder := _run_folder_of(path, run)) is not None}
        if (safe_path_part(run.dag_id), safe_path_part(run.run_id)) in shared:
            continue  # another run's files live under the same names
        for folder in folders:
            files, size = remove_tree(folder)
            report.files += files
            report.bytes += size
    return report


def _row_paths(conn: Connection, pks: list[int]) -> dict[int, list[str]]:
    """The files the rows of runs ``pks`` point to: logs of instances and tries, stored outputs."""
    paths: dict[int, list[str]] = {}
    for table, column in ((_ti, _ti.c.log_path), (_try, _try.c.log_path),
                          (_output, _output.c.artifact_path), (_xcom, _xcom.c.artifact_path)):
        for pk, path in conn.execute(select(table.c.run_pk, column).where(table.c.run_pk.in_(pks), column.is_not(None))):
            paths.setdefault(int(pk), []).append(path)
    return paths


def _run_folder_of(path: str, run: DoomedRun) -> Path | None:
    """The run's folder in ``path`` (``.../<dag>/<run>/...`` as nbflow writes them), or None when
    the path is laid out otherwise: such a file is not known to be the run's alone."""
    parts = Path(path).parts
    dag_part, run_part = safe_path_part(run.dag_id), safe_path_part(run.run_id)
    for index in range(len(parts) - 2, 0, -1):
        if parts[index - 1] == dag_part and parts[index] == run_part:
            return Path(*parts[: index + 1])
    return None


def _folders_still_used(store: Store, runs: Iterable[DoomedRun]) -> set[tuple[str, str]]:
    """Folder names of ``runs`` that a remaining run also maps to (ids that differ only in characters
    :func:`safe_path_part` replaces). ``_`` matches one character in LIKE, so each safe name is a
    pattern for every id that could share it."""
    names = {(safe_path_part(run.dag_id), safe_path_part(run.run_id)) for run in runs}
    shared = set()
    with read_connection(store._engine, store.url) as conn:
        for dag_part, run_part in names:
            rows = conn.execute(
                select(_run.c.dag_id, _run.c.run_id).where(_run.c.dag_id.like(dag_part), _run.c.run_id.like(run_part))
            ).all()
            if any((safe_path_part(d), safe_path_part(r)) == (dag_part, run_part) for d, r in rows):
                shared.add((dag_part, run_part))
    return shared


def remove_tree(path: Path, *, prune_parent: bool = True) -> tuple[int, int]:
    """Delete ``path`` (a folder or a file); how many files and bytes went. A path already gone (another
    host deleted it first) is no error; the emptied parent folder (a DAG's) goes too unless
    ``prune_parent`` is false."""
    files, size = tree_size(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, onerror=_gone_is_fine)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    if prune_parent:
        try:
            path.parent.rmdir()  # the DAG's folder, once its last run is gone
        except OSError:
            pass
    return files, size


def _gone_is_fine(function: Any, path: str, exc_info: Any) -> None:
    if not isinstance(exc_info[1], FileNotFoundError):
        log.warning("retention: could not delete %s: %s", path, exc_info[1])


def tree_size(path: Path) -> tuple[int, int]:
    """Files and bytes under ``path`` (0, 0 when it does not exist); links are not followed."""
    try:
        if not path.is_dir() or path.is_symlink():
            return (1, path.lstat().st_size) if path.exists() or path.is_symlink() else (0, 0)
    except OSError:
        return 0, 0
    files = size = 0
    for folder, _dirs, names in os.walk(path):
        for name in names:
            try:
                size += os.lstat(os.path.join(folder, name)).st_size
                files += 1
            except OSError:
                pass
    return files, size
