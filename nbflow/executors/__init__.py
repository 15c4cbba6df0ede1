"""Executors: where a task's call runs (this thread, a pool of threads, worker processes).

``get_executor(name, parallelism)`` builds one by name; the implementations are imported only when
asked for, so importing this package stays cheap and starts nothing. The contract is documented once,
in :mod:`nbflow.executors.base`.
"""

from __future__ import annotations

from nbflow.executors.base import Executor, Outcome
from nbflow.executors.choice import EXECUTORS, default_executor, executor_for, get_executor

__all__ = ["EXECUTORS", "Executor", "Outcome", "default_executor", "executor_for", "get_executor"]
