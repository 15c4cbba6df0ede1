"""``TaskGroup`` and ``@task_group``: a named box of tasks.

Task ids inside are prefixed with the group id (``extract.load``) so that two groups can both have a
``load`` task; views draw a group as one collapsible node. A group's ``default_args`` fill the options
its tasks leave unset, before the DAG's do, so one part of a DAG can retry more than the rest.
``@task_group`` turns a function that creates tasks into a reusable piece: each call is a new group
(``fetch``, ``fetch__1``, ...), as in Airflow's TaskFlow.
"""

from __future__ import annotations

import functools
import inspect
import re
from typing import TYPE_CHECKING, Any, Callable, Mapping

from nbflow.context import current_dag, current_group, pop_group, push_group
from nbflow.errors import DagDefinitionError, TaskOutsideDagError, UnknownArgumentError
from nbflow.helpers import Arrows
from nbflow.refs import OutputRef

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.operators.base import BaseOperator


class TaskGroup(Arrows):
    def __init__(
        self,
        group_id: str,
        *,
        dag: DAG | None = None,
        parent_group: TaskGroup | None = None,
        prefix_group_id: bool = True,
        tooltip: str = "",
        default_args: Mapping[str, Any] | None = None,
        add_suffix_on_collision: bool = False,
    ) -> None:
        """``default_args`` fill the options of the group's tasks before the DAG's ``default_args``
        do (a nested group's over its parent's); ``add_suffix_on_collision`` names a group whose id is
        taken ``<id>__1``, ``<id>__2``, ... instead of refusing it, which ``@task_group`` relies on."""
        parent = parent_group if parent_group is not None else current_group()
        self.dag = dag or (parent.dag if parent is not None else None) or current_dag()
        if self.dag is None:
            raise TaskOutsideDagError(f"group {group_id}")
        full_id = f"{parent.group_id}.{group_id}" if parent is not None and parent.prefix_group_id else group_id
        if full_id in self.dag.task_groups:
            if not add_suffix_on_collision:
                raise DagDefinitionError(
                    f"a task group '{full_id}' already exists; give this one another group_id",
                    self.dag.dag_id,
                )
            base = re.sub(r"__\d+$", "", full_id)
            n = 1
            while f"{base}__{n}" in self.dag.task_groups:
                n += 1
            full_id = f"{base}__{n}"
        self.group_id = full_id
        # checked by the DAG, which knows the options tasks take, so that a bad default fails here
        own = self.dag.check_default_args(default_args or {}, group_id=self.group_id)
        self.default_args: dict[str, Any] = {**(parent.default_args if parent is not None else {}), **own}
        self.parent = parent
        self.prefix_group_id = prefix_group_id
        self.tooltip = tooltip
        self.task_ids: list[str] = []
        #: what a mapped group (``@task_group`` function ``.expand(...)``) maps over; None otherwise
        self.expand_input: Any = None
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

    def set_downstream(self, others: Any) -> None:
        """The group's last tasks run before ``others``."""
        for leaf in self.leaves:
            leaf.set_downstream(others)

    def set_upstream(self, others: Any) -> None:
        """``others`` run before the group's first tasks."""
        for root in self.roots:
            root.set_upstream(others)

    def __repr__(self) -> str:
        return f"<TaskGroup {self.group_id!r} ({len(self.task_ids)} tasks)>"


#: what ``@task_group(...)`` takes: TaskGroup's own options
TASK_GROUP_OPTIONS = ("group_id", "prefix_group_id", "tooltip", "default_args", "dag", "parent_group")


def _check_group_options(options: Mapping[str, Any], name: str) -> None:
    for key in options:
        if key not in TASK_GROUP_OPTIONS:
            raise UnknownArgumentError(key, list(TASK_GROUP_OPTIONS), f"@task_group '{name}' argument")


def _wires(value: Any) -> bool:
    """Whether ``value`` is something dependencies can be made on: a task, an output, a group, or a
    list, tuple or dict of them (a task is recognised by what it does, so this module need not import
    the operators, which import it)."""
    if isinstance(value, (OutputRef, TaskGroup)):
        return True
    if hasattr(value, "task_id") and callable(getattr(value, "set_downstream", None)):
        return True
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_wires(item) for item in value)
    if isinstance(value, dict):
        return bool(value) and all(_wires(item) for item in value.values())
    return False


