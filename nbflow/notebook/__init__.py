"""Notebooks as tasks: execution through papermill, typed parameters, recorded outputs, HTML
reports, per-cell progress and a pool of warm kernels.

:func:`run_notebook` is the entry point; :func:`output` is what a notebook calls to hand values back.
Names load on first use, so ``nbflow.output`` inside a kernel imports nothing heavy.
"""

from __future__ import annotations

from nbflow.lazy import exports

__all__ = ["KernelPool", "NotebookResult", "output", "run_notebook"]

_WHERE = {
    "KernelPool": "nbflow.notebook.pool",
    "NotebookResult": "nbflow.notebook.execute",
    "output": "nbflow.notebook.outputs",
    "run_notebook": "nbflow.notebook.execute",
}


__getattr__, __dir__ = exports("nbflow.notebook", _WHERE, __all__)
