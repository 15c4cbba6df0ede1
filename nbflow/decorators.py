"""``@dag`` and ``@task``: DAGs and tasks from plain functions.

``@task`` works bare and called (``@task(retries=2)``). Calling the decorated function inside a DAG
adds a task and returns a reference to its output; passing that reference to another task makes the
dependency. Options left out stay unset so the DAG's ``default_args`` can fill them.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Generic, TypeVar, overload

from nbflow.context import current_dag, current_group
from nbflow.operators.base import BaseOperator
from nbflow.refs import OutputRef

F = TypeVar("F", bound=Callable[..., Any])


def _free_task_id(base: str) -> str:
    """``base``, or ``base__1``, ``base__2``, ... when a task of that id exists (group prefix included)."""
    dag, group = current_dag(), current_group()
    if group is not None and dag is None:
        dag = group.dag
    if dag is None:
        return base
    prefix = f"{group.group_id}." if group is not None and group.prefix_group_id else ""
    if prefix + base not in dag.task_dict:
        return base
    n = 1
    while f"{prefix}{base}__{n}" in dag.task_dict:
        n += 1
    return f"{base}__{n}"


def _returns_dict(function: Callable[..., Any]) -> bool:
    """Whether ``function`` is annotated to return a dict (``-> dict[str, int]``, ``-> Dict``)."""
    import typing

    try:
        returned = typing.get_type_hints(function).get("return")
    except Exception:  # an annotation naming what is not importable here: nothing to infer
        return False
    return (typing.get_origin(returned) or returned) is dict


class TaskDefinition(Generic[F]):
    """What ``@task`` returns: a function that becomes a task each time it is called in a DAG."""

    def __init__(
        self, function: F, operator_class: type[BaseOperator], options: dict[str, Any],
        role: str | None = None, on_failure_fail_dagrun: bool = False,
    ) -> None:
        functools.update_wrapper(self, function)
        self.function = function
        self.operator_class = operator_class
        self.options = options
        #: "setup" or "teardown" (``@setup`` / ``@teardown``): what each task made from it becomes
        self.role = role
        self.on_failure_fail_dagrun = on_failure_fail_dagrun

    def override(self, **options: Any) -> TaskDefinition[F]:
        """The same task with other options, e.g. ``extract.override(task_id="extract_eu")()``."""
        return TaskDefinition(self.function, self.operator_class, {**self.options, **options},
                              self.role, self.on_failure_fail_dagrun)

    def __call__(self, *args: Any, **kwargs: Any) -> OutputRef:
        return OutputRef(self._build(args, kwargs))

    def partial(self, **kwargs: Any) -> PartialTask:
        """Arguments every instance of a mapped task shares: ``add.partial(y=1).expand(x=[1, 2])``."""
        return PartialTask(self, kwargs)

    def expand(self, **sources: Any) -> OutputRef:
        """One task instance per item (per combination, with several arguments), counted when the
        run gets there: ``add.expand(x=[1, 2, 3])`` or ``add.expand(x=numbers())``."""
        return PartialTask(self, {}).expand(**sources)

    def expand_kwargs(self, source: Any) -> OutputRef:
        """One task instance per dict of arguments: ``add.expand_kwargs([{"x": 1, "y": 2}, ...])``."""
        return PartialTask(self, {}).expand_kwargs(source)

    def _build(self, args: Any, kwargs: dict[str, Any]) -> BaseOperator:
        options = dict(self.options)
        explicit_id = options.pop("task_id", None)
        task_id = explicit_id or _free_task_id(self.function.__name__)
        if "doc_md" not in options and self.function.__doc__:
            options["doc_md"] = inspect.cleandoc(self.function.__doc__)
        if "multiple_outputs" not in options and self.operator_class is _operator_for("python") \
                and _returns_dict(self.function):
            options["multiple_outputs"] = True  # as Airflow infers it from `-> dict[...]`
        operator = self.operator_class(
            task_id=task_id, python_callable=self.function, op_args=args, op_kwargs=kwargs, **options
        )
        if self.role == "setup":
            operator.as_setup()
        elif self.role == "teardown":
            operator.as_teardown(on_failure_fail_dagrun=self.on_failure_fail_dagrun)
        return operator

    def __repr__(self) -> str:
        return f"<task {self.function.__name__!r} ({self.operator_class.__name__})>"


class PartialTask:
    """``@task`` function with arguments every instance shares; ``.expand(...)`` makes the task."""

    def __init__(self, definition: TaskDefinition[Any], kwargs: dict[str, Any]) -> None:
        self.definition = definition
        self.kwargs = kwargs

    def expand(self, **sources: Any) -> OutputRef:
        from nbflow.errors import DagDefinitionError
        from nbflow.mapping import ExpandInput

        if not sources:
            raise DagDefinitionError(f"{self.definition.function.__name__}.expand() needs at least one argument "
                                     "to map over")
        return self._make(ExpandInput(sources))

    def expand_kwargs(self, source: Any) -> OutputRef:
        from nbflow.mapping import ExpandInput

        return self._make(ExpandInput(kwargs_source=source))

    def _make(self, expand: Any) -> OutputRef:
        from nbflow.errors import DagDefinitionError
        from nbflow.mapping import MapSlot, make_mapped

        name = self.definition.function.__name__
        twice = sorted(set(expand.names()) & set(self.kwargs))
        if twice:
            raise DagDefinitionError(f"{name}: {twice[0]} is given to both partial() and expand(); give it to one")
        if not expand.by_kwargs:
            try:
                inspect.signature(self.definition.function).bind_partial(**self.kwargs, **expand.sources)
            except TypeError as exc:
                raise DagDefinitionError(f"{name}.expand({', '.join(expand.sources)}): {exc}; map over the "
                                         "function's own parameters") from None
        held: dict[str, Any] = {}
        if expand.by_kwargs:  # the names come with the run: hold a place for each required parameter
            held = {p.name: MapSlot(p.name) for p in inspect.signature(self.definition.function).parameters.values()
                    if p.default is p.empty and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                    and p.name not in self.kwargs and p.name not in _CONTEXT_NAMES}
        task = make_mapped(lambda slots: self.definition._build((), {**self.kwargs, **held, **slots}), expand,
                           dag_id=None, task_id=self.definition.options.get("task_id") or name, target="op_kwargs",
                           what=name)
        return OutputRef(task)


#: parameters a task function may take from the context rather than from its arguments
_CONTEXT_NAMES = frozenset({"ti", "task_instance", "dag_run", "params", "ds", "logical_date", "run_id", "dag",
                            "task", "conf", "data_interval_start", "data_interval_end", "triggering_asset_events",
                            "map_index"})


def _bash_task_class() -> type[BaseOperator]:
    from nbflow.operators.bash import BashOperator

    class BashTaskOperator(BashOperator):
        """``@task.bash``: the function returns the command to run; its arguments may be outputs of
        other tasks."""

        template_fields = ("bash_command", "env", "cwd", "op_args", "op_kwargs")

        def __init__(self, *, python_callable: Callable[..., Any], op_args: Any = (), op_kwargs: Any = None, **kwargs: Any) -> None:
            super().__init__(bash_command="", **kwargs)
            self.python_callable = python_callable
            self.op_args = list(op_args)
            self.op_kwargs = dict(op_kwargs or {})

        def execute(self, context: dict[str, Any]) -> Any:
            from nbflow.operators.base import context_arguments
            from nbflow.templates import render_value

            kwargs = dict(self.op_kwargs)
            kwargs.update(context_arguments(self.python_callable, context, set(kwargs)))
            command = self.python_callable(*self.op_args, **kwargs)
            if not isinstance(command, str) or not command.strip():
                from nbflow.errors import TaskFailedError

                raise TaskFailedError(self.dag_id or "", self.task_id, "a @task.bash function must return a non-empty command string")
            self.bash_command = render_value(command, context, self, "bash_command")
            return super().execute(context)

    return BashTaskOperator


def _notebook_task_class() -> type[BaseOperator]:
    from nbflow.operators.notebook import NotebookOperator

    class NotebookTaskOperator(NotebookOperator):
        """``@task.notebook``: the function returns the notebook's parameters; its arguments may be
        outputs of other tasks."""

        template_fields = ("notebook", "parameters", "output_path", "cwd", "op_args", "op_kwargs")

        def __init__(self, *, python_callable: Callable[..., Any], op_args: Any = (), op_kwargs: Any = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.python_callable = python_callable
            self.op_args = list(op_args)
            self.op_kwargs = dict(op_kwargs or {})

        def execute(self, context: dict[str, Any]) -> Any:
            from nbflow.operators.base import context_arguments

            kwargs = dict(self.op_kwargs)
            kwargs.update(context_arguments(self.python_callable, context, set(kwargs)))
            parameters = self.python_callable(*self.op_args, **kwargs)
            if parameters is not None and not isinstance(parameters, dict):
                from nbflow.errors import TaskFailedError

                raise TaskFailedError(self.dag_id or "", self.task_id, "a @task.notebook function must return a dict of parameters (or None)")
            self.parameters = {**self.parameters, **(parameters or {})}
            return super().execute(context)

    return NotebookTaskOperator


class _TaskDecorator:
    """``task``: ``@task``, ``@task(...)``, ``@task.branch``, ``@task.short_circuit``, ``@task.sensor``,
    ``@task.bash``, ``@task.notebook``, ``@task.external_python``, ``@task.virtualenv``."""

    def _make(self, kind: str, function: Callable[..., Any] | None, options: dict[str, Any]) -> Any:
        def wrap(fn: Callable[..., Any]) -> TaskDefinition[Any]:
            return TaskDefinition(fn, _operator_for(kind), options)

        return wrap(function) if function is not None else wrap

    @overload
    def __call__(self, function: F) -> TaskDefinition[F]: ...
    @overload
    def __call__(self, function: None = None, **options: Any) -> Callable[[F], TaskDefinition[F]]: ...

    def __call__(self, function: Callable[..., Any] | None = None, **options: Any) -> Any:
        return self._make("python", function, options)

    def python(self, function: Callable[..., Any] | None = None, **options: Any) -> Any:
        return self._make("python", function, options)

    def branch(self, function: Callable[..., Any] | None = None, **options: Any) -> Any:
        """The function returns the id(s) of the direct downstream tasks to run."""
        return self._make("branch", function, options)

    def short_circuit(self, function: Callable[..., Any] | None = None, **options: Any) -> Any:
        """A falsy return value skips everything downstream."""
        return self._make("short_circuit", function, options)

    def sensor(self, function: Callable[..., Any] | None = None, **options: Any) -> Any:
        """``@task.sensor(poke_interval=30, timeout=3600, mode="reschedule")``: the function is the
        poke, called until it returns something truthy or ``PokeReturnValue(True, value)`` (then
        ``value`` is the task's output), as by ``PythonSensor``; sensor options as ``BaseSensor``'s."""
        return self._make("sensor", function, options)

    def bash(self, function: Callable[..., Any] | None = None, **options: Any) -> Any:
        """The function returns a bash command, which is then run as by ``BashOperator``."""
        return self._make("bash", function, options)

    def notebook(self, function: Callable[..., Any] | None = None, **options: Any) -> Any:
        """``@task.notebook(notebook="report.ipynb", report="html")``: the function returns the
        notebook's parameters, then the notebook runs as by ``NotebookOperator``."""
        return self._make("notebook", function, options)

    def external_python(self, function: Callable[..., Any] | None = None, **options: Any) -> Any:
        """``@task.external_python(python="/opt/py/bin/python")``: the function runs in that
        interpreter, as by ``ExternalPythonOperator`` (a plain def without closures)."""
        return self._make("external_python", function, options)

    def virtualenv(self, function: Callable[..., Any] | None = None, **options: Any) -> Any:
        """``@task.virtualenv(requirements=["six"])``: the function runs in a cached virtual
        environment with those requirements, as by ``PythonVirtualenvOperator``."""
        return self._make("virtualenv", function, options)


def _operator_for(kind: str) -> type[BaseOperator]:
    if kind == "python":
        from nbflow.operators.python import PythonOperator

        return PythonOperator
    if kind == "branch":
        from nbflow.operators.branch import BranchPythonOperator

        return BranchPythonOperator
    if kind == "short_circuit":
        from nbflow.operators.branch import ShortCircuitOperator

        return ShortCircuitOperator
    if kind == "sensor":
        from nbflow.sensors.python import PythonSensor

        return PythonSensor
    if kind == "notebook":
        return _notebook_task_class()
    if kind == "external_python":
        from nbflow.operators.external_python import ExternalPythonOperator

        return ExternalPythonOperator
    if kind == "virtualenv":
        from nbflow.operators.external_python import PythonVirtualenvOperator

        return PythonVirtualenvOperator
    return _bash_task_class()


task = _TaskDecorator()


def _with_role(function: Any, role: str, on_failure_fail_dagrun: bool = False) -> TaskDefinition[Any]:
    """``function`` (a plain function, made a ``@task``, or a ``@task...`` definition) as a setup or
    teardown definition."""
    if isinstance(function, TaskDefinition):
        if function.role not in (None, role):
            from nbflow.errors import DagDefinitionError

            raise DagDefinitionError(f"task '{function.function.__name__}' cannot be both a setup and a "
                                     "teardown; keep one of @setup and @teardown")
        return TaskDefinition(function.function, function.operator_class, dict(function.options), role,
                              on_failure_fail_dagrun)
    if not callable(function):
        from nbflow.errors import DagDefinitionError

        raise DagDefinitionError(f"@{role} decorates a function or a @task, not {function!r}")
    return TaskDefinition(function, _operator_for("python"), {}, role, on_failure_fail_dagrun)


def setup(function: Any = None) -> Any:
    """``@setup``: a task (a plain function, or over ``@task(...)`` / ``@task.bash``) that makes what
    its teardowns release, as Airflow's ``@setup``; the same as calling ``.as_setup()`` on each task
    made from it."""
    if function is None:
        return lambda fn: _with_role(fn, "setup")
    return _with_role(function, "setup")


def teardown(function: Any = None, *, on_failure_fail_dagrun: bool = False) -> Any:
    """``@teardown`` or ``@teardown(on_failure_fail_dagrun=True)``: a task that releases what its
    setups made; it runs once its upstream is done whatever the outcome, provided a setup of it
    succeeded, and its failure fails the run only with ``on_failure_fail_dagrun``. Wire its setups
    with ``.as_teardown(setups=...)`` on its output or with ``>>``."""
    if not isinstance(on_failure_fail_dagrun, bool):
        from nbflow.errors import InvalidOptionError

        raise InvalidOptionError("on_failure_fail_dagrun", on_failure_fail_dagrun, "True or False",
                                 task_id=getattr(function, "__name__", None), via="@teardown")
    if function is None:
        return lambda fn: _with_role(fn, "teardown", on_failure_fail_dagrun)
    return _with_role(function, "teardown", on_failure_fail_dagrun)


class DagFactory:
    """What ``@dag`` returns: calling it builds the DAG (call it once at module level in DAG files)."""

    def __init__(self, function: Callable[..., Any], dag_kwargs: dict[str, Any]) -> None:
        from nbflow.dag import check_dag_arguments

        # refused where it is written, not first when the DAG is built
        check_dag_arguments(dag_kwargs, dag_kwargs.get("dag_id") or getattr(function, "__name__", None))
        functools.update_wrapper(self, function)
        self.function = function
        self.dag_kwargs = dag_kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from nbflow.dag import DAG

        options = dict(self.dag_kwargs)
        dag_id = options.pop("dag_id", None) or self.function.__name__
        signature = inspect.signature(self.function)
        defaults = {
            name: p.default for name, p in signature.parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        bound = signature.bind_partial(*args, **kwargs)
        params = {**defaults, **bound.arguments, **(options.pop("params", None) or {})}
        doc = inspect.cleandoc(self.function.__doc__) if self.function.__doc__ else None
        options.setdefault("description", doc.splitlines()[0] if doc else None)
        options.setdefault("doc_md", doc)
        try:
            options.setdefault("fileloc", inspect.getsourcefile(self.function))
        except TypeError:  # defined where no source file exists
            pass
        with DAG(dag_id, params=params, **options) as built:
            self.function(**{**defaults, **bound.arguments})
        return built


def dag(function: Callable[..., Any] | None = None, **dag_kwargs: Any) -> Any:
    """``@dag`` or ``@dag(schedule=..., start_date=...)``: the function's body builds the DAG's tasks;
    its parameters become the DAG's ``params``."""
    if function is not None:
        return DagFactory(function, dag_kwargs)
    return lambda fn: DagFactory(fn, dag_kwargs)