class TaskGroupFactory:
    """What ``@task_group`` returns: each call builds a new :class:`TaskGroup` of the tasks the
    function creates, and returns what the function returns (a task or an output, so that
    ``load(clean(x))`` wires on), or the group itself when the function returns nothing."""

    def __init__(self, function: Callable[..., Any], options: Mapping[str, Any]) -> None:
        if not callable(function):
            raise DagDefinitionError(f"@task_group decorates a function that creates tasks, not {function!r}")
        _check_group_options(options, getattr(function, "__name__", "?"))
        functools.update_wrapper(self, function)
        self.function = function
        self.options = dict(options)

    def override(self, **options: Any) -> TaskGroupFactory:
        """The same group with other options, e.g. ``fetch.override(group_id="fetch_eu")(url)``."""
        return TaskGroupFactory(self.function, {**self.options, **options})

    def partial(self, **kwargs: Any) -> _PartialGroup:
        """Arguments every instance of a mapped group shares: ``fetch.partial(base=u).expand(path=[...])``."""
        return _PartialGroup(self, kwargs)

    def expand(self, **sources: Any) -> Any:
        """The group once per item, counted when the run gets there: every task of the group is
        mapped, and instance ``i`` of a task reads instance ``i`` of the group's earlier tasks."""
        return _PartialGroup(self, {}).expand(**sources)

    def expand_kwargs(self, source: Any) -> Any:
        return _PartialGroup(self, {}).expand_kwargs(source)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = self.function.__name__
        try:  # a wrong call is refused before an empty group is left behind in the DAG
            inspect.signature(self.function).bind(*args, **kwargs)
        except TypeError as exc:
            raise DagDefinitionError(f"@task_group '{name}' called with arguments it does not take: {exc}") from None
        options = dict(self.options)
        group_id = options.pop("group_id", None) or name
        if "tooltip" not in options and self.function.__doc__:
            options["tooltip"] = inspect.cleandoc(self.function.__doc__)
        group = TaskGroup(group_id, add_suffix_on_collision=True, **options)
        with group:
            result = self.function(*args, **kwargs)
        if result is None:
            return group
        if not _wires(result):
            raise DagDefinitionError(
                f"@task_group '{group.group_id}' returned {type(result).__name__} {result!r}; a task group "
                "function returns the task or output downstream tasks should follow (or a list of them), "
                "or nothing to stand for the whole group",
                group.dag.dag_id,
            )
        return result

    def __repr__(self) -> str:
        return f"<task_group {self.function.__name__!r}>"


class _PartialGroup:
    """A ``@task_group`` function with the arguments all its instances share."""

    def __init__(self, factory: TaskGroupFactory, kwargs: dict[str, Any]) -> None:
        self.factory = factory
        self.kwargs = kwargs

    def expand(self, **sources: Any) -> Any:
        from nbflow.mapping import ExpandInput

        if not sources:
            raise DagDefinitionError(f"@task_group '{self.factory.function.__name__}'.expand() needs at least one "
                                     "argument to map over")
        return self._make(ExpandInput(sources))

    def expand_kwargs(self, source: Any) -> Any:
        from nbflow.mapping import ExpandInput

        return self._make(ExpandInput(kwargs_source=source))

    def _make(self, expand: Any) -> Any:
        from nbflow.mapping import MapSlot, check_source

        name = self.factory.function.__name__
        parameters = inspect.signature(self.factory.function).parameters
        names = expand.names() if not expand.by_kwargs else [p for p in parameters if p not in self.kwargs]
        for key, source in expand.sources.items():
            check_source(key, source, None, name)
        try:
            inspect.signature(self.factory.function).bind(**self.kwargs, **{n: None for n in names})
        except TypeError as exc:
            raise DagDefinitionError(f"@task_group '{name}' mapped over {', '.join(names)}: {exc}") from None
        options = dict(self.factory.options)
        group_id = options.pop("group_id", None) or name
        group = TaskGroup(group_id, add_suffix_on_collision=True, **options)
        with group:
            result = self.factory.function(**self.kwargs, **{n: MapSlot(n) for n in names})
        if not group.task_ids:
            raise DagDefinitionError(f"mapped @task_group '{group.group_id}' made no task", group.dag.dag_id)
        for task in group.tasks:
            if task.is_mapped:
                raise DagDefinitionError(
                    f"task '{task.task_id}' is mapped inside the mapped task group '{group.group_id}': nbflow maps "
                    "one level; map the group, or the task, not both", group.dag.dag_id, task.task_id)
        for task in group.tasks:
            object.__setattr__(task, "expand_input", expand)
            object.__setattr__(task, "_map_target", "slots")
            object.__setattr__(task, "map_group", group.group_id)
        for ref in expand.refs():  # the list comes from upstream of the whole group
            for task in group.roots:
                task._depend_on(ref)
        group.expand_input = expand
        # as a call does: what the function returned (downstream gets the list of its outputs), else the group
        return result if result is not None and _wires(result) else group


def task_group(function: Callable[..., Any] | None = None, **options: Any) -> Any:
    """``@task_group`` or ``@task_group(group_id=..., prefix_group_id=..., tooltip=..., default_args=...)``:
    the function's body creates tasks; each call puts them in a new task group named after the
    function (``<name>__1``, ``<name>__2``, ... for later calls in the same DAG)."""
    if function is not None:
        return TaskGroupFactory(function, options)
    _check_group_options(options, "?")
    return lambda fn: TaskGroupFactory(fn, options)
