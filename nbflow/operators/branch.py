"""Operators that decide which downstream tasks run: branching and short-circuiting."""

from __future__ import annotations

from typing import Any, ClassVar, Iterable

from nbflow.errors import TaskFailedError
from nbflow.operators.base import BaseOperator
from nbflow.operators.python import PythonOperator


def chosen_downstream(task: BaseOperator, output: Any) -> set[str]:
    """The direct downstream task ids meant by a branch's ``output``: a task id, a task group id
    (its roots), a list of these, or None (none of them). Anything else fails the branch task with
    the ids it could have chosen, since running the wrong branch silently is worse than stopping."""
    if output is None:
        return set()
    chosen = [output] if isinstance(output, str) else list(output)
    dag = task.dag
    followed: set[str] = set()
    for item in chosen:
        if not isinstance(item, str):
            raise _bad(task, item)
        if dag is not None and item in dag.task_groups:
            followed.update(t.task_id for t in dag.task_groups[item].roots)
        elif item in task.downstream_task_ids:
            followed.add(item)
        else:
            raise _bad(task, item)
    return followed


def _bad(task: BaseOperator, item: Any) -> TaskFailedError:
    choices = ", ".join(sorted(task.downstream_task_ids)) or "none"
    return TaskFailedError(
        task.dag_id or "", task.task_id,
        f"the branch returned {item!r}, which is not a direct downstream task. Return one of: {choices}",
    )


class BranchPythonOperator(PythonOperator):
    """Its callable returns the task id (or list of ids, or a task group id) of the direct downstream
    tasks to run; the other direct downstream tasks are skipped. ``None`` skips them all."""

    kind: ClassVar[str] = "branch"

    def followed_task_ids(self, output: Any) -> set[str] | None:
        return chosen_downstream(self, output)


class BaseBranchOperator(BaseOperator):
    """Subclass it and implement :meth:`choose_branch` to branch on anything but a Python callable
    (the calendar, the run's kind): the ids it returns run, the other direct downstream tasks are
    skipped, and their own downstream follow their trigger rules. The chosen ids are the output."""

    kind: ClassVar[str] = "branch"

    def choose_branch(self, context: dict[str, Any]) -> str | Iterable[str] | None:
        """The direct downstream task (or task group) ids to run; an empty list or None skips them all."""
        raise NotImplementedError(f"{type(self).__name__} must implement choose_branch(context)")

    def execute(self, context: dict[str, Any]) -> list[str]:
        chosen = self.choose_branch(context)
        chosen_list = [] if chosen is None else [chosen] if isinstance(chosen, str) else list(chosen)
        chosen_downstream(self, chosen_list)  # fail here, in the task's own log, on an id that is not downstream
        return chosen_list

    def followed_task_ids(self, output: Any) -> set[str] | None:
        return chosen_downstream(self, output)


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
