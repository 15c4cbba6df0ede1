"""The operators: each makes one kind of task.

Imported lazily by attribute, so that ``from nbflow.operators import BashOperator`` loads only what
it needs.
"""

from __future__ import annotations

from typing import Any

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


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'nbflow.operators' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
