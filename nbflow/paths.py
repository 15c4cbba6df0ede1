"""Where a run's files go: one rule for log and artifact folders, so a task's log and its outputs
sit under the same names."""

from __future__ import annotations

import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")


def safe_path_part(text: str) -> str:
    """``text`` as one path component: run ids hold ':' and the like, which some tools mishandle."""
    return _UNSAFE.sub("_", text)


def task_folder(root: str | Path, dag_id: str, run_id: str, task_id: str) -> Path:
    """``root/<dag>/<run>/<task>``, each part made safe."""
    return Path(root) / safe_path_part(dag_id) / safe_path_part(run_id) / safe_path_part(task_id)
