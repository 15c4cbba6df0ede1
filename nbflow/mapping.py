"""Dynamic task mapping: one task that becomes as many task instances as a list has items.

``add.expand(x=[1, 2, 3])`` (or over another task's output, known only when the run gets there)
adds one task to the DAG; when the run reaches it, the driver counts the items and makes one task
instance per item, numbered by ``map_index`` from 0. Each instance is claimed, retried, cleared and
logged on its own; downstream tasks see the task as done when all its instances are, and receive
the list of their outputs.

The task itself is built when the DAG is: its mapped arguments hold a :class:`MapSlot` until an
instance runs, and the worker puts that instance's values in their place (:func:`apply_values`), so
templates, callbacks and options work as for any task.

Instances are named ``task_id[map_index]`` inside the engine (:func:`ti_key`); the store keeps the
task id and the map index in columns of their own.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Mapping

from nbflow.errors import DagDefinitionError, NbflowError
from nbflow.refs import OutputRef, find_refs, resolve_refs

if TYPE_CHECKING:
    from nbflow.operators.base import BaseOperator

#: the map index of a task that is not mapped (and of a mapped task's own row, which holds its state)
UNMAPPED = -1
#: Airflow's default for its setting of the same name
DEFAULT_MAX_MAP_LENGTH = 1024


def ti_key(task_id: str, map_index: int = UNMAPPED) -> str:
    """The engine's name of one task instance: the task id, or ``task_id[3]`` for a mapped one.
    Unambiguous because a task id cannot contain brackets."""
    return task_id if map_index is None or map_index < 0 else f"{task_id}[{map_index}]"


def split_key(key: str) -> tuple[str, int]:
    """``(task_id, map_index)`` of a name made by :func:`ti_key`."""
    if key.endswith("]"):
        base, _, index = key[:-1].rpartition("[")
        if base and index.isdigit():
            return base, int(index)
    return key, UNMAPPED


class MappingError(NbflowError):
    """A mapped task cannot be expanded in this run (its list is not a list, or too long)."""

    def __init__(self, dag_id: str | None, task_id: str, message: str) -> None:
        self.dag_id, self.task_id = dag_id, task_id
        where = f"DAG '{dag_id}', task '{task_id}': " if dag_id else f"task '{task_id}': "
        super().__init__(where + message)


class MapSlot:
    """Where one instance's value goes: held by a mapped argument until the instance runs."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<mapped {self.name}>"

    def __reduce__(self) -> Any:
        return (MapSlot, (self.name,))


class ExpandInput:
    """What a mapped task maps over.

    ``expand(a=[...], b=[...])`` makes one instance per combination (the first argument changes
    slowest, as in Airflow); ``expand_kwargs([...])`` one instance per dict of arguments. A source is a
    list, a tuple, a dict (its items become ``(key, value)`` pairs) or another task's output.
    """

    def __init__(self, sources: Mapping[str, Any] | None = None, kwargs_source: Any = None) -> None:
        self.sources: dict[str, Any] = dict(sources or {})
        self.kwargs_source = kwargs_source   # expand_kwargs: a list of dicts, or an output giving one

    @property
    def by_kwargs(self) -> bool:
        return not self.sources

    def names(self) -> list[str]:
        """The arguments mapped over (for ``expand_kwargs`` from a literal list: the keys it uses)."""
        if self.sources:
            return list(self.sources)
        if isinstance(self.kwargs_source, (list, tuple)):
            return list(dict.fromkeys(key for item in self.kwargs_source if isinstance(item, dict) for key in item))
        return []

    def refs(self) -> list[OutputRef]:
        return find_refs(list(self.sources.values()) if self.sources else self.kwargs_source)

    def _lists(self, outputs: Mapping[str, Any], dag_id: str | None, task_id: str) -> list[tuple[str, list[Any]]]:
        found = []
        for name, source in self.sources.items():
            found.append((name, _as_list(resolve_refs(source, dict(outputs)), f"expand({name}=...)", source,
                                         dag_id, task_id)))
        return found

    def length(self, outputs: Mapping[str, Any], dag_id: str | None, task_id: str) -> int:
        """How many instances this run gets, from the upstream outputs (task id -> value)."""
        if self.by_kwargs:
            return len(self._kwargs_list(outputs, dag_id, task_id))
        count = 1
        for _, values in self._lists(outputs, dag_id, task_id):
            count *= len(values)
        return count

    def values(self, outputs: Mapping[str, Any], map_index: int, dag_id: str | None, task_id: str) -> dict[str, Any]:
        """The arguments of instance ``map_index``."""
        if self.by_kwargs:
            return dict(self._kwargs_list(outputs, dag_id, task_id)[map_index])
        lists = self._lists(outputs, dag_id, task_id)
        combination = next(itertools.islice(itertools.product(*(values for _, values in lists)), map_index, None))
        return {name: value for (name, _), value in zip(lists, combination)}

    def _kwargs_list(self, outputs: Mapping[str, Any], dag_id: str | None, task_id: str) -> list[dict[str, Any]]:
        items = _as_list(resolve_refs(self.kwargs_source, dict(outputs)), "expand_kwargs(...)", self.kwargs_source,
                         dag_id, task_id)
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not all(isinstance(key, str) for key in item):
                raise MappingError(dag_id, task_id, f"expand_kwargs needs a list of dicts of arguments; item {index} "
                                   f"is {type(item).__name__}: {_short(item)}")
        return items


