"""Which executor a host gets, built by name.

The implementations are imported only when asked for, so choosing "thread" never imports the
process machinery; they import :mod:`nbflow.executors.base` and nothing here, so the registry
below points one way only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nbflow.errors import ConfigError

if TYPE_CHECKING:
    from nbflow.executors.base import Executor
    from nbflow.settings import Settings

#: executor name -> "module:class"; the module is imported only when that executor is asked for,
#: so choosing "thread" never imports the process machinery.
EXECUTORS: dict[str, str] = {
    "inline": "nbflow.executors.inline:InlineExecutor",
    "thread": "nbflow.executors.thread:ThreadExecutor",
    "process": "nbflow.executors.process:ProcessExecutor",
    "dask": "nbflow.executors.dask:DaskExecutor",
}


def get_executor(name: str, parallelism: int = 4, **options: Any) -> Executor:
    """A new, not yet started executor of kind ``name`` ("inline", "thread", "process" or "dask").

    ``options`` go to that executor's constructor (``max_rss_mb`` for "process"; ``address``,
    ``workers``, ``threads_per_worker`` and ``keep_outputs_over`` for "dask"); one it does not
    take is refused, never ignored.
    """
    try:
        where = EXECUTORS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            "executor", name, f"there is no such executor; choose one of {', '.join(EXECUTORS)}"
        ) from None
    module_name, _, class_name = where.partition(":")
    cls: type[Executor] = getattr(importlib.import_module(module_name), class_name)
    return cls(parallelism, **options)


#: kinds of scheduler host whose tasks run in worker processes unless an executor is chosen: hosts
#: that live long and serve every DAG (the ``nbflow scheduler`` daemon, the Jupyter server's host and
#: the runs it starts), where a task that segfaults, exits, forks or leaks memory must end a worker,
#: not the host. Elsewhere (a notebook kernel, ``dag.test()``, ``nbflow dags test``, a backfill) the
#: caller runs its own tasks in the foreground and keeps threads: they start in microseconds, share
#: the kernel's objects, and a crash ends only the caller's own command.
PROCESS_HOST_KINDS = frozenset({"daemon", "jupyter-server", "server-run"})


def default_executor(host_kind: str | None) -> str:
    """The executor a host of ``host_kind`` uses when neither its caller nor the settings pick one."""
    return "process" if host_kind in PROCESS_HOST_KINDS else "thread"


def keep_over_of(settings: Settings) -> int:
    """``dask_keep_outputs_over`` in bytes; 0 (keep nothing on the cluster) when empty or "0"."""
    from nbflow.memory import parse_size

    text = settings.dask_keep_outputs_over.strip()
    return 0 if text in ("", "0") else parse_size(text) or 0


def executor_for(settings: Settings, host_kind: str | None, name: str | None = None) -> Executor:
    """A new executor for a host: ``name`` if given, else the ``executor`` setting, else (``auto``)
    the host's default; with the settings that apply to it (``parallelism``, ``worker_max_rss_mb``, the ``dask_*`` settings)."""
    chosen = name or (settings.executor if settings.executor not in ("", "auto") else default_executor(host_kind))
    options: dict[str, Any] = {}
    if chosen == "process":
        options["max_rss_mb"] = settings.worker_max_rss_mb
    elif chosen == "dask":
        options.update(address=settings.dask_address, workers=settings.dask_workers,
                       threads_per_worker=settings.dask_threads_per_worker,
                       keep_outputs_over=keep_over_of(settings))
    return get_executor(chosen, settings.parallelism, **options)
