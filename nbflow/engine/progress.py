"""Progress bars for work a person sits and waits for: a backfill's runs, a big run's tasks.

``tqdm.auto`` draws them: a widget in a notebook, a line redrawn in place in a terminal (and plain
updates in a log). A run of a few tasks ends before a bar would help, so a run gets one only from
:data:`MIN_TASKS` tasks on; a backfill of more than one run always does.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from nbflow import observers

__all__ = ["MIN_TASKS", "backfill_bar", "run_bar"]

#: a run of this many tasks or more shows a bar while it is driven in the foreground
MIN_TASKS = 50
_FINISHED = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def _tqdm(total: int, desc: str, unit: str, file: Any = None, initial: int = 0) -> Any:
    from tqdm.auto import tqdm

    # mininterval keeps a 2,000-task run from redrawing 2,000 times; leave=True keeps the final line
    return tqdm(total=total, desc=desc, unit=unit, file=file if file is not None else sys.stderr,
                mininterval=0.2, leave=True, dynamic_ncols=True, initial=initial)


class _BackfillBar:
    """An ``on_progress(done, total, run_id)`` for :func:`nbflow.engine.runs.backfill`."""

    def __init__(self, desc: str, file: Any = None) -> None:
        self.desc, self.file = desc, file
        self.bar: Any = None

    def __call__(self, done: int, total: int, run_id: str | None = None) -> None:
        if self.bar is None:  # runs done before (a resumed backfill) show at once
            self.bar = _tqdm(total, self.desc, "run", self.file, initial=done)
        self.bar.update(done - self.bar.n)  # runs may end several at once; done is the count so far

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def backfill_bar(dag_id: str, file: Any = None) -> _BackfillBar:
    """A bar of a backfill's runs; call ``close()`` when the backfill returns."""
    return _BackfillBar(f"{dag_id} backfill", file)


class _RunBar:
    """Counts a run's tasks as the driver finishes them (through :mod:`nbflow.observers`)."""

    def __init__(self, dag_id: str, total: int, file: Any = None) -> None:
        self.dag_id, self.total, self.file = dag_id, total, file
        self.run_id: str | None = None
        self.done: set[str] = set()
        self.bar: Any = None
        self.stop: Callable[[], None] | None = None

    def start(self, run_id: str) -> None:
        self.run_id = run_id
        self.bar = _tqdm(self.total, f"{self.dag_id} {run_id}", "task", self.file)
        self.stop = observers.watch(self._notice, self.dag_id)

    def _notice(self, notice: observers.StateNotice) -> None:
        if notice.run_id != self.run_id or notice.task_id is None:
            return
        if notice.state in _FINISHED:
            if notice.task_id not in self.done:
                self.done.add(notice.task_id)
                if len(self.done) > self.bar.total:  # mapped tasks add instances as they expand
                    self.bar.total = len(self.done)
                self.bar.update(1)
        else:
            self.done.discard(notice.task_id)  # a retry: it is not done after all

    def close(self) -> None:
        if self.stop is not None:
            self.stop()
        if self.bar is not None:
            self.bar.close()


def run_bar(dag_id: str, task_count: int, progress: bool | None, file: Any = None) -> _RunBar | None:
    """A bar of one run's tasks, or None: ``progress`` None means "when the run is big"."""
    if progress is False or (progress is None and task_count < MIN_TASKS):
        return None
    return _RunBar(dag_id, task_count, file)
