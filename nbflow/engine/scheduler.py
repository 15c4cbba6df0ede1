"""The scheduler: runs DAGs by themselves, on time, and survives the death of any one host.

One pass, :meth:`Scheduler.tick`, does everything once: it heartbeats this host, takes over the task
instances of hosts that died, creates the DAG runs that are due, plans and claims ready task
instances, dispatches them and records outcomes. :meth:`Scheduler.serve` repeats passes, but it is
event-driven: it sleeps until the next deadline (a due run, a retry, a heartbeat) or until an
outcome arrives, and an outcome's downstream is dispatched in the same wake-up.

Every host (the ``nbflow scheduler`` daemon, a thread in a Jupyter kernel, the Jupyter server) runs
this same code against the same store. The store referees: task instances are claimed with an atomic
update, scheduled runs have ids derived from their logical date, so two hosts never run one task
instance and never create one run twice.
"""

from __future__ import annotations

import atexit
import functools
import logging
from collections import Counter
import os
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

from nbflow.engine.driver import RunDriver, utcnow
from nbflow.engine.lifecycle import create_run
from nbflow.errors import StoreError, TransientStoreError
from nbflow.engine.outage import StoreOutage
from nbflow.engine.memguard import CHECK_SECONDS as MEMORY_CHECK_SECONDS, MemoryGuard
from nbflow.engine.pools import PoolSlots
from nbflow.states import RunState

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.engine.dagparsing import BackgroundCollector
    from nbflow.executors import Executor, Outcome
    from nbflow.settings import Settings
    from nbflow.store import Store

log = logging.getLogger(__name__)

#: run types a scheduler host drives; test runs belong to their caller, backfills to theirs
DRIVEN_RUN_TYPES = ("scheduled", "manual", "asset_triggered")
#: hosts that serve many runs for long: a bug met in one run's bookkeeping costs that run's progress
#: on this host (its driver is dropped and the run read again from the store), not the host and every
#: other run with it. Elsewhere (dag.test(), a backfill) the error reaches the caller.
CONTAINING_KINDS = frozenset({"daemon", "jupyter-server", "kernel"})
#: after this many such errors in one run, this host leaves the run alone (until it restarts)
MAX_DRIVER_FAILURES = 3
#: kinds of host that drive only the runs they were started for (a backfill; one manual run started
#: by the Jupyter server when no scheduler was alive; the run of a dag.test() or a trigger --wait):
#: they never pick up a run queued by others
OWN_RUNS_ONLY_KINDS = ("backfill", "server-run", "test")
_UNKNOWN = object()
#: runs one janitor pass deletes, in one transaction: small, so no other host waits long on it
RETENTION_BATCH = 100


@dataclass
class TickReport:
    """What one pass did, for tests and for ``nbflow scheduler status``."""

    created: list[str] = field(default_factory=list)      # run ids created
    dispatched: int = 0
    finished: list[str] = field(default_factory=list)     # run ids that ended
    adopted: list[str] = field(default_factory=list)      # task instances taken over from dead hosts
    deleted: list[str] = field(default_factory=list)      # runs the retention janitor deleted, dag/run


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: the fewest task instances a run is offered in one claim while slots allow (see _dispatch)
MIN_CLAIM = 4
#: seconds one pass may go on starting tasks in the slots that free up meanwhile; then the pass
#: ends (outcomes recorded, writes flushed, the heartbeat on time) and the next one begins at once
DISPATCH_SECONDS = 1.0


