"""Scheduling inside the Jupyter server process, never on its event loop.

:class:`SchedulerHost` is the scheduler of ``--NbflowApp.run_scheduler``: the same
:class:`~nbflow.engine.scheduler.Scheduler` loop the ``nbflow scheduler`` daemon runs, against the same
store, in a daemon thread, as a host of kind ``jupyter-server``. The store referees between it and
any other host, so running it next to a daemon never runs a task instance twice.

:class:`RunStarter` drives the manual runs triggered through the API while no scheduler host is
alive: each in a thread of its own, by a scheduler host that drives that one run and then stops.
It is a registered host like any other, so if the server dies mid-run, the next scheduler host to
start finds its task instances by their silent heartbeat and retries them.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.engine.scheduler import Scheduler
    from nbflow.settings import Settings

log = logging.getLogger(__name__)

#: the kind the server's scheduler host registers under (``nbflow scheduler status`` shows it)
HOST_KIND = "jupyter-server"
#: the kind of a host that drives one run started through the API
RUN_KIND = "server-run"


def _serve(scheduler: Scheduler, stop: threading.Event, grace: float, **kwargs: Any) -> None:
    try:
        scheduler.serve(stop, grace=grace, **kwargs)
    except Exception:  # the thread's end is the only place left to say why it stopped
        log.exception("nbflow scheduler host %s stopped on an error", scheduler.host_id)


class SchedulerHost:
    """The server's own scheduler: every unpaused DAG of ``dags_folder`` on its schedule."""

    def __init__(self, settings: Settings, *, executor: str | None = None, grace: float = 10.0) -> None:
        self.settings = settings
        self.executor = executor or None
        self.grace = grace
        self.scheduler: Scheduler | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def host_id(self) -> str | None:
        return self.scheduler.host_id if self.scheduler is not None else None

    def start(self) -> None:
        """Start the loop in a daemon thread; returns at once (a second call does nothing)."""
        from nbflow.engine.scheduler import Scheduler

        if self.running:
            return
        self._stop = threading.Event()
        self.scheduler = Scheduler(settings=self.settings, executor=self.executor, kind=HOST_KIND)
        self._thread = threading.Thread(target=_serve, args=(self.scheduler, self._stop, self.grace),
                                        name="nbflow-server-scheduler", daemon=True)
        self._thread.start()
        log.info("nbflow: scheduler host %s started in the Jupyter server", self.scheduler.host_id)

    def stop(self, timeout: float | None = None) -> None:
        """Start nothing new, let running tasks finish within the grace period, record the host as
        stopped. Blocks until then: call it off the event loop."""
        thread, scheduler = self._thread, self.scheduler
        if thread is None or scheduler is None:
            return
        self._stop.set()
        scheduler.wake()
        thread.join(self.grace + 5.0 if timeout is None else timeout)
        if thread.is_alive():
            log.warning("nbflow: scheduler host %s did not stop within its grace period", scheduler.host_id)
        self._thread = None


class RunStarter:
    """Drives runs started through the API when no scheduler host would pick them up."""

    def __init__(self, settings: Settings, *, executor: str | None = None, grace: float = 10.0) -> None:
        self.settings = settings
        self.executor = executor or None
        self.grace = grace
        self._lock = threading.Lock()
        self._threads: dict[threading.Thread, tuple[threading.Event, Scheduler]] = {}

    def start(self, dag: DAG, run_pk: int, *, run_types: tuple[str, ...] = ("manual",)) -> str:
        """Drive the queued run ``run_pk`` of ``dag`` (of one of ``run_types``) in a new thread;
        returns the id of the host that drives it."""
        from nbflow.engine.scheduler import Scheduler

        scheduler = Scheduler(settings=self.settings, executor=self.executor, dags=[dag], kind=RUN_KIND,
                              create_runs=False, run_types=run_types, only_runs={run_pk})
        stop = threading.Event()
        thread = threading.Thread(target=self._drive, args=(scheduler, stop), name=f"nbflow-run-{dag.dag_id}",
                                  daemon=True)
        with self._lock:
            self._threads[thread] = (stop, scheduler)
        thread.start()
        return scheduler.host_id

    def _drive(self, scheduler: Scheduler, stop: threading.Event) -> None:
        try:
            _serve(scheduler, stop, self.grace, exit_when_idle=True)
        finally:
            with self._lock:
                self._threads.pop(threading.current_thread(), None)

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._threads)

    def stop(self, timeout: float | None = None) -> None:
        """Stop every run host: running tasks get the grace period to finish; what is left is taken
        over by the next scheduler host, as from any host that stopped."""
        with self._lock:
            threads = dict(self._threads)
        for stop, scheduler in threads.values():
            stop.set()
            scheduler.wake()
        for thread in threads:
            thread.join(self.grace + 5.0 if timeout is None else timeout)
