"""The operators: each makes one kind of task.

Imported lazily by attribute, so that ``from nbflow.operators import BashOperator`` loads only what
it needs.
"""

from __future__ import annotations

from nbflow.lazy import exports

__all__ = [
    "BaseBranchOperator",
    "BaseOperator",
    "BashOperator",
    "BranchDateTimeOperator",
    "BranchDayOfWeekOperator",
    "BranchPythonOperator",
    "EmailOperator",
    "EmptyOperator",
    "ExternalPythonOperator",
    "HttpHook",
    "HttpOperator",
    "LatestOnlyOperator",
    "NotebookOperator",
    "PythonOperator",
    "PythonVirtualenvOperator",
    "ShortCircuitOperator",
    "SimpleHttpOperator",
    "TriggerDagRunOperator",
    "WeekDay",
]

_WHERE = {
    "BaseBranchOperator": "nbflow.operators.branch",
    "BaseOperator": "nbflow.operators.base",
    "BashOperator": "nbflow.operators.bash",
    "BranchDateTimeOperator": "nbflow.operators.timebranch",
    "BranchDayOfWeekOperator": "nbflow.operators.timebranch",
    "BranchPythonOperator": "nbflow.operators.branch",
    "EmailOperator": "nbflow.operators.email",
    "EmptyOperator": "nbflow.operators.empty",
    "ExternalPythonOperator": "nbflow.operators.external_python",
    "HttpHook": "nbflow.operators.http",
    "HttpOperator": "nbflow.operators.http",
    "LatestOnlyOperator": "nbflow.operators.latest_only",
    "NotebookOperator": "nbflow.operators.notebook",
    "PythonOperator": "nbflow.operators.python",
    "PythonVirtualenvOperator": "nbflow.operators.external_python",
    "ShortCircuitOperator": "nbflow.operators.branch",
    "SimpleHttpOperator": "nbflow.operators.http",
    "TriggerDagRunOperator": "nbflow.operators.trigger_dagrun",
    "WeekDay": "nbflow.operators.timebranch",
}


__getattr__, __dir__ = exports("nbflow.operators", _WHERE, __all__)
