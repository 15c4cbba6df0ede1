"""Kernels for a run's notebook tasks, started the moment the run is known rather than when each
task begins.

A cold ``nbflow dags test`` of a few short notebooks spends most of its time starting kernels and
importing papermill; started here, before the run is even written to the store, the kernels come up
on the machine's other cores while this process imports and plans. One kernel is started per
notebook task (up to ``parallelism``), each used once, as a task's own kernel would be.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nbflow.notebook import pool as _pool

#: executor names whose tasks run in this process, where kernels started here can serve them
IN_PROCESS_EXECUTORS = frozenset({"thread", "inline"})


def notebook_kernel(path: str | os.PathLike[str]) -> str | None:
    """The kernel the notebook at ``path`` names in its kernelspec, read as plain JSON (nbformat and
    papermill take longer to import than a kernel takes to start); None when it names none or
    cannot be read (running it says why)."""
    try:
        with open(path, encoding="utf-8") as handle:
            metadata = json.load(handle).get("metadata") or {}
        name = (metadata.get("kernelspec") or {}).get("name")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) and name else None


def kernels_needed(dag: Any) -> Counter[str]:
    """How many kernels of each name the notebook tasks of ``dag`` will ask for, as far as is known
    before the run: a notebook path made by a template is left out."""
    from nbflow.operators.notebook import NotebookOperator

    needed: Counter[str] = Counter()
    for task in dag.task_dict.values():
        if not isinstance(task, NotebookOperator):
            continue
        if task.runs_with is not None and task.runs_with not in IN_PROCESS_EXECUTORS:
            continue  # it asks for an executor whose tries leave this process
        if "{{" in task.notebook or "{%" in task.notebook:
            continue
        name = task.kernel_name or notebook_kernel(task.notebook) or "python3"
        needed[name] += 1
    return needed


def runs_here(executor: str | None) -> bool:
    """Whether tasks run in this process with the executor ``executor`` (a name, or None for the
    ``executor`` setting), so that kernels started here are the ones they use."""
    from nbflow.settings import get_settings

    name = executor or get_settings().executor
    return name in ("", "auto") or name in IN_PROCESS_EXECUTORS


@contextmanager
def prestarted_kernels(dag: Any, executor: str | None = None) -> Iterator[_pool.KernelPool | None]:
    """Start the kernels ``dag``'s notebook tasks need now, and make their pool the process's pool
    for the ``with`` block; on leaving it, kernels no task took are stopped (also when the run
    failed before reaching them). Does nothing when the DAG has no notebook task or its tasks run
    in other processes."""
    from nbflow.settings import get_settings

    needed = kernels_needed(dag) if runs_here(executor) else Counter()
    if not needed:
        yield None
        return
    # size 0: the run's own kernels, and no spare one started after the last is taken
    pool = _pool.KernelPool(size=0)
    parallelism = get_settings().parallelism
    for name, count in needed.items():
        pool.warm(name, count=min(count, parallelism))
    with _pool.use_default_pool(pool):
        try:
            yield pool
        finally:
            pool.shutdown()
