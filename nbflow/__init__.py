"""nbflow: workflows that live inside Jupyter.

Write a DAG of tasks with ``@dag``/``@task`` or ``with DAG(...)``, run it with ``dag.test()``,
schedule it with cron in its own time zone. The other names load on first use, so ``import nbflow``
stays cheap.
"""

from __future__ import annotations

from typing import Any

# The submodule nbflow.dag and the decorator nbflow.dag share a name: import the module first, then
# bind the decorator, so that `from nbflow import dag` always gives the decorator.
from nbflow.dag import DAG
from nbflow.decorators import dag, setup, task, teardown

__version__ = "0.1.0"

__all__ = [
    "Asset",
    "AssetAll",
    "AssetAny",
    "AssetOrTimeSchedule",
    "Connection",
    "DAG",
    "DagRun",
    "Dataset",
    "FailTask",
    "Label",
    "NbflowError",
    "Param",
    "RunState",
    "SkipTask",
    "TaskGroup",
    "TaskState",
    "TriggerRule",
    "Variable",
    "chain",
    "cross_downstream",
    "dag",
    "dashboard",
    "get_current_context",
    "literal",
    "output",
    "setup",
    "task",
    "task_group",
    "teardown",
]

_WHERE = {
    "Asset": "nbflow.assets",
    "AssetAll": "nbflow.assets",
    "AssetAny": "nbflow.assets",
    "AssetOrTimeSchedule": "nbflow.assets",
    "Dataset": "nbflow.assets",
    "Connection": "nbflow.connection",
    "DagRun": "nbflow.dagrun",
    "Label": "nbflow.edgemodifier",
    "NbflowError": "nbflow.errors",
    "Param": "nbflow.params",
    "RunState": "nbflow.states",
    "SkipTask": "nbflow.errors",
    "FailTask": "nbflow.errors",
    "TaskGroup": "nbflow.taskgroup",
    "TaskState": "nbflow.states",
    "TriggerRule": "nbflow.states",
    "Variable": "nbflow.variable",
    "chain": "nbflow.helpers",
    "cross_downstream": "nbflow.helpers",
    "dashboard": "nbflow.jupyter.dashboard",
    "get_current_context": "nbflow.context",
    "literal": "nbflow.templates",
    "output": "nbflow.notebook.outputs",
    "task_group": "nbflow.taskgroup",
}


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbflow``: register the ``%%dag`` and ``%nbflow`` magics."""
    from nbflow.jupyter.magics import load_ipython_extension as load

    load(ipython)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """The Jupyter server extension: the REST API for JupyterLab (and, if asked, a scheduler host)."""
    from nbflow.jupyter.server.app import NbflowApp

    return [{"module": "nbflow.jupyter.server.app", "app": NbflowApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The JupyterLab extension, built from ``labextension/`` into ``nbflow/labextension``; used by
    ``jupyter labextension develop`` (an installed wheel ships it under ``share/jupyter``)."""
    return [{"src": "labextension", "dest": "nbflow-labextension"}]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nbflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
