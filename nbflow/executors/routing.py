"""One host, several executors: a task (or a whole DAG) may ask for an executor of its own.

A host runs its tasks with one executor (``-e``, the ``executor`` setting, or the host's default),
but a DAG mixes kinds of work: a heavy step wants the Dask cluster (``executor="dask"``) while its
small neighbours run in threads, or a crash-prone step wants a worker process of its own. The host
holds a :class:`RoutingExecutor`: its own executor, plus one of each other kind a task has asked
for, built the first time it is asked for, with the host's settings, and shut down with the host.
Every executor reports to the same ``on_done``, so outcomes reach the one writer as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

from nbflow.errors import ExecutorUnavailableError
from nbflow.executors.base import HOSTNAME, Executor, Outcome, format_error


class RoutingExecutor(Executor):
    """The host's executor (``base``) and the others its tasks ask for, by name.

    ``make(name)`` builds a new executor of kind ``name`` for this host. ``own_base`` says whether
    shutting this one down shuts ``base`` down too (not when the caller gave it and keeps it).
    """

    def __init__(self, base: Executor, make: Callable[[str], Executor], *, own_base: bool = True) -> None:
        super().__init__(base.parallelism)
        self.base = base
        self.name = base.name  # type: ignore[misc]  # what status shows: the host's own executor
        self.in_process = base.in_process  # type: ignore[misc]
        self._make = make
        self._own_base = own_base
        self._others: dict[str, Executor] = {}
        self._lock = threading.Lock()

    def route(self, name: str | None) -> Executor:
        """The executor that runs a task asking for ``name`` (None: the host's own). One that cannot
        be built (a package missing, a setting wrong) fails each call sent to it, saying why, rather
        than stop the host."""
        if name is None or name == self.base.name:
            return self.base
        with self._lock:
            other = self._others.get(name)
            if other is None:
                try:
                    other = self._make(name)
                except Exception as exc:
                    other = _Refusing(name, ExecutorUnavailableError(name, f"{type(exc).__name__}: {exc}"))
                if self._on_done is not None:
                    other.start(self._on_done)
                self._others[name] = other
            return other

    # -- the contract -----------------------------------------------------------------------------

    def start(self, on_done: Any) -> None:
        super().start(on_done)
        self.base.start(on_done)
        with self._lock:
            for other in self._others.values():
                other.start(on_done)

    def submit(
        self, key: Hashable, fn: Callable[..., Any], args: tuple[Any, ...] = (), *,
        timeout: float | None = None, memory_limit: int | None = None,
        resources: dict[str, float] | None = None, priority: int = 0,
    ) -> None:
        self.base.submit(key, fn, args, timeout=timeout, memory_limit=memory_limit, resources=resources,
                         priority=priority)

    def cancel(self, key: Hashable, reason: str) -> bool:
        return any(executor.cancel(key, reason) for executor in self._all())

    @property
    def free_slots(self) -> int:
        return sum(executor.free_slots for executor in self._all())

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            others = list(self._others.values())
        for other in others:
            other.shutdown(wait=wait)
        if self._own_base:
            self.base.shutdown(wait=wait)

    def fetch_output(self, name: str) -> tuple[str, str | bytes]:
        """From the executor that keeps outputs (the dask one, built if need be: a host restarted
        since may reach the same cluster at dask_address)."""
        return self.route("dask").fetch_output(name)

    def release_outputs(self, names: list[str]) -> None:
        for executor in self._all():
            executor.release_outputs(names)

    @property
    def reaches_kept_outputs(self) -> bool:
        return any(executor.reaches_kept_outputs for executor in self._all())

    def where(self) -> dict[str, str]:
        found = dict(self.base.where())
        with self._lock:
            others = dict(self._others)
        for name, other in others.items():
            for field, value in other.where().items():
                found.setdefault(field, value)
        if others:
            found["also"] = ", ".join(sorted(others))
        return found

    def _all(self) -> list[Executor]:
        with self._lock:
            return [self.base, *self._others.values()]


class _Refusing(Executor):
    """Stands for an executor that could not be built: each call fails at once with the reason."""

    in_process = True

    def __init__(self, name: str, error: ExecutorUnavailableError) -> None:
        super().__init__(1)
        self.name = name  # type: ignore[misc]
        self.error = error

    def submit(
        self, key: Hashable, fn: Callable[..., Any], args: tuple[Any, ...] = (), *,
        timeout: float | None = None, memory_limit: int | None = None,
        resources: dict[str, float] | None = None, priority: int = 0,
    ) -> None:
        self._check_open()
        self._report(Outcome(key, ok=False, error=self.error, traceback=format_error(self.error, skip=0),
                             hostname=HOSTNAME))

    @property
    def free_slots(self) -> int:
        return 0 if self._closed else 1

    def shutdown(self, wait: bool = True) -> None:
        self._closed = True
