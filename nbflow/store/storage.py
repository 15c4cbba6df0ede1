"""Space used per DAG (store rows, log and artifact bytes), what retention would free, and files no
row points to (orphans: left by a run deleted by hand, a crash between a delete and its files, or an
earlier store). Behind ``nbflow storage``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from nbflow.paths import safe_path_part
from nbflow.store import schema
from nbflow.store.engine import read_connection
from nbflow.store.retention import Policy, doomed_runs, remove_tree, tree_size

if TYPE_CHECKING:
    from nbflow.store import Store

_run = schema.dag_run
#: the folder under artifacts_folder where notebooks run outside any task keep their outputs
#: (nbflow.notebook.execute): not a DAG's, never an orphan
LOOSE_NOTEBOOKS = "notebooks"


@dataclass
class DagUsage:
    """One DAG's share: its runs, their rows in the store, its log and artifact bytes, and the runs
    (and bytes of their files) the policy would delete."""

    dag_id: str
    runs: int = 0
    rows: int = 0
    log_bytes: int = 0
    artifact_bytes: int = 0
    freeable_runs: int = 0
    freeable_bytes: int = 0


def usage(store: Store, policy: Policy, *, logs_folder: str | Path, artifacts_folder: str | Path) -> list[DagUsage]:
    """Per DAG with runs or a stored definition, sorted by id."""
    logs, artifacts = Path(logs_folder), Path(artifacts_folder)
    found: dict[str, DagUsage] = {}

    def of(dag_id: str) -> DagUsage:
        return found.setdefault(dag_id, DagUsage(dag_id))

    with read_connection(store._engine, store.url) as conn:
        for (dag_id,) in conn.execute(select(schema.dag.c.dag_id)):
            of(dag_id)
        for dag_id, count in conn.execute(select(_run.c.dag_id, func.count()).group_by(_run.c.dag_id)):
            of(dag_id).runs = int(count)
            of(dag_id).rows += int(count)
        for table in (schema.task_instance, schema.task_try, schema.task_output, schema.task_xcom):
            counted = (select(_run.c.dag_id, func.count()).select_from(table.join(_run, table.c.run_pk == _run.c.id))
                       .group_by(_run.c.dag_id))
            for dag_id, count in conn.execute(counted):
                of(dag_id).rows += int(count)
    for entry in found.values():
        entry.log_bytes = tree_size(logs / safe_path_part(entry.dag_id))[1]
        entry.artifact_bytes = tree_size(artifacts / safe_path_part(entry.dag_id))[1]
    for run in doomed_runs(store, policy):
        entry = of(run.dag_id)
        entry.freeable_runs += 1
        for root in (logs, artifacts):
            entry.freeable_bytes += tree_size(root / safe_path_part(run.dag_id) / safe_path_part(run.run_id))[1]
    return sorted(found.values(), key=lambda entry: entry.dag_id)


def orphans(store: Store, *, logs_folder: str | Path, artifacts_folder: str | Path) -> list[Path]:
    """Files and folders under the log and artifact folders that belong to no run in the store: a run
    folder ``<root>/<dag>/<run>`` whose run is gone, or a stray file at the DAG or root level.

    The folders are listed before the store is read, so a run created meanwhile (its row comes
    before its files) is never taken for an orphan."""
    candidates: list[tuple[Path, str | None, str | None]] = []
    for root in (Path(logs_folder), Path(artifacts_folder)):
        if not root.is_dir():
            continue
        for dag_dir in sorted(root.iterdir()):
            if not dag_dir.is_dir() or dag_dir.is_symlink():
                candidates.append((dag_dir, None, None))
                continue
            if root == Path(artifacts_folder) and dag_dir.name == LOOSE_NOTEBOOKS:
                continue
            for run_dir in sorted(dag_dir.iterdir()):
                candidates.append((run_dir, dag_dir.name, run_dir.name))
    with read_connection(store._engine, store.url) as conn:
        known = {(safe_path_part(dag_id), safe_path_part(run_id))
                 for dag_id, run_id in conn.execute(select(_run.c.dag_id, _run.c.run_id))}
    return [path for path, dag_part, run_part in candidates
            if dag_part is None or (dag_part, run_part) not in known]


def delete_orphans(paths: Sequence[Path], *, logs_folder: str | Path, artifacts_folder: str | Path) -> tuple[int, int]:
    """Delete what :func:`orphans` found; files and bytes deleted. The roots themselves stay."""
    roots = {Path(logs_folder), Path(artifacts_folder)}
    files = size = 0
    for path in paths:
        removed, freed = remove_tree(path, prune_parent=path.parent not in roots)
        files += removed
        size += freed
    return files, size
