"""The operators: each makes one kind of task.

Imported lazily by attribute, so that ``from nbflow.operators import BashOperator`` loads only what
it needs.
"""

from __future__ import annotations

from nbflow.lazy import exports

__all__ = [
    "BaseOperator",
    "BashOperator",
    "BranchPythonOperator",
    "EmptyOperator",
    "NotebookOperator",
    "PythonOperator",
    "ShortCircuitOperator",
]

_WHERE = {
    "BaseOperator": "nbflow.operators.base",
    "BashOperator": "nbflow.operators.bash",
    "BranchPythonOperator": "nbflow.operators.branch",
    "EmptyOperator": "nbflow.operators.empty",
    "NotebookOperator": "nbflow.operators.notebook",
    "PythonOperator": "nbflow.operators.python",
    "ShortCircuitOperator": "nbflow.operators.branch",
}


__getattr__, __dir__ = exports("nbflow.operators", _WHERE, __all__)
