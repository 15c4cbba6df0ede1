"""References to the output of a task that has not run yet.

Calling a ``@task`` returns an :class:`OutputRef`; so does ``operator.output``. Passing one to another
task (directly or inside lists, tuples and dicts) makes a dependency, and at run time the reference is
replaced by the upstream task's real value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from nbflow.operators.base import BaseOperator


class OutputRef:
    """The (future) output of ``operator``, or of ``operator.output[key]`` when ``key`` is given."""

    __slots__ = ("operator", "key")

    def __init__(self, operator: BaseOperator, key: Any = None) -> None:
        self.operator = operator
        self.key = key

    @property
    def task_id(self) -> str:
        return self.operator.task_id

    def __getitem__(self, key: Any) -> OutputRef:
        if self.key is not None:
            raise TypeError("an output reference can be indexed once; index the value inside the task instead")
        return OutputRef(self.operator, key)

    def resolve(self, outputs: dict[str, Any]) -> Any:
        value = outputs[self.operator.task_id]
        if self.key is None:
            return value
        try:
            return value[self.key]
        except (KeyError, IndexError, TypeError) as exc:
            from nbflow.errors import TaskFailedError

            raise TaskFailedError(
                self.operator.dag_id or "", self.operator.task_id,
                f"its output has no item {self.key!r} (output type {type(value).__name__}); "
                "return a dict or list that contains it",
            ) from exc

    def as_setup(self) -> OutputRef:
        """Make the task behind this output a setup (see ``BaseOperator.as_setup``); returns the output."""
        self.operator.as_setup()
        return self

    def as_teardown(self, *, setups: Any = None, on_failure_fail_dagrun: bool | None = None) -> OutputRef:
        """Make the task behind this output a teardown (see ``BaseOperator.as_teardown``); returns the
        output, so ``s >> work() >> cleanup().as_teardown(setups=s)`` chains on."""
        self.operator.as_teardown(setups=setups, on_failure_fail_dagrun=on_failure_fail_dagrun)
        return self

    def __enter__(self) -> OutputRef:
        """``with create_cluster() >> delete_cluster(...):``: see ``BaseOperator.__enter__``."""
        self.operator.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.operator.__exit__(*exc)

    # Dependencies can be drawn with references as with operators: extract() >> load
    def __rshift__(self, other: Any) -> Any:
        return self.operator >> other

    def __lshift__(self, other: Any) -> Any:
        return self.operator << other

    def __rrshift__(self, other: Any) -> OutputRef:
        self.operator.__rrshift__(other)
        return self

    def __rlshift__(self, other: Any) -> OutputRef:
        self.operator.__rlshift__(other)
        return self

    def __repr__(self) -> str:
        suffix = f"[{self.key!r}]" if self.key is not None else ""
        return f"<output of {self.operator.task_id!r}{suffix}>"


def find_refs(value: Any, found: list[OutputRef] | None = None) -> list[OutputRef]:
    """Every OutputRef inside ``value``, looking through lists, tuples, sets and dicts."""
    found = [] if found is None else found
    if isinstance(value, OutputRef):
        found.append(value)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            find_refs(item, found)
    elif isinstance(value, dict):
        for key, item in value.items():
            find_refs(key, found)
            find_refs(item, found)
    return found


def resolve_refs(value: Any, outputs: dict[str, Any]) -> Any:
    """``value`` with each OutputRef replaced by the output it points at (containers are copied)."""
    return _map(value, lambda ref: ref.resolve(outputs))


def _map(value: Any, fn: Callable[[OutputRef], Any]) -> Any:
    if isinstance(value, OutputRef):
        return fn(value)
    if isinstance(value, list):
        return [_map(item, fn) for item in value]
    if isinstance(value, tuple):
        return type(value)(*(_map(item, fn) for item in value)) if hasattr(value, "_fields") else tuple(
            _map(item, fn) for item in value
        )
    if isinstance(value, (set, frozenset)):
        return type(value)(_map(item, fn) for item in value)
    if isinstance(value, dict):
        return {_map(key, fn): _map(item, fn) for key, item in value.items()}
    return value
