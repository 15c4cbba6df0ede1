"""What a DAG needs before its tasks travel to a worker process.

Functions of a DAG file loaded by nbflow live in a module that worker processes cannot import (its
name is made up per file), so that module's functions and classes are pickled by value.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbflow.dag import DAG


def ship_by_value(dag: DAG) -> None:
    """Make the DAG file's own module travel by value with cloudpickle."""
    import cloudpickle

    for task in dag.task_dict.values():
        fn = getattr(task, "python_callable", None)
        module = sys.modules.get(getattr(fn, "__module__", "") or "")
        if module is not None and getattr(module, "__nbflow_dag_file__", False):
            cloudpickle.register_pickle_by_value(module)
