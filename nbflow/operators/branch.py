"""Operators that decide which downstream tasks run: branching and short-circuiting."""

from __future__ import annotations

from typing import Any, ClassVar

from nbflow.errors import TaskFailedError
from nbflow.operators.python import PythonOperator


class BranchPythonOperator(PythonOperator):
    """Its callable returns the task id (or list of ids, or a task group id) of the direct downstream
    tasks to run; the other direct downstream tasks are skipped. ``None`` skips them all."""

    kind: ClassVar[str] = "branch"

    def followed_task_ids(self, output: Any) -> set[str] | None:
        if output is None:
            return set()
        chosen = [output] if isinstance(output, str) else list(output)
        dag = self.dag
        followed: set[str] = set()
        for item in chosen:
            if not isinstance(item, str):
                raise self._bad(item)
            if dag is not None and item in dag.task_groups:
                followed.update(t.task_id for t in dag.task_groups[item].roots)
            elif item in self.downstream_task_ids:
                followed.add(item)
            else:
                raise self._bad(item)
        return followed

    def _bad(self, item: Any) -> TaskFailedError:
        choices = ", ".join(sorted(self.downstream_task_ids)) or "none"
        return TaskFailedError(
            self.dag_id or "", self.task_id,
            f"the branch returned {item!r}, which is not a direct downstream task. Return one of: {choices}",
        )


class ShortCircuitOperator(PythonOperator):
    """Runs its callable; a falsy result skips the downstream tasks. With
    ``ignore_downstream_trigger_rules=True`` (the default) every descendant is skipped; with False only
    the direct downstream tasks are, and the others follow their trigger rules."""

    kind: ClassVar[str] = "short_circuit"

    def __init__(self, *, ignore_downstream_trigger_rules: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ignore_downstream_trigger_rules = ignore_downstream_trigger_rules

    @property
    def skip_all_descendants(self) -> bool:  # type: ignore[override]
        return self.ignore_downstream_trigger_rules

    def followed_task_ids(self, output: Any) -> set[str] | None:
        return None if output else set()
