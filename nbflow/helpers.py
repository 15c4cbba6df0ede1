"""Wiring helpers: ``chain`` and ``cross_downstream``."""

from __future__ import annotations

from typing import Any

from nbflow.errors import DependencyError


def chain(*tasks: Any) -> None:
    """``chain(a, b, [c, d], e)`` is ``a >> b >> [c, d] >> e``; two lists side by side must have the
    same length and are linked pairwise, as in Airflow."""
    for up, down in zip(tasks, tasks[1:]):
        if isinstance(up, (list, tuple)) and isinstance(down, (list, tuple)):
            if len(up) != len(down):
                raise DependencyError(
                    f"chain() got lists of {len(up)} and {len(down)} tasks side by side; lists next to "
                    "each other must have the same length (use cross_downstream to link all pairs)"
                )
            for a, b in zip(up, down):
                a >> b
        else:
            up >> down


def cross_downstream(from_tasks: list[Any], to_tasks: list[Any]) -> None:
    """Every task of ``from_tasks`` upstream of every task of ``to_tasks``."""
    for task in from_tasks:
        task >> list(to_tasks)


class Arrows:
    """``a >> b``, ``a << b``, ``[a, b] >> c`` and ``c << [a, b]`` for anything that can
    ``set_downstream`` and ``set_upstream``: tasks, task groups and labels wire the same way."""

    def set_downstream(self, others: Any) -> None:
        raise NotImplementedError

    def set_upstream(self, others: Any) -> None:
        raise NotImplementedError

    def __rshift__(self, other: Any) -> Any:
        self.set_downstream(other)
        return other

    def __lshift__(self, other: Any) -> Any:
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: Any) -> Any:
        # [a, b] >> self
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: Any) -> Any:
        # [a, b] << self
        self.set_downstream(other)
        return self
