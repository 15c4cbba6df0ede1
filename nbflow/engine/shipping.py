"""What a DAG's tasks need to travel to worker processes.

Functions of a DAG file loaded by nbflow live in a module that worker processes cannot import (its
name is made up per file), so that module's functions and classes are pickled by value. A DAG's
operators and its :class:`~nbflow.engine.runner.DagInfo` are the same for every try of every run of
one DAG object, so they travel as :class:`~nbflow.executors.shipped.Shipped` bytes, pickled once.
"""

from __future__ import annotations

import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any

from nbflow.engine.runner import DagInfo
from nbflow.executors.shipped import Shipped

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


class Shipment:
    """One DAG object's operators and DagInfo as they travel, shared by every run of that object.

    It keeps bytes and a weak reference, never an operator: an operator holds its DAG, and a
    shipment that held one would keep its DAG, and so itself, alive for good.
    """

    def __init__(self, dag: DAG) -> None:
        self.info = Shipped(DagInfo.of(dag))
        self._dag = weakref.ref(dag)
        self._blobs: dict[str, bytes] = {}

    def task(self, task_id: str) -> Shipped:
        blob = self._blobs.get(task_id)
        if blob is None:
            dag = self._dag()
            if dag is None:
                raise RuntimeError(f"the DAG of task {task_id!r} is gone; its runs went with it")
            blob = self._blobs[task_id] = Shipped(dag.task_dict[task_id]).blob
        return Shipped(blob=blob)


# keyed by the DAG object: a reloaded DAG is a new object with a shipment of its own, and the old
# shipment goes with the last run that used the old object
_shipments: weakref.WeakKeyDictionary[Any, Shipment] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def shipment(dag: DAG) -> Shipment:
    """The shipment of ``dag``, made when the first of its runs goes to worker processes."""
    with _lock:
        found = _shipments.get(dag)
        if found is None:
            ship_by_value(dag)
            found = _shipments[dag] = Shipment(dag)
        return found