def _as_list(value: Any, what: str, source: Any, dag_id: str | None, task_id: str) -> list[Any]:
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, (list, tuple)):
        return list(value)
    origin = f"task '{source.task_id}' returned" if isinstance(source, OutputRef) else "it was given"
    raise MappingError(dag_id, task_id, f"{what} needs a list, a tuple or a dict; {origin} "
                       f"{type(value).__name__}: {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_source(name: str, source: Any, dag_id: str | None, task_id: str) -> None:
    """Refuse, when the DAG is built, a source that can never be mapped over."""
    if isinstance(source, OutputRef) or isinstance(source, (list, tuple, dict)):
        return
    raise DagDefinitionError(
        f"expand({name}={_short(source)}) cannot map over a {type(source).__name__}: give a list, a tuple, a "
        "dict or another task's output (use partial() for an argument every instance shares)", dag_id, task_id)


def apply_values(task: BaseOperator, values: Mapping[str, Any]) -> None:
    """Put one instance's values where the task's :class:`MapSlot` placeholders are (in its
    ``op_kwargs`` for a ``@task`` function, else in its attributes)."""
    target = task.__dict__.get("_map_target")
    if target == "slots":  # a task of a mapped group: the group's arguments wherever the task holds them
        for name in dict.fromkeys([*type(task).template_fields, "op_args", "op_kwargs"]):
            if name in task.__dict__:
                object.__setattr__(task, name, _fill(task.__dict__[name], values))
        missing = []
    elif target == "op_kwargs":
        object.__setattr__(task, "op_kwargs", {**task.op_kwargs, **values})
        missing = [name for name, value in task.op_kwargs.items() if isinstance(value, MapSlot)]
    else:
        for name, value in values.items():
            object.__setattr__(task, name, value)
        missing = [name for name in task.__dict__.get("_map_slots", ()) if isinstance(task.__dict__.get(name), MapSlot)]
    if missing:
        raise MappingError(task.dag_id, task.task_id, f"this instance's arguments have no {', '.join(missing)}: "
                           "each dict given to expand_kwargs needs every argument partial() does not give")


def _fill(value: Any, values: Mapping[str, Any]) -> Any:
    """``value`` with each :class:`MapSlot` replaced by its value (containers are copied)."""
    if isinstance(value, MapSlot):
        return values[value.name] if value.name in values else value
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_fill(item, values) for item in value)
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    return value


#: arguments that name or place the task itself: the same for every instance, so never mapped
_NOT_MAPPABLE = frozenset({"task_id", "dag", "task_group", "params", "timeout", "task_display_name",
                           "start_date", "end_date", "python_callable"})


