"""``TaskGroup``: a named box of tasks. Task ids inside are prefixed with the group id
(``extract.load``) so that two groups can both have a ``load`` task; views draw a group as one
collapsible node."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbflow.context import current_dag, current_group, pop_group, push_group
from nbflow.errors import DagDefinitionError, TaskOutsideDagError

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.operators.base import BaseOperator


class TaskGroup:
    def __init__(
        self,
        group_id: str,
        *,
        dag: DAG | None = None,
        parent_group: TaskGroup | None = None,
        prefix_group_id: bool = True,
        tooltip: str = "",
    ) -> None:
        parent = parent_group if parent_group is not None else current_group()
        self.dag = dag or (parent.dag if parent is not None else None) or current_dag()
        if self.dag is None:
            raise TaskOutsideDagError(f"group {group_id}")
        self.group_id = f"{parent.group_id}.{group_id}" if parent is not None and parent.prefix_group_id else group_id
        if self.group_id in self.dag.task_groups:
            raise DagDefinitionError(
                f"a task group '{self.group_id}' already exists; give this one another group_id",
                self.dag.dag_id,
            )
        self.parent = parent
        self.prefix_group_id = prefix_group_id
        self.tooltip = tooltip
        self.task_ids: list[str] = []
        self.dag.task_groups[self.group_id] = self
        self._token: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_token": None}  # the authoring token belongs to the process that made it

    def add(self, task: BaseOperator) -> None:
        self.task_ids.append(task.task_id)
        if self.parent is not None:
            self.parent.add(task)

    def __enter__(self) -> TaskGroup:
        self._token = push_group(self)
        return self

    def __exit__(self, *exc: object) -> None:
        pop_group(self._token)

    @property
    def tasks(self) -> list[BaseOperator]:
        return [self.dag.task_dict[t] for t in self.task_ids]

    @property
    def roots(self) -> list[BaseOperator]:
        """Tasks of the group with no upstream inside the group."""
        inside = set(self.task_ids)
        return [t for t in self.tasks if not (t.upstream_task_ids & inside)]

    @property
    def leaves(self) -> list[BaseOperator]:
        """Tasks of the group with no downstream inside the group."""
        inside = set(self.task_ids)
        return [t for t in self.tasks if not (t.downstream_task_ids & inside)]

    def __rshift__(self, other: Any) -> Any:
        for leaf in self.leaves:
            leaf.set_downstream(other)
        return other

    def __lshift__(self, other: Any) -> Any:
        for root in self.roots:
            root.set_upstream(other)
        return other

    def __rrshift__(self, other: Any) -> TaskGroup:
        self << other
        return self

    def __rlshift__(self, other: Any) -> TaskGroup:
        self >> other
        return self

    def __repr__(self) -> str:
        return f"<TaskGroup {self.group_id!r} ({len(self.task_ids)} tasks)>"
