"""Where a run's files go: one rule for log and artifact folders, so a task's log and its outputs
sit under the same names."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")


def safe_path_part(text: str) -> str:
    """``text`` as one path component: run ids hold ':' and the like, which some tools mishandle."""
    return _UNSAFE.sub("_", text)


def task_folder(root: str | Path, dag_id: str, run_id: str, task_id: str) -> Path:
    """``root/<dag>/<run>/<task>``, each part made safe."""
    return Path(root) / safe_path_part(dag_id) / safe_path_part(run_id) / safe_path_part(task_id)


#: the artifacts folder of the call running in this context, when it is not the artifacts_folder
#: setting of this process: a try run on a Dask worker writes where its host said (see
#: :func:`artifacts_folder`)
_artifacts_here: ContextVar[Path | None] = ContextVar("nbflow_artifacts_folder", default=None)


def artifacts_folder(configured: str | Path) -> Path:
    """The folder a running task writes its artifacts under: ``configured`` (the artifacts_folder
    setting) unless the call was given another. A try on a Dask worker is: the worker's own settings
    know nothing of the host whose task it runs, so the executor names the host's folder (shared
    storage) or a temporary one whose files it sends back to the host."""
    return _artifacts_here.get() or Path(configured)


@contextmanager
def using_artifacts_folder(path: str | Path) -> Iterator[None]:
    """Make :func:`artifacts_folder` answer ``path`` for the calls made in this context."""
    token = _artifacts_here.set(Path(path))
    try:
        yield
    finally:
        _artifacts_here.reset(token)
