"""The executor contract: run a call somewhere, then say how it ended.

An executor is deliberately small. It takes calls (``submit``), runs at most ``parallelism`` of them
at once, queues the rest, and reports each one exactly once through the ``on_done`` callback given to
``start``. It never decides what an outcome *means* (success, retry, failure): the scheduler is the
one writer of outcomes, and an executor only hands it an :class:`Outcome`.

Three implementations share this contract and the same test suite:

``inline``
    runs the call inside ``submit``, in the caller's thread (debugging, ``dag.test()``).
``thread``
    a pool of daemon threads in the caller's process (I/O-bound tasks, notebooks).
``process``
    persistent worker processes fed with cloudpickle (CPU-bound tasks, isolation, hard timeouts).

Executors sit in the execution layer and import only the standard library, cloudpickle, psutil (the
process executor's memory watcher, in the parent only) and :mod:`nbflow.errors`, so that a worker
never pulls in the store or the scheduler.

``memory_limit`` (bytes) is enforced by the process executor only, on the whole process tree of the
call's worker. The in-process executors (inline, thread) cannot limit one task's memory apart from
the host's own, so they fail such a call with ``MemoryLimitError`` saying so rather than run it
unlimited.
"""

from __future__ import annotations

import logging
import os
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar

from nbflow.errors import (
    ConfigError, ExecutorUnavailableError, InvalidOptionError, MemoryLimitError, OutputOnClusterError,
)

log = logging.getLogger("nbflow.executors")

HOSTNAME = os.uname().nodename if hasattr(os, "uname") else ""
#: set (to "1") in the environment of a process executor's worker, which ends every process a call
#: started when the call ends: nothing may be started there ahead of a later call (a spare kernel
#: would be dead when taken)
CALLS_END_THEIR_PROCESSES = "_NBFLOW_CALLS_END_THEIR_PROCESSES"


@dataclass
class Outcome:
    """How one submitted call ended, as the executor saw it (not what it means for the task)."""

    #: what the caller passed to ``submit``, handed back so it can match the outcome to its call
    key: Hashable
    #: True when the call returned; ``value`` is then its return value
    ok: bool
    value: Any = None
    #: the exception when not ok. From a worker process it is the unpickled exception, or an
    #: nbflow ``RemoteTaskError`` stand-in (type name, message, traceback text) when it could not
    #: travel; a call past its timeout gives ``TaskTimeoutError``, a dead worker ``WorkerLostError``.
    error: BaseException | None = None
    #: the formatted traceback when not ok, because a traceback object cannot leave a process
    traceback: str = ""
    #: True when the call ran past its ``timeout``; ``error`` is then a ``TaskTimeoutError``
    timed_out: bool = False
    #: ``time.time()`` when the call started and ended (None if it never started)
    started_at: float | None = None
    ended_at: float | None = None
    #: the process that ran the call, so a log line or a stuck task can be traced to a process
    pid: int | None = None
    hostname: str = ""
    #: the most resident memory (bytes) the call's processes held at once, where it was measured
    #: (worker processes); None where it was not (in-process executors)
    peak_rss: int | None = None
    #: the address of the worker of a cluster that ran the call (a Dask worker's ``tcp://...``);
    #: "" for executors without such workers
    worker: str = ""


OnDone = Callable[[Outcome], None]


