"""DAG sync: what the store knows of each DAG, written from the DAG objects a host has loaded.

Every host writes the same rows for the same DAG (its definition, schedule, zone, paused flag kept),
so views that read the store see one picture whichever host loaded the file last; a file that failed
has its import error recorded instead, and the error goes when the file loads again or is deleted.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.engine.discovery import DagBag
    from nbflow.store import Store


def source_kind(dag: DAG) -> str:
    """Where the definition lives: ``file``, ``notebook`` (a ``%%dag`` notebook) or ``interactive``."""
    if dag.source_kind:
        return dag.source_kind
    fileloc = dag.fileloc or ""
    if fileloc.endswith(".ipynb"):
        return "notebook"
    if fileloc.endswith(".py") and os.path.exists(fileloc) and "ipykernel" not in fileloc:
        return "file"
    return "interactive"


def sync_dag(store: Store, dag: DAG, source_kind: str = "file") -> None:
    """Write the DAG's definition to the store, keeping whether it is paused."""
    from nbflow.timetables import timezone_name

    store.upsert_dag(
        dag.dag_id,
        fileloc=dag.fileloc,
        source_kind=source_kind,
        schedule=dag.timetable.description,
        timezone=timezone_name(dag.timezone),
        description=dag.description,
        owner=dag.owner,
        tags=list(dag.tags),
        max_active_runs=dag.max_active_runs,
        max_active_tasks=dag.max_active_tasks,
        definition=dag.describe(),
        last_parsed_at=datetime.now(timezone.utc),
    )


def sync(bag: DagBag, store: Store) -> None:
    """Record the DAGs and import errors of ``bag`` in the store; clear errors of files that now load."""
    for built in bag.dags.values():
        sync_dag(store, built, source_kind="notebook" if str(built.fileloc).endswith(".ipynb") else "file")
    for fileloc in bag.files:
        if fileloc in bag.failures:
            failure = bag.failures[fileloc]
            store.record_import_error(fileloc, failure.summary, failure.traceback)
        else:
            store.clear_import_errors(fileloc)
    for folder in bag.folders:  # a folder that loads now was perhaps missing before
        if folder not in bag.failures:
            store.clear_import_errors(folder)
    if bag.folders:
        inside = tuple(folder.rstrip(os.sep) + os.sep for folder in bag.folders)
        current = set(bag.files)
        for error in store.list_import_errors():
            if error["fileloc"] not in current and str(error["fileloc"]).startswith(inside):
                store.clear_import_errors(error["fileloc"])  # its file was deleted or is no DAG file now
