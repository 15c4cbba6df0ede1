"""``Label``: words on an edge, ``check >> Label("when valid") >> load``.

A label says why one task follows another, for whoever reads the graph; it never changes what runs
when. It stands between the two sides of ``>>`` (or ``<<``) and links every task on its left to every
task on its right, whichever side is given first, recording its text on each edge it makes
(``dag.get_edge_info(up, down)``, ``describe()["edge_labels"]``), which the graph views draw.
"""

from __future__ import annotations

from typing import Any

from nbflow.errors import DependencyError
from nbflow.helpers import Arrows
from nbflow.refs import OutputRef
from nbflow.taskgroup import TaskGroup


class Label(Arrows):
    """An edge label, as Airflow's ``airflow.utils.edgemodifier.Label``."""

    def __init__(self, label: str) -> None:
        if not isinstance(label, str) or not label.strip():
            raise DependencyError(f"Label({label!r}): give the words to show on the edge, a non-empty string")
        self.label = label
        self._upstream: list[Any] = []    # tasks, added by each task's own set_downstream
        self._downstream: list[Any] = []  # whatever was put on the right: tasks, outputs, groups, lists

    def _add_upstream(self, task: Any) -> None:
        """``task >> self``: called by the task, which has already checked what it is."""
        self._upstream.append(task)
        for downstream in self._downstream:
            task.set_downstream(downstream, edge_modifier=self)

    def set_upstream(self, others: Any) -> None:
        """Every task in ``others`` (a task, an output, a group or a list of them) before the label."""
        if isinstance(others, (list, tuple, set, frozenset)):
            for other in others:
                self.set_upstream(other)
        else:
            self._check(others, "before")
            others >> self  # each side's own >> knows its tasks, and comes back through _add_upstream

    def set_downstream(self, others: Any) -> None:
        """Every task in ``others`` after the label, linked to every task before it."""
        self._check(others, "after")
        self._downstream.append(others)
        for task in self._upstream:
            task.set_downstream(others, edge_modifier=self)

    def __repr__(self) -> str:
        return f"Label({self.label!r})"

    def _check(self, value: Any, side: str) -> None:
        """Refuse at once what cannot be on either side of an edge, rather than when the other side
        comes."""
        if isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                self._check(item, side)
        elif not (isinstance(value, (OutputRef, TaskGroup)) or callable(getattr(value, "set_downstream", None))):
            raise DependencyError(
                f"cannot put {value!r} ({type(value).__name__}) {side} {self!r}; use a task, the result "
                "of a @task call, a TaskGroup, or a list of these"
            )