class Executor(ABC):
    """Runs calls and reports each one exactly once through ``on_done``.

    Use it as ``start(on_done)``, any number of ``submit(...)``, then ``shutdown()``; or as a
    context manager, which shuts it down (waiting) on exit. ``on_done`` may be called from any
    thread, including the caller's own inside ``submit``; it is never called while the executor
    holds a lock, so it may call ``submit`` or read ``free_slots``. When ``on_done`` runs, the call's
    slot is already free.
    """

    #: the name ``get_executor`` knows it by
    name: ClassVar[str]
    #: True when calls run in the caller's process, so they may share objects with it
    in_process: ClassVar[bool]
    #: a task's return value larger than this (bytes) stays where its call ran (kind "cluster" in
    #: nbflow.outputs) and the calls this executor runs read such values there; 0: every value comes
    #: back to the host. Only the dask executor keeps values (setting dask_keep_outputs_over).
    keep_outputs_over: int = 0
    #: True when the calls it runs read outputs kept on its cluster themselves (the dask executor);
    #: for the others, the host fetches those values before it sends the call
    reads_kept_outputs: ClassVar[bool] = False

    def __init__(self, parallelism: int = 4) -> None:
        if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1:
            raise ConfigError("parallelism", parallelism, "it must be a whole number of at least 1")
        self.parallelism = parallelism
        self._on_done: OnDone | None = None
        self._closed = False

    # -- the contract -----------------------------------------------------------------------------

    def start(self, on_done: OnDone) -> None:
        """Remember where outcomes go. Nothing heavy happens here: pools start on first submit."""
        if self._closed:
            raise RuntimeError(f"the {self.name} executor is shut down; create a new one")
        self._on_done = on_done

    @abstractmethod
    def submit(
        self, key: Hashable, fn: Callable[..., Any], args: tuple[Any, ...] = (), *,
        timeout: float | None = None, memory_limit: int | None = None,
        resources: dict[str, float] | None = None, priority: int = 0,
    ) -> None:
        """Run ``fn(*args)``, queueing it if every slot is busy; report it to ``on_done`` as ``key``.

        ``timeout`` is in seconds, counted from when the call starts (not from when it was queued).
        ``memory_limit`` is in bytes, for the call and every process it starts (see the module).
        ``resources`` (``{"GPU": 1}``) are what a worker must offer to run the call: only the dask
        executor has workers that offer resources, the others fail such a call saying so.
        ``priority`` orders calls waiting in the executor's own queue (higher first) where it has
        one of its own that is not first come, first served (Dask's); the local executors take
        calls in the order they are submitted, which the scheduler already sorts by priority.
        """

    def cancel(self, key: Hashable, reason: str) -> bool:
        """Stop the call reported as ``key`` if it can be stopped; True if it was.

        Used when its outcome no longer matters: another host took its task instance over. A call
        stopped this way is still reported once, as not ok, with ``reason``. Threads cannot be
        stopped, so by default nothing happens and the call reports when it ends.
        """
        return False

    @property
    @abstractmethod
    def free_slots(self) -> int:
        """How many more calls can start now without queueing (0 once shut down)."""

    @abstractmethod
    def shutdown(self, wait: bool = True) -> None:
        """Stop the executor. Safe to call twice.

        ``wait=True`` lets queued and running calls finish and report first; called from inside
        ``on_done`` it does not block (that thread may be needed to finish the work), but the calls
        still finish and report. ``wait=False`` returns at once; each implementation documents what
        happens to calls still in flight.
        """

    def route(self, name: str | None) -> Executor:
        """The executor that runs a task asking for executor ``name`` (None: whichever the host
        uses). A single executor runs only its own kind; a host's
        :class:`~nbflow.executors.routing.RoutingExecutor` holds the others."""
        if name is None or name == self.name:
            return self
        raise ExecutorUnavailableError(name, f"it was given a {self.name} executor alone; a scheduler host "
                                             "(dag.test(), nbflow dags test, the daemon) starts the executors its "
                                             "tasks ask for")

    def fetch_output(self, name: str) -> tuple[str, str | bytes]:
        """The encoded (kind, data) of an output kept on a cluster as ``name``, for a task that runs
        elsewhere. Raises OutputOnClusterError when it cannot be had: only the dask executor keeps
        outputs."""
        raise OutputOnClusterError(None, None, name, f"the {self.name} executor has no cluster to read it from",
                                   "Run the task that reads it with executor=\"dask\", or set dask_keep_outputs_over "
                                   "to 0 to keep every output in the store.")

    def release_outputs(self, names: list[str]) -> None:
        """Let the cluster drop outputs kept there that nothing will read any more (their run ended)."""

    @property
    def reaches_kept_outputs(self) -> bool:
        """Whether :meth:`release_outputs` reaches a cluster that may keep outputs: a host without
        one need not look for them when a run ends."""
        return self.reads_kept_outputs

    def where(self) -> dict[str, str]:
        """Where this executor's calls run, for a host's status (``nbflow scheduler status``, the
        sidebar): for a cluster, its scheduler's ``address`` and its ``dashboard`` link. Empty for
        executors that run calls on the host itself. Never connects or starts anything."""
        return {}

    # -- shared helpers ---------------------------------------------------------------------------

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        self.shutdown(wait=True)

    def __repr__(self) -> str:
        state = "shut down" if self._closed else f"{self.free_slots} free slots"
        return f"<{type(self).__name__} parallelism={self.parallelism} ({state})>"

    def _check_open(self) -> OnDone:
        """The callback, or a clear error when submit comes before start or after shutdown."""
        if self._closed:
            raise RuntimeError(f"the {self.name} executor is shut down; create a new one")
        if self._on_done is None:
            raise RuntimeError(f"call start(on_done) on the {self.name} executor before submit()")
        return self._on_done

    def _refuse_memory_limit(self, key: Hashable, memory_limit: int | None) -> bool:
        """For in-process executors: report a call with a memory limit as failed (True), since its
        memory cannot be told apart from the host's; a limit accepted and not enforced would lie."""
        if not memory_limit:
            return False
        error = MemoryLimitError(None, None, memory_limit, None, self.name)
        self._report(Outcome(key, ok=False, error=error, traceback=format_error(error), hostname=HOSTNAME))
        return True

    def _refuse_resources(self, key: Hashable, resources: dict[str, float] | None) -> bool:
        """For executors without workers that offer resources: report a call that needs some as
        failed (True), since nothing here could honour them."""
        if not resources:
            return False
        error = InvalidOptionError(
            "resources", resources, f"only the dask executor places tasks by worker resources (this run uses the "
            f"{self.name} executor): run it with executor=\"dask\" on workers started with "
            "`dask worker --resources \"GPU=1\"`, or remove resources from the task")
        self._report(Outcome(key, ok=False, error=error, traceback=format_error(error), hostname=HOSTNAME))
        return True

    def _report(self, outcome: Outcome) -> None:
        """Hand one outcome to on_done; a failing callback must not kill the executor's threads."""
        on_done = self._on_done
        if on_done is None:
            return
        try:
            on_done(outcome)
        except Exception:
            log.exception("the on_done callback of the %s executor failed for %r", self.name, outcome.key)


def format_error(error: BaseException, skip: int = 1) -> str:
    """The traceback text of ``error``, without the executor's own ``skip`` frames on top.

    The executor frame that invoked the call says nothing about the task, so it is dropped; the
    exception object itself is trimmed the same way so that a re-raise shows the task's frames.
    """
    tb = error.__traceback__
    for _ in range(skip):
        if tb is None or tb.tb_next is None:
            break
        tb = tb.tb_next
    error.__traceback__ = tb
    return "".join(traceback.format_exception(type(error), error, tb))
