"""Notebooks as tasks: execution through papermill, typed parameters, recorded outputs, HTML
reports, per-cell progress and a pool of warm kernels.

:func:`run_notebook` is the entry point; :func:`output` is what a notebook calls to hand values back.
Names load on first use, so ``nbflow.output`` inside a kernel imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["KernelPool", "NotebookResult", "output", "run_notebook"]

_WHERE = {
    "KernelPool": "nbflow.notebook.pool",
    "NotebookResult": "nbflow.notebook.execute",
    "output": "nbflow.notebook.outputs",
    "run_notebook": "nbflow.notebook.execute",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'nbflow.notebook' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