def make_mapped(
    build: Any, expand: ExpandInput, *, dag_id: str | None, task_id: str | None, target: str | None,
    what: str, options: frozenset[str] = frozenset(),
) -> BaseOperator:
    """Build a mapped task with ``build(slots)`` (``slots``: argument name -> :class:`MapSlot`) and
    attach what it maps over. ``target`` is ``"op_kwargs"`` when the values are the arguments of a
    ``@task`` function. A constructor that refuses a placeholder is named with the argument: its
    check runs on each instance's value instead when the instance runs. ``options`` are the
    task's own options (retries, pool, ...): the same for every instance, so never mapped."""
    for name in expand.names() if target is None and not expand.by_kwargs else ():
        if name in _NOT_MAPPABLE or name in options:
            raise DagDefinitionError(
                f"{what}.expand({name}=...): {name} is an option of the task itself and is the same for "
                f"every instance; give it to partial({name}=...) instead", dag_id, task_id)
    for name, source in expand.sources.items():
        check_source(name, source, dag_id, task_id or "?")
    if expand.by_kwargs and not isinstance(expand.kwargs_source, (OutputRef, list, tuple)):
        raise DagDefinitionError(
            f"{what}.expand_kwargs({_short(expand.kwargs_source)}) needs a list of dicts of arguments or another "
            "task's output giving one", dag_id, task_id)
    # expand_kwargs: the names vary by instance, so only required arguments hold a place (the
    # caller's); the others keep their defaults where an instance does not give them
    slots = {} if expand.by_kwargs else {name: MapSlot(name) for name in expand.names()}
    try:
        task = build(slots)
    except NbflowError:
        raise
    except (TypeError, ValueError) as exc:
        raise DagDefinitionError(
            f"{what} cannot be mapped over {', '.join(slots) or 'these arguments'}: its constructor checks the "
            f"value when the DAG is built ({exc}); map over an argument it only keeps", dag_id, task_id) from exc
    object.__setattr__(task, "expand_input", expand)
    object.__setattr__(task, "_map_target", target)
    for ref in expand.refs():
        task._depend_on(ref)
    return task


class OperatorPartial:
    """``SomeOperator.partial(task_id=..., **shared)``: waits for ``.expand(...)`` or
    ``.expand_kwargs(...)`` to become a mapped task."""

    def __init__(self, operator_class: type[BaseOperator], kwargs: dict[str, Any]) -> None:
        if "task_id" not in kwargs:
            raise DagDefinitionError(f"{operator_class.__name__}.partial(...) needs task_id=...")
        self.operator_class = operator_class
        self.kwargs = kwargs

    def expand(self, **sources: Any) -> BaseOperator:
        if not sources:
            raise DagDefinitionError(f"{self.operator_class.__name__}.partial(...).expand() needs at least one "
                                     "argument to map over", None, self.kwargs["task_id"])
        return self._make(ExpandInput(sources))

    def expand_kwargs(self, source: Any) -> BaseOperator:
        return self._make(ExpandInput(kwargs_source=source))

    def _make(self, expand: ExpandInput) -> BaseOperator:
        twice = sorted(set(expand.names()) & set(self.kwargs))
        if twice:
            raise DagDefinitionError(f"{twice[0]} is given to both partial() and expand(); give it to one",
                                     None, self.kwargs["task_id"])
        if expand.by_kwargs:  # the names come with the run: hold a place for each required argument
            import inspect

            required = [p.name for p in inspect.signature(self.operator_class).parameters.values()
                        if p.default is p.empty and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
            held = {name: MapSlot(name) for name in required if name not in self.kwargs}
        else:
            held = {}
        task = make_mapped(lambda slots: self.operator_class(**self.kwargs, **held, **slots), expand, dag_id=None,
                           task_id=self.kwargs["task_id"], target=None, what=self.operator_class.__name__,
                           options=self.operator_class.task_options)
        object.__setattr__(task, "_map_slots", tuple(held) if expand.by_kwargs else tuple(expand.names()))
        return task
