"""``nbflow.output(name, value)``: values a notebook hands back to its task.

Inside a notebook run by nbflow, the injected first cell sets ``NBFLOW_NOTEBOOK_OUTPUTS`` to a file
next to the output notebook; each call appends one pickled ``(name, value)`` record to it, and the
task reads the records back when the notebook is done (a later value for a name replaces an earlier
one). Run interactively, with no such variable, the values are kept in :data:`recorded` so the
notebook can be developed cell by cell without nbflow around it.

This module runs inside kernels: it imports only the standard library.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

#: the environment variable (set inside the kernel) naming the file that receives the records
ENV_VAR = "NBFLOW_NOTEBOOK_OUTPUTS"
#: values recorded when the notebook is not run by nbflow
recorded: dict[str, Any] = {}


def output(name: str, value: Any) -> None:
    """Record ``value`` as the output ``name`` of the notebook task that runs this notebook.

    The task's output is the dict of every recorded name; downstream tasks read one with
    ``nb_task.output["name"]``. ``value`` must pickle (JSON-able values always do).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"nbflow.output needs a non-empty string name, got {name!r}")
    try:
        record = pickle.dumps((name, value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"nbflow.output({name!r}, ...): a {type(value).__name__} cannot be pickled ({exc}); record "
            "plain data, or write the object to a file and record the file's path"
        ) from exc
    path = os.environ.get(ENV_VAR)
    if not path:
        recorded[name] = value
        return
    with open(path, "ab") as handle:
        handle.write(record)


def read_outputs(path: str) -> dict[str, Any]:
    """Every value recorded in ``path``, by name, in the order first recorded."""
    values: dict[str, Any] = {}
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return values
    with handle:
        while True:
            try:
                name, value = pickle.load(handle)
            except EOFError:
                break
            values[name] = value
    return values
