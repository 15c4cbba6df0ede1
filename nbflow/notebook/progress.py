"""Per-cell progress: a callback after each executed code cell, and the log line the operator prints.

``progress(cell_index, cell_count, elapsed_seconds)``: ``cell_index`` is the 0-based position of the
cell among the code cells of the executed notebook (nbflow's injected cells included),
``cell_count`` their number, ``elapsed_seconds`` the time since the notebook started executing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Progress = Callable[[int, int, float], None]

#: the line views look for in a task log: ``nbflow: cell 3/7 done (1.2 s)``
LINE = "nbflow: cell {number}/{count} done ({elapsed:.1f} s)"


def print_progress(cell_index: int, cell_count: int, elapsed_seconds: float) -> None:
    """The operator's callback: one line in the task log per executed cell."""
    print(LINE.format(number=cell_index + 1, count=cell_count, elapsed=elapsed_seconds), flush=True)


class CellHook:
    """nbclient's ``on_cell_executed`` hook, turned into ``progress`` calls; counts the cells too."""

    def __init__(self, nb: Any, progress: Progress | None) -> None:
        self.progress = progress
        self.positions: dict[int, int] = {}
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                self.positions[index] = len(self.positions)
        self.executed = 0
        self.started = time.perf_counter()

    def __call__(self, cell: Any = None, cell_index: int = 0, execute_reply: Any = None, **_: Any) -> None:
        self.executed += 1
        if self.progress is None:
            return
        position = self.positions.get(cell_index, self.executed - 1)
        try:
            self.progress(position, len(self.positions), time.perf_counter() - self.started)
        except Exception:  # a failing progress callback must never fail the notebook
            pass


class ProgressFile:
    """Keeps ``<output notebook>.progress.json`` up to date: the structured twin of the log lines,
    for views that show a running notebook task (cell i of n, elapsed). Replaced atomically, so a
    reader never sees half a file."""

    def __init__(self, output_path: str) -> None:
        self.path = f"{output_path}.progress.json"

    def __call__(self, cell_index: int, cell_count: int, elapsed_seconds: float) -> None:
        import json
        import os
        from datetime import datetime, timezone

        data = {"cell": cell_index + 1, "cells": cell_count, "elapsed": round(elapsed_seconds, 3),
                "updated_at": datetime.now(timezone.utc).isoformat()}
        temporary = f"{self.path}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temporary, self.path)


def read_progress(output_path: str) -> dict[str, Any] | None:
    """The last progress of the notebook writing ``output_path``, or None if it has not started."""
    import json

    try:
        with open(f"{output_path}.progress.json", encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def both(*callbacks: Progress) -> Progress:
    def call(cell_index: int, cell_count: int, elapsed_seconds: float) -> None:
        for callback in callbacks:
            callback(cell_index, cell_count, elapsed_seconds)

    return call
