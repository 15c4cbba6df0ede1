"""What is current: the DAG and task group being authored, and the task instance being run.

Context variables rather than globals, so that two threads (or two asyncio tasks) building or running
DAGs never see each other's.
"""

from __future__ import annotations

import weakref
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Callable

from nbflow.errors import NoTaskContextError

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.taskgroup import TaskGroup

_current_dag: ContextVar[DAG | None] = ContextVar("nbflow_current_dag", default=None)
_current_group: ContextVar[TaskGroup | None] = ContextVar("nbflow_current_group", default=None)
_task_context: ContextVar[dict[str, Any] | None] = ContextVar("nbflow_task_context", default=None)
# Called with every DAG constructed, while a DAG file or cell is being loaded.
_dag_collector: ContextVar[Callable[[DAG], None] | None] = ContextVar("nbflow_dag_collector", default=None)


def current_dag() -> DAG | None:
    return _current_dag.get()


def current_group() -> TaskGroup | None:
    return _current_group.get()


def push_dag(dag: DAG) -> Any:
    return _current_dag.set(dag)


def pop_dag(token: Any) -> None:
    _current_dag.reset(token)


def push_group(group: TaskGroup | None) -> Any:
    return _current_group.set(group)


def pop_group(token: Any) -> None:
    _current_group.reset(token)


# Every DAG built in this process, by id (the latest wins): what an in-kernel scheduler schedules.
_built: weakref.WeakValueDictionary[str, DAG] = weakref.WeakValueDictionary()


def collect_dag(dag: DAG) -> None:
    _built[dag.dag_id] = dag
    collector = _dag_collector.get()
    if collector is not None:
        collector(dag)


def built_dags() -> dict[str, DAG]:
    """The DAGs built in this process and still alive, by id."""
    return dict(_built)


def set_dag_collector(collector: Callable[[DAG], None] | None) -> Any:
    return _dag_collector.set(collector)


def reset_dag_collector(token: Any) -> None:
    _dag_collector.reset(token)


def set_task_context(context: dict[str, Any] | None) -> Any:
    return _task_context.set(context)


def reset_task_context(token: Any) -> None:
    _task_context.reset(token)


def get_current_context() -> dict[str, Any]:
    """The running task's template context (``ds``, ``logical_date``, ``ti``, ``params``, ...)."""
    context = _task_context.get()
    if context is None:
        raise NoTaskContextError()
    return context