class Scheduler:
    """A scheduler host. Use :meth:`serve` to run it, or :meth:`start` then :meth:`tick` to step it."""

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        store: Store | None = None,
        executor: Executor | str | None = None,
        dags: dict[str, DAG] | list[DAG] | Callable[[], dict[str, DAG]] | None = None,
        dag_paths: list[str] | None = None,
        kind: str = "daemon",
        create_runs: bool = True,
        run_types: tuple[str, ...] = DRIVEN_RUN_TYPES,
        only_runs: set[int] | None = None,
        on_run_finished: Callable[[str], Any] | None = None,
        claims: bool = True,
    ) -> None:
        from nbflow.settings import get_settings

        self.settings = settings or get_settings()
        self._own_store = store is None
        self.store = store
        self._executor_arg = executor
        self.executor: Executor | None = None
        self.kind = kind
        self.create_runs = create_runs
        self.run_types = run_types
        self.only_runs = only_runs
        #: whether this host claims the task instances it runs. Every host that shares runs with
        #: others does; the host of a ``dag.test()`` run, which no other host drives, writes directly.
        self.claims = claims
        self.host_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.hostname = socket.gethostname()
        if isinstance(dags, list):
            dags = {d.dag_id: d for d in dags}
        # DAGs come from files (dag_paths, or dags_folder), or are given: a dict, or a function
        # returning one that is asked again at each reload (the DAGs built in a kernel).
        self._fixed_dags = dags
        self._dag_paths = dag_paths
        # DAG files are parsed in separate processes, off this host's loop; a file's result is kept
        # until it changes
        self._dag_files: BackgroundCollector | None = None  # made on the first load of files
        self.dags: dict[str, DAG] = {}
        self._own_executor = True
        self.paused: set[str] = set()
        self.next_due: dict[str, Any] = {}
        self.drivers: dict[int, RunDriver] = {}
        #: runs whose driver raised an internal error here: how many times, and the tries it had
        #: running, whose outcomes are dropped when they come (the run is read again once they have)
        self._driver_failures: dict[int, int] = {}
        self._draining: dict[int, set[str]] = {}
        self.pools = PoolSlots()
        self.outcomes: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._due = {"heartbeat": 0.0, "reload": 0.0, "poll": 0.0, "assets": 0.0, "retention": 0.0}
        #: whether this host runs the retention janitor: long-lived hosts do, not the ones that drive
        #: only their own runs (and with ``retention_interval`` 0, none does)
        self.janitor = self.settings.retention_interval > 0 and kind not in OWN_RUNS_ONLY_KINDS
        #: runs the janitor deletes per pass (one transaction)
        self.retention_batch_size = RETENTION_BATCH
        #: DAGs scheduled on assets that the store knows as consumers (registered once per host)
        self._consumers: set[str] = set()
        #: this host recorded asset events not looked at yet: look at asset schedules on the next pass
        self._assets_dirty = False
        #: queued runs of DAGs not loaded here that made this host read its DAG files at once
        self._reloaded_for: set[int] = set()
        self._started = False
        self._stopping = False
        #: the last pass stopped starting tasks at DISPATCH_SECONDS with slots free: go on at once
        self._more_to_start = False
        self.finished_runs: list[str] = []
        self.on_run_finished = on_run_finished
        # what this host knows of its store's availability: a store that does not answer is waited
        # out (tasks go on, outcomes wait in memory), never a reason to exit
        self.outage = StoreOutage(self.host_id, self.settings.db_outage_grace)
        #: min_free_memory: while the machine is short of memory no task starts here, and ``held``
        #: says why (in the host's status)
        self.memory_guard = MemoryGuard(self.settings.min_free_memory)
        self.held: str | None = None

    # -- life -------------------------------------------------------------------------------------

    def start(self) -> Scheduler:
        if self._started:
            return self
        from nbflow.executors import Executor, executor_for
        from nbflow.executors.routing import RoutingExecutor
        from nbflow.store import Store

        if self.store is None:
            self.store = Store.open(self.settings)
        if isinstance(self._executor_arg, Executor):
            base = self._executor_arg
            self._own_executor = False
        else:
            base = executor_for(self.settings, self.kind, self._executor_arg)
        # the host's executor, and those of other kinds its tasks ask for (executor="dask")
        self.executor = RoutingExecutor(base, functools.partial(executor_for, self.settings, self.kind),
                                        own_base=self._own_executor)
        self.executor.start(self.outcomes.put)
        self.store.register_host(self.host_id, hostname=self.hostname, pid=os.getpid(), kind=self.kind,
                                 detail=self._detail())
        self._started = True
        return self

    def close(self, grace: float = 60.0) -> None:
        """Stop taking work, let running tasks finish (up to ``grace`` seconds), write everything."""
        if not self._started:
            return
        self._stopping = True
        deadline = time.monotonic() + grace
        while any(d.running for d in self.drivers.values()) and time.monotonic() < deadline:
            self._wait(min(0.2, max(0.0, deadline - time.monotonic())))
            self._drain()
        self._write_before_close(deadline)
        from nbflow.notifications import wait_sent

        if not wait_sent(max(5.0, deadline - time.monotonic())):  # what this host's runs had to say
            log.warning("scheduler %s: stopping with notifications still being sent", self.host_id)
        assert self.executor is not None and self.store is not None
        self.executor.shutdown(wait=False)  # the executors it started; the host's own if it started it
        try:
            self.store.stop_host(self.host_id)
        except TransientStoreError as exc:
            log.warning("scheduler %s: could not record this host as stopped (%s); other hosts will take it "
                        "for dead after host_stale_after", self.host_id, exc)
        if self._own_store:
            self.store.close()
        self._started = False

    # -- one run's steps, contained ---------------------------------------------------------------

    def _guarded(self, driver: RunDriver, step: Callable[[], Any]) -> Any:
        """Run one step of one run's driver. On a long-lived host (CONTAINING_KINDS), an error that
        is not the store's (a bug in nbflow's bookkeeping of that run, such as an
        IllegalTransitionError) drops that driver instead of ending the host; None is returned then.
        A driver dropped earlier in the same pass is not stepped again."""
        if driver.broken:
            return None
        if self.kind not in CONTAINING_KINDS:
            return step()
        try:
            return step()
        except StoreError:
            raise  # an outage, or a store that refuses: the host's concern, not this run's
        except Exception as exc:
            self._drop_broken(driver, exc)
            return None

    def _drop_broken(self, driver: RunDriver, exc: Exception) -> None:
        """Forget a driver that raised: the tries it had running are cancelled where they can be and
        their outcomes dropped when they come; then the run is adopted again from the store, where
        this host still holds those tries, which then count as lost and are retried by their policy."""
        assert self.executor is not None
        driver.broken = True
        if self.drivers.get(driver.run_pk) is driver:
            del self.drivers[driver.run_pk]
        failures = self._driver_failures[driver.run_pk] = self._driver_failures.get(driver.run_pk, 0) + 1
        running = set(driver.running)
        if running:
            self._draining.setdefault(driver.run_pk, set()).update(running)
        giving_up = failures >= MAX_DRIVER_FAILURES
        log.error(
            "scheduler %s: run %s of DAG %s met an internal error (%s: %s; a bug in nbflow, please report it with "
            "the traceback below). %s", self.host_id, driver.run_id, driver.dag.dag_id, type(exc).__name__, exc,
            f"After {failures} such errors this host leaves the run to other hosts, or to its own restart; its other "
            "runs go on." if giving_up else
            "This host goes on: the run is read again from the store once the tries it had running "
            f"({len(running)}) have ended, and those count as lost and are retried by their policy.",
            exc_info=exc,
        )
        for task_id in sorted(running):
            try:
                self.executor.cancel((driver.run_pk, task_id), "its run's driver on this host met an internal error")
            except Exception as cancel_error:  # the outcome still comes, and is dropped
                log.debug("scheduler %s: could not cancel %s: %s", self.host_id, task_id, cancel_error)

    # -- one pass ---------------------------------------------------------------------------------

    def _write_before_close(self, deadline: float) -> None:
        """Finish the runs that are done and write everything decided, waiting out a store that does
        not answer until ``deadline`` (at least one try); past it, say what is left unwritten."""
        while True:
            try:
                self._finish_done()  # a run whose last task ended while stopping is complete, not left running
                for driver in self.drivers.values():
                    driver.flush()
                return
            except TransientStoreError as exc:
                self.outage.failed(exc)
                left = deadline - time.monotonic()
                if left <= 0:
                    unwritten = sorted(d.run_id for d in self.drivers.values() if d.pending())
                    log.warning("scheduler %s: stopping with what it decided for %d run(s) unwritten (%s): the "
                                "store did not answer (%s); other hosts retry the task instances it held",
                                self.host_id, len(unwritten), ", ".join(unwritten[:5]), exc)
                    return
                time.sleep(min(self.outage.delay(), left))

    def tick(self, now: datetime | None = None) -> TickReport:
        """One pass over everything this host does. ``now`` (aware) decides which runs are due.

        A store that does not answer raises :class:`TransientStoreError` and starts (or prolongs) an
        outage: the next pass first writes what waited in memory and re-reads what this host holds.
        """
        self.start()
        try:
            if self.outage.down:
                self._resync()
            return self._tick(now)
        except TransientStoreError as exc:
            self.outage.failed(exc)
            raise

    def _resync(self) -> None:
        """The first pass after an outage. Beat first (a host taken for dead meanwhile is alive again),
        write the outcomes that waited in memory, then re-read every run: another host may have taken
        over task instances of this one while it looked dead, and what this host decided for those is
        refused by the store and theirs is read instead."""
        assert self.store is not None
        self.store.heartbeat(self.host_id, self._detail())
        self._drain()
        for driver in list(self.drivers.values()):
            driver.flush()
        taken = sorted(f"{d.run_id}:{t}" for d in self.drivers.values() for t in d.running & d.elsewhere)
        for driver in list(self.drivers.values()):
            driver.refresh()
        self.outage.recovered()
        if taken:
            log.warning("scheduler %s: other hosts took over %d task instance(s) of this one while the store was "
                        "away (%s); their outcomes here are not written", self.host_id, len(taken),
                        ", ".join(taken[:10]))

    def _tick(self, now: datetime | None) -> TickReport:
        assert self.store is not None and self.executor is not None
        now = now or utcnow()
        report = TickReport()
        mono = time.monotonic()
        if mono >= self._due["heartbeat"]:
            # first, so that a slow load of DAG files never makes this host look dead
            self.store.heartbeat(self.host_id, self._detail())
        if mono >= self._due["reload"]:
            # a reload still parsing DAG files is looked at again at the next poll
            done = self._reload_dags()
            self._due["reload"] = mono + (self.settings.dag_reload_interval if done else self.settings.poll_interval)
        if mono >= self._due["heartbeat"]:
            # The host of runs no other host drives (dag.test()) skips dead hosts: nothing of its
            # runs can be held by one, and the others' tasks are not its to take (9 ms of a cold test).
            if self.claims or self.only_runs is None:
                report.adopted = self._adopt_orphans(now)
            self._due["heartbeat"] = mono + self.settings.heartbeat_interval
        if mono >= self._due["poll"]:
            self._poll()
            self._notify_deadlines(now)
            self._due["poll"] = mono + self.settings.poll_interval
        if self.create_runs and not self._stopping and self.outage.claiming:
            report.created = self._create_due_runs(now)
        self._drain()
        if self.create_runs and not self._stopping and self.outage.claiming and (
            self._assets_dirty or mono >= self._due["assets"]
        ):
            report.created += self._create_asset_runs()
        for driver in list(self.drivers.values()):
            if driver.deadline is not None and now >= driver.deadline:
                self._guarded(driver, driver.time_out)  # past dagrun_timeout; finished below
        report.dispatched = self._dispatch(now)
        report.finished = self._finish_done()
        for driver in list(self.drivers.values()):
            self._guarded(driver, lambda: driver.flush(force=False))
        if self.janitor and not self._stopping and mono >= self._due["retention"]:
            report.deleted = self._apply_retention(now)
        return report

    def _apply_retention(self, now: datetime) -> list[str]:
        """One janitor pass: delete at most one batch of runs past the retention settings at ``now``.
        A full batch means more may be due: the next pass comes after ``poll_interval`` rather than
        ``retention_interval``, so a backlog drains in small transactions without stalling the host."""
        from nbflow.store import retention

        assert self.store is not None
        mono = time.monotonic()
        self._due["retention"] = mono + self.settings.retention_interval
        policy = retention.Policy.from_settings(self.settings, now)
        try:
            done = retention.clean(self.store, policy, logs_folder=self.settings.logs_folder,
                                   artifacts_folder=self.settings.artifacts_folder,
                                   batch_size=self.retention_batch_size, max_batches=1)
        except TransientStoreError:
            raise
        except (StoreError, OSError) as exc:
            log.warning("scheduler %s: retention pass failed (%s); trying again in %.0f s", self.host_id, exc,
                        self.settings.retention_interval)
            return []
        if done.more:
            self._due["retention"] = mono + self.settings.poll_interval
        if done.runs:
            log.info("scheduler %s: retention deleted %d run(s), %d file(s), %d bytes", self.host_id,
                     len(done.runs), done.files, done.bytes)
        return [f"{run.dag_id}/{run.run_id}" for run in done.runs]

    def _drain(self) -> None:
        batches: dict[int, list[Outcome]] = {}
        while True:
            try:
                outcome = self.outcomes.get_nowait()
            except queue.Empty:
                break
            if outcome is None:
                continue
            run_pk, task_id = outcome.key
            dropped = self._draining.get(run_pk)
            if dropped is not None and task_id in dropped:  # a try of a driver dropped after an error
                dropped.discard(task_id)
                if not dropped:
                    del self._draining[run_pk]
                continue
            batches.setdefault(run_pk, []).append(outcome)
        for run_pk, outcomes in batches.items():
            driver = self.drivers.get(run_pk)
            if driver is not None:
                self._guarded(driver, lambda: driver.handle_many(outcomes))
                if driver.broken:  # these outcomes came already: nothing more to wait for of them
                    waiting = self._draining.get(run_pk, set())
                    waiting.difference_update(o.key[1] for o in outcomes)
                    if not waiting:
                        self._draining.pop(run_pk, None)
        if batches and any(d.waiting_past for d in self.drivers.values()):
            self._recheck_past({d.dag.dag_id for pk in batches if (d := self.drivers.get(pk)) is not None})

    def _recheck_past(self, dag_ids: set[str] | None = None) -> None:
        """Runs here whose tasks wait for their previous run (depends_on_past) look again, at once
        when a run of the same DAG just ended tasks here (event-driven), else when the host polls."""
        waiting = [d for d in self.drivers.values() if d.waiting_past and (dag_ids is None or d.dag.dag_id in dag_ids)]
        if not waiting:
            return
        for driver in list(self.drivers.values()):  # what just ended must be in the store to be seen
            if dag_ids is None or driver.dag.dag_id in dag_ids:
                self._guarded(driver, driver.flush)
        for driver in waiting:
            self._guarded(driver, driver.recheck_past)

    def _dispatch(self, now: datetime) -> int:
        self._more_to_start = False
        if self._stopping or not self.outage.claiming:
            return 0
        assert self.executor is not None
        held = self.memory_guard.hold() if self.executor.free_slots > 0 else self.held
        if held != self.held:
            if held:
                log.warning("scheduler %s: %s", self.host_id, held)
            else:
                log.info("scheduler %s: free memory is back over min_free_memory; starting tasks again", self.host_id)
            self.held = held
            self._due["heartbeat"] = 0.0  # other hosts and `nbflow scheduler status` learn it now
        if held:
            return 0
        started = 0
        for driver in list(self.drivers.values()):
            self._guarded(driver, lambda: driver.release_due(now))
        # Round-robin so one big run does not starve the others. Slots that free up while tasks
        # start are filled in the same pass (the inline executor's one slot frees within each
        # start), for DISPATCH_SECONDS at most: a burst of short tasks once kept one pass going for
        # the whole burst, with outcomes unrecorded and the heartbeat late (past host_stale_after,
        # other hosts would take this host for dead).
        drivers = sorted(self.drivers.values(), key=lambda d: d.logical_date)
        ends = time.monotonic() + DISPATCH_SECONDS
        progress = True
        while progress and self.executor.free_slots > 0:
            if time.monotonic() >= ends and started:
                self._more_to_start = True
                break
            progress = False
            for driver in drivers:
                free = self.executor.free_slots  # read once: a process executor's takes its lock
                if free <= 0:
                    break
                # an even share, but never a claim smaller than the free slots allow up to
                # MIN_CLAIM: with few slots free, splitting them made a claim per task and run
                share = max(min(free, MIN_CLAIM), free // max(1, len(drivers)))
                n = self._guarded(driver, lambda: driver.dispatch(self.executor, share)) or 0
                started += n
                progress = progress or n > 0
        return started

    def _finish_done(self) -> list[str]:
        finished = []
        for run_pk, driver in list(self.drivers.items()):
            if self._guarded(driver, lambda: driver.done and (driver.finish() or True)):
                kept = driver.kept_outputs() if self.executor.reaches_kept_outputs else []
                if kept:  # nothing reads them now: the cluster may free them
                    try:
                        self.executor.release_outputs(kept)
                    except Exception as exc:  # the cluster went away, and them with it
                        log.warning("%s: outputs kept on the cluster not released: %s", driver.run_id, exc)
                self._assets_dirty = self._assets_dirty or driver.emitted_assets
                finished.append(driver.run_id)
                self.finished_runs.append(driver.run_id)
                del self.drivers[run_pk]
                if self.on_run_finished is not None:
                    self.on_run_finished(driver.run_id)
                self.next_due.pop(driver.dag.dag_id, None)  # a freed run slot may let a due run start
                self._due["poll"] = 0.0  # and a queued run may be waiting for that slot
        return finished

    # -- DAGs and runs ----------------------------------------------------------------------------

    def _reload_dags(self) -> bool:
        """Take in the DAGs as they are now; False while DAG files are still being parsed."""
        if self._fixed_dags is not None:
            from nbflow.engine.sync import source_kind, sync_dag

            given = self._fixed_dags() if callable(self._fixed_dags) else self._fixed_dags
            for dag_id, dag in given.items():
                if self.dags.get(dag_id) is not dag:
                    self.next_due.pop(dag_id, None)
                    sync_dag(self.store, dag, source_kind=source_kind(dag))
            self.dags = dict(given)
            return True
        from nbflow.engine.sync import sync

        paths = list(self._dag_paths or [str(self.settings.dags_folder)])
        if not self._dag_paths:
            from nbflow.engine.discovery import ensure_dags_folder

            ensure_dags_folder(self.settings)
        if self._dag_files is None:
            # imported here: a host given its DAGs (a kernel, dag.test()) never parses files
            from nbflow.engine.dagparsing import BackgroundCollector, DagFileParser

            self._dag_files = BackgroundCollector(DagFileParser())
        self._dag_files.parser.timeout = self.settings.dag_file_timeout
        bag = self._dag_files.collect(paths + self._recorded_notebooks(paths), wait=0.05)
        if bag is None:
            return False
        sync(bag, self.store)
        if set(bag.dags) - set(self.dags):
            self._due["poll"] = 0.0  # a new DAG may have a run queued already: look in this pass
        for dag_id in set(self.dags) - set(bag.dags):
            self.next_due.pop(dag_id, None)
        for dag_id, dag in bag.dags.items():
            old = self.dags.get(dag_id)
            if old is None or old.timetable.description != dag.timetable.description:
                self.next_due.pop(dag_id, None)
        self.dags = dict(bag.dags)
        return True

    def _recorded_notebooks(self, paths: list[str]) -> list[str]:
        """Notebooks the store names as DAG sources (a ``%%dag`` cell ran in them) that live outside
        the folders already scanned: a scheduler host loads them too, headless."""
        assert self.store is not None
        roots = [os.path.abspath(p) for p in paths]
        found = []
        for row in self.store.list_dags():
            fileloc = row.get("fileloc") or ""
            if row.get("source_kind") != "notebook" or not fileloc.endswith(".ipynb") or not os.path.exists(fileloc):
                continue
            absolute = os.path.abspath(fileloc)
            if not any(absolute == root or absolute.startswith(root.rstrip(os.sep) + os.sep) for root in roots):
                found.append(absolute)
        return sorted(set(found))

    def _poll(self) -> None:
        """Pick up what others changed: paused flags, runs created elsewhere, tasks others ran."""
        assert self.store is not None
        # Write what is decided first: a run row still "queued" under this host's buffered start
        # must not look like a run cleared from outside (that would replace its driver and drop the
        # outcomes it holds, such as the failed try of a task adopted from a dead host).
        for driver in list(self.drivers.values()):
            self._guarded(driver, driver.flush)
        self.paused = {row["dag_id"] for row in self.store.list_dags() if row.get("is_paused")}
        self.pools.refresh(self.store)
        active = self.store.list_runs(None, limit=None, states=("queued", "running"))
        self._active_runs = active
        active_pks = {row["id"] for row in active}
        for row in active:
            driver = self.drivers.get(row["id"])
            if driver is None:
                self._adopt_run(row)
                self._reload_for(row)
            elif row["state"] == "queued" and driver.run_state is RunState.RUNNING:
                # cleared or marked from outside (nbflow tasks clear/mark): start again from the store
                self.drivers.pop(row["id"])
                if not driver.running:
                    self._adopt_run(row)
                else:
                    self.drivers[row["id"]] = driver
                    self._guarded(driver, driver.refresh)
        for run_pk, driver in list(self.drivers.items()):
            if run_pk not in active_pks and not driver.running and driver.host_id is not None:
                # marked finished from outside: nothing left for this host to do
                row = self.store.get_run_by_pk(run_pk)
                if row is None or row["state"] in ("success", "failed"):
                    del self.drivers[run_pk]
        for driver in list(self.drivers.values()):
            if driver.elsewhere:
                self._guarded(driver, driver.refresh)
        self._recheck_past()

    def _reload_for(self, row: dict[str, Any]) -> None:
        """A queued run of a DAG this host has not loaded yet (its file was added a moment ago, and
        the run triggered from Lab or the command line): read the DAG files now rather than at the
        next ``dag_reload_interval``, once per run, so the run starts within a poll or two."""
        if (self._fixed_dags is not None or row["dag_id"] in self.dags or row["state"] != "queued"
                or row["run_type"] not in self.run_types or row["id"] in self._reloaded_for):
            return
        self._reloaded_for.add(row["id"])
        self._due["reload"] = 0.0

    def _notify_deadlines(self, now: datetime) -> None:
        """Tell of each run still queued or running past its DAG's ``deadline`` (after its logical
        date). The store marks the notice before it goes out, in one update from NULL, so among all
        the hosts watching the run one sends it, once; the run itself goes on."""
        from nbflow.notifications import deadline_targets, send_later

        assert self.store is not None
        for row in getattr(self, "_active_runs", ()):
            dag = self.dags.get(row["dag_id"])
            deadline = getattr(dag, "deadline", None)
            if (deadline is None or row.get("deadline_notified_at") is not None or row.get("logical_date") is None
                    or (self.only_runs is not None and row["id"] not in self.only_runs)):
                continue
            due = row["logical_date"] + deadline
            if now < due or not self.store.claim_deadline_notice(row["id"], now):
                continue
            targets = deadline_targets(dag, self.settings)
            late = now - row["logical_date"]
            context = {"dag": dag, "run_id": row["run_id"], "logical_date": row["logical_date"],
                       "event": f"not finished {_span(late)} after its logical date (deadline {_span(deadline)})",
                       "state": row["state"], "deadline": deadline}
            self.store.add_events([{"kind": "deadline_missed", "dag_id": row["dag_id"], "run_id": row["run_id"],
                                    "detail": {"deadline": deadline.total_seconds(), "targets": len(targets)}}])
            if not targets:
                log.warning("scheduler %s: run %s of DAG %s is past its deadline, and no one is told: set the DAG's "
                            "deadline_notify or notify_on_failure, or the notify_on_failure setting",
                            self.host_id, row["run_id"], row["dag_id"])
                continue
            send_later(functools.partial(_send_deadline_notice, targets, self.settings), context,
                       lambda exc, run_id=row["run_id"]: log.warning(
                           "scheduler %s: the deadline notice of run %s failed: %s", self.host_id, run_id, exc))

    def _adopt_run(self, row: dict[str, Any]) -> RunDriver | None:
        """Start driving a run this host knows the DAG of."""
        if row["run_type"] not in self.run_types or row["dag_id"] in self.paused and row["state"] == "queued":
            return None
        if self.only_runs is not None and row["id"] not in self.only_runs:
            return None
        if row["id"] in self._draining or self._driver_failures.get(row["id"], 0) >= MAX_DRIVER_FAILURES:
            return None  # its dropped driver's tries have not all ended, or this host gave it up
        dag = self.dags.get(row["dag_id"])
        if dag is None or self._stopping:
            return None
        active = sum(1 for d in self.drivers.values() if d.dag.dag_id == dag.dag_id)
        if row["state"] == "queued" and active >= dag.max_active_runs:
            return None
        assert self.store is not None and self.executor is not None
        try:
            driver = RunDriver(dag, self.store, self.settings, run=row, in_process=self.executor.in_process,
                               host_id=self.host_id if self.claims else None, pools=self.pools)
        except StoreError:
            raise
        except Exception as exc:
            if self.kind not in CONTAINING_KINDS:
                raise
            self._driver_failures[row["id"]] = self._driver_failures.get(row["id"], 0) + 1
            log.error("scheduler %s: run %s of DAG %s could not be read into a driver (%s: %s; a bug in nbflow, "
                      "please report it with the traceback below); this host's other runs go on", self.host_id,
                      row["run_id"], dag.dag_id, type(exc).__name__, exc, exc_info=exc)
            return None
        self.drivers[row["id"]] = driver
        self._guarded(driver, driver.begin)
        return None if driver.broken else driver

    def _first_due(self, dag: DAG, now: datetime) -> datetime | None:
        """The next logical date this DAG should get a scheduled run for."""
        from nbflow.timetables import OnceTimetable

        assert self.store is not None
        timetable = dag.timetable
        last = self.store.last_logical_date(dag.dag_id, ("scheduled",))
        if not timetable.periodic:
            if isinstance(timetable, OnceTimetable) and last is None and dag.start_date is not None:
                return dag.start_date
            return None
        if last is not None:
            candidate = timetable.next_after(last.astimezone(dag.timezone))
        elif dag.start_date is not None:
            candidate = timetable.next_after(dag.start_date - timedelta(microseconds=1))
        else:
            candidate = timetable.latest_at_or_before(now.astimezone(dag.timezone)) or timetable.next_after(now)
        if not dag.catchup and candidate is not None and candidate <= now:
            latest = timetable.latest_at_or_before(now.astimezone(dag.timezone))
            if latest is not None and latest > candidate:
                candidate = latest
        if candidate is not None and dag.end_date is not None and candidate > dag.end_date:
            return None
        return candidate

    def _next_due(self, dag: DAG, now: datetime) -> datetime | None:
        """The DAG's next due logical date, worked out again when forgotten (a finished run forgets
        it so that a run waiting for a free slot can start)."""
        due = self.next_due.get(dag.dag_id, _UNKNOWN)
        if due is _UNKNOWN:
            due = self.next_due[dag.dag_id] = self._first_due(dag, now)
        return due

    def _create_due_runs(self, now: datetime) -> list[str]:
        created: list[str] = []
        active_by_dag: Counter[str] | None = None
        assert self.store is not None
        for dag_id, dag in self.dags.items():
            if dag_id in self.paused:
                continue
            due = self._next_due(dag, now)
            if due is None or due > now:
                continue
            if not dag.catchup:
                # without catchup, time that passed since the last run is skipped: only the latest
                latest = dag.timetable.latest_at_or_before(now.astimezone(dag.timezone))
                if latest is not None and latest > due:
                    due = latest if dag.end_date is None or latest <= dag.end_date else None
            if active_by_dag is None:
                active_by_dag = Counter(d.dag.dag_id for d in self.drivers.values())
            active = active_by_dag[dag_id]
            while due is not None and due <= now and active < dag.max_active_runs:
                run_id = self._create_run(dag, due)
                if run_id is not None:
                    created.append(run_id)
                active += 1
                due = dag.timetable.next_after(due)
                if due is not None and dag.end_date is not None and due > dag.end_date:
                    due = None
            self.next_due[dag_id] = due
        return created

    def _create_asset_runs(self) -> list[str]:
        """Runs of DAGs scheduled on assets whose condition holds over their events not taken yet.

        Looked at every ``poll_interval``, and at once when this host recorded events; DAGs without
        an asset schedule cost nothing here. Each run claims its events in the store as it is
        created, so hosts looking at the same events make one run between them.
        """
        assert self.store is not None
        self._due["assets"] = time.monotonic() + self.settings.poll_interval
        for driver in self.drivers.values():
            if driver.emitted_assets:  # write its events first, so that they are seen below
                driver.flush()
                driver.emitted_assets = False
        self._assets_dirty = False
        created: list[str] = []
        for dag_id, dag in self.dags.items():
            condition = dag.timetable.asset_condition
            if condition is None:
                continue
            if dag_id not in self._consumers:  # paused too: events from now on wait for it
                self.store.register_asset_consumer(dag_id)
                self._consumers.add(dag_id)
            if dag_id in self.paused:
                continue
            if sum(1 for d in self.drivers.values() if d.dag.dag_id == dag_id) >= dag.max_active_runs:
                continue  # its events wait for a free run slot, then start one run
            events = self.store.pending_asset_events(dag_id, condition.uris())
            if not events or not condition.holds({event["uri"] for event in events}):
                continue
            # the run's logical date is the time of the event that made the condition hold
            when = max(event["created_at"] for event in events).astimezone(dag.timezone)
            new = create_run(self.store, dag, when, run_type="asset_triggered", consume=[e["id"] for e in events])
            if new is None:
                continue  # another host took these events: its run is picked up like any run
            row = self.store.get_run_by_pk(new.run_pk)
            if row is not None:
                self._adopt_run(row)
            created.append(new.run_id)
        return created

    def _create_run(self, dag: DAG, logical_date: datetime, run_type: str = "scheduled") -> str | None:
        assert self.store is not None
        new = create_run(self.store, dag, logical_date, run_type=run_type)
        if new is None:
            return None  # another host created it first; it will be picked up like any run
        row = self.store.get_run_by_pk(new.run_pk)
        if row is not None:
            self._adopt_run(row)
        return new.run_id

    # -- dead hosts -------------------------------------------------------------------------------

    def _adopt_orphans(self, now: datetime) -> list[str]:
        """Find hosts that stopped heartbeating (or whose process is gone) and take over the task
        instances they held: each is a failed try, retried or failed by its task's policy."""
        assert self.store is not None
        # Right after an outage, the others' heartbeats are as old as the outage: they could not beat
        # either. That silence is forgiven until they have had time to beat again.
        credit = self.outage.heartbeat_credit(self.settings.host_stale_after, self.settings.heartbeat_interval)
        stale_before = now - timedelta(seconds=self.settings.host_stale_after + credit)
        dead = []
        for host in self.store.list_hosts():
            if host["host_id"] == self.host_id:
                continue
            gone = host["state"] != "running" or (host["heartbeat_at"] is not None and host["heartbeat_at"] < stale_before)
            if not gone and host["hostname"] == self.hostname and not pid_alive(host["pid"]):
                gone = True
            if gone:
                dead.append(host)
        if not dead:
            return []
        self.store.mark_hosts_dead([h["host_id"] for h in dead if h["state"] == "running"])
        names = {h["host_id"]: h for h in dead}
        held = self.store.held_by(list(names))
        adopted: list[str] = []
        by_run: dict[tuple[int, str], list[str]] = {}
        for row in held:
            by_run.setdefault((row["run_pk"], row["claimed_by"]), []).append(row["ti_key"])
        for (run_pk, from_host), task_ids in by_run.items():
            driver = self.drivers.get(run_pk)
            if driver is None:
                row = self.store.get_run_by_pk(run_pk)
                if row is None or row["state"] not in ("queued", "running"):
                    continue
                driver = self._adopt_run(row)
                if driver is None:
                    continue
            taken = self.store.adopt(run_pk, task_ids, from_host, self.host_id)
            host = names[from_host]
            for task_id, (fence, try_number) in taken.items():
                self._guarded(driver, lambda: driver.lost(task_id, (
                    f"WorkerLostError: scheduler host {from_host} (pid {host['pid']} on {host['hostname']}) "
                    "stopped while this task ran; the try counts as failed and is retried if retries are left"
                ), fence=fence, try_number=try_number))
                adopted.append(f"{driver.run_id}:{task_id}")
        return adopted

    # -- serving ----------------------------------------------------------------------------------

    def next_deadline(self) -> float:
        """When the next pass is needed even if no outcome arrives (a ``time.monotonic`` value)."""
        mono = time.monotonic()
        deadlines = [self._due["heartbeat"], self._due["poll"], self._due["reload"]]
        if self._assets_dirty or self._more_to_start:
            deadlines.append(mono)
        if self.held:
            deadlines.append(mono + MEMORY_CHECK_SECONDS)  # look at the machine's memory again
        now = utcnow()
        for due in self.next_due.values():
            if isinstance(due, datetime) and not self._stopping:
                deadlines.append(mono + max(0.0, (due - now).total_seconds()))
        for driver in self.drivers.values():
            for wake in (driver.next_wake(), driver.deadline):
                if wake is not None:
                    deadlines.append(mono + max(0.0, (wake - now).total_seconds()))
            if driver.pending():
                deadlines.append(driver._last_flush + 0.02)
        return min(deadlines)

    def idle(self, now: datetime | None = None) -> bool:
        """No run in progress here or waiting in the store, and none due now."""
        now = now or utcnow()
        if self.drivers or self._draining or (self._assets_dirty and self.create_runs and not self._stopping):
            return False
        if self.create_runs and not self._stopping:
            for dag_id, dag in self.dags.items():
                if dag_id in self.paused:
                    continue
                due = self._next_due(dag, now)
                if isinstance(due, datetime) and due <= now:
                    return False
        assert self.store is not None
        waiting = [r for r in self.store.list_runs(None, limit=None, states=("queued", "running"))
                   if r["run_type"] in self.run_types and r["dag_id"] in self.dags
                   and (self.only_runs is None or r["id"] in self.only_runs)]
        return not waiting

    def _wait(self, timeout: float) -> None:
        try:
            outcome = self.outcomes.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return
        if outcome is not None:
            self.outcomes.put(outcome)

    def serve(self, stop: threading.Event | None = None, *, exit_when_idle: bool = False, grace: float = 60.0) -> None:
        """Run passes until ``stop`` is set (or, with ``exit_when_idle``, until there is nothing to do)."""
        stop = stop or threading.Event()
        self._stop_event = stop
        self.start()
        try:
            failures = 0
            while not stop.is_set():
                try:
                    self.tick()
                    if exit_when_idle and self.idle():
                        break
                    failures = 0
                except TransientStoreError as exc:
                    # A locked, restarting or unreachable database: tasks go on, their outcomes are
                    # decided in memory and written when it answers (the outage says so, once).
                    if exc is not self.outage.last_error:  # raised outside tick (idle)
                        self.outage.failed(exc)
                    self._wait_offline(stop, self.outage.delay())
                    continue
                except StoreError as exc:
                    # Not an outage (a schema changed under this host): nothing decided is lost (it
                    # is still in memory, or a retry for whoever holds the task). Back off, try again.
                    failures += 1
                    log.warning("scheduler %s: store error (%s), retrying in %.1f s", self.host_id, exc,
                                min(5.0, 0.2 * 2 ** failures))
                    stop.wait(min(5.0, 0.2 * 2 ** failures))
                    continue
                self._wait(self.next_deadline() - time.monotonic())
        finally:
            self.close(grace=grace)

    def _wait_offline(self, stop: threading.Event, delay: float) -> None:
        """Wait ``delay`` seconds before trying the store again, deciding meanwhile the outcomes of
        the tasks that end: their retries, downstream plans and callbacks need no store."""
        deadline = time.monotonic() + delay
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wait(left)
            self._drain()

    def assets_changed(self) -> None:
        """Asset events were recorded in this process (the REST API): look at asset schedules now."""
        self._assets_dirty = True
        self.wake()

    def wake(self) -> None:
        """Make a sleeping :meth:`serve` look again now (used by ``stop`` and by new work)."""
        self.outcomes.put(None)

    def _detail(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "runs": sorted(d.run_id for d in self.drivers.values())[:50],
            "running_tasks": sum(len(d.running) for d in self.drivers.values()),
            "dags": len(self.dags),
            **({"held": self.held} if self.held else {}),
            # where the tasks run: the executor, and for a cluster its address and dashboard link
            **({"executor": self.executor.name, **self.executor.where()} if self.executor is not None else {}),
        }


# -- the in-kernel host -----------------------------------------------------------------------------

_kernel: dict[str, Any] = {}
_DEADLINE_TITLE = "[nbflow] {{ dag_id }} run of {{ when }} is past its deadline"
_DEADLINE_BODY = """\
DAG: {{ dag_id }}
Run: {{ run_id }}, logical date {{ when }}
State: {{ state }}, {{ event }}

Open in JupyterLab: {{ url }}
"""


def _send_deadline_notice(targets: list[str], settings: Settings, context: dict[str, Any]) -> None:
    from nbflow.notifications import deliver, message_context, render_message

    values = message_context(context, settings)
    title, body = render_message(_DEADLINE_TITLE, _DEADLINE_BODY, values)
    deliver(targets, title, body, "failed", values["dag_id"])


def _span(delta: timedelta) -> str:
    """``2h 5m``, ``45s``: a duration as people read it."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    parts = [f"{days}d"] if days else []
    for size, unit in ((3600, "h"), (60, "m"), (1, "s")):
        amount, rest = divmod(rest, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts[:2]) or "0s"


_kernel_lock = threading.Lock()


def start(*, executor: str | None = None, dags: list[DAG] | None = None, dag_paths: list[str] | None = None) -> Scheduler:
    """Run a scheduler in a background thread of this process (a Jupyter kernel, a script).

    It schedules the DAGs of ``dags_folder`` and the DAGs built in this process (or exactly ``dags``),
    never blocks the caller, and stops when the process exits.
    """
    with _kernel_lock:
        current = _kernel.get("scheduler")
        if current is not None and _kernel["thread"].is_alive():
            return current
        fixed = None
        if dags is not None:
            fixed = {d.dag_id: d for d in dags}
        elif dag_paths is None:
            from nbflow.context import built_dags

            fixed = built_dags
        scheduler = Scheduler(executor=executor, dags=fixed, dag_paths=dag_paths, kind="kernel")
        stop_event = threading.Event()
        thread = threading.Thread(target=scheduler.serve, args=(stop_event,), kwargs={"grace": 10.0},
                                  name="nbflow-scheduler", daemon=True)
        _kernel.update(scheduler=scheduler, thread=thread, stop=stop_event)
        thread.start()
        if not _kernel.get("atexit"):
            atexit.register(stop)
            _kernel["atexit"] = True
        return scheduler


def stop(timeout: float = 15.0) -> None:
    """Stop the in-process scheduler started by :func:`start`, letting running tasks finish."""
    with _kernel_lock:
        scheduler, thread, stop_event = _kernel.get("scheduler"), _kernel.get("thread"), _kernel.get("stop")
        if scheduler is None:
            return
        stop_event.set()
        scheduler.wake()
        thread.join(timeout)
        _kernel.clear()
        _kernel["atexit"] = True


def status() -> dict[str, Any]:
    """Whether the in-process scheduler runs, and what it is doing."""
    scheduler, thread = _kernel.get("scheduler"), _kernel.get("thread")
    if scheduler is None or thread is None or not thread.is_alive():
        return {"running": False}
    return {"running": True, "host_id": scheduler.host_id, **scheduler._detail(),
            "finished_runs": list(scheduler.finished_runs[-20:])}
