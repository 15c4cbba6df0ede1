"""``RunDriver``: one DAG run's decisions, from its first task to its last.

A driver holds the run's task states in memory, plans with them, dispatches ready tasks to an
executor, and records outcomes: it is the one writer of the run's outcomes. It is passive: whoever
owns it feeds it outcomes and asks it to dispatch: a scheduler host owns one per active run and
shares one executor between them (``dag.test()`` and backfills are hosts of their own runs).

Under a scheduler host (``host_id`` given) the store stays the referee, through fenced claims. A
task instance is claimed with an atomic compare-and-swap on the fence this driver last read; the
claim raises the fence, hands it to the driver and writes the try's row. Every later write of that
task instance (state, try, output) carries the fence it was decided under, and the store refuses it
once the row's fence has moved (another host claimed or adopted it, a user cleared or marked it), so
a write buffered before a newer claim never lands over it. Writes are coalesced: while tasks flow,
everything decided goes out in one transaction per ``FLUSH_INTERVAL``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
import traceback as tb
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from nbflow import observers
from nbflow.errors import FailTask, MemoryLimitError, NbflowError, OutputOnClusterError, StoreError, TaskTimeoutError
from nbflow.mapping import MappingError, split_key, ti_key
from nbflow.memory import parse_size
from nbflow.outputs import CLUSTER, cluster_names, output_row, read_stored
from nbflow.paths import safe_path_part, task_folder
from nbflow.planner import Decision, instance_verdict, plan_after, plan_start, run_outcome
from nbflow.engine.pools import PoolSlots
from nbflow.engine.outcomes import Ending, TryEnded, decide
from nbflow.engine.runner import TaskRequest, TaskResult, run_task
from nbflow.engine.shipping import shipment
from nbflow.states import FINISHED_TASK_STATES, RunState, TaskState, check_run_transition, check_task_transition

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.executors import Executor, Outcome
    from nbflow.settings import Settings
    from nbflow.store import Store

S = TaskState
#: While tasks are flowing, store writes are coalesced into one transaction per this many seconds.
#: A crash can lose at most this much bookkeeping; those tasks are found by their stale heartbeat.
FLUSH_INTERVAL = 0.02
#: the runs a task with depends_on_past looks back at, and the states that let it go on
PAST_RUN_TYPES = ("scheduled", "manual", "backfill", "asset_triggered")
PAST_DONE = ("success", "skipped")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class RunDriver:
    """The in-memory state of one DAG run and every decision on it."""

    #: states a claim may take a task instance from (the planner decided it is ready)
    CLAIMABLE = ("none", "scheduled", "up_for_retry", "up_for_reschedule")

    def __init__(
        self,
        dag: DAG,
        store: Store,
        settings: Settings,
        *,
        run: dict[str, Any],
        in_process: bool = True,
        host_id: str | None = None,
        pools: PoolSlots | None = None,
    ) -> None:
        self.dag = dag
        self.store = store
        self.settings = settings
        #: the memory_limit of tasks that set none (bytes; None: no limit)
        self._memory_limit = parse_size(settings.task_memory_limit) if settings.task_memory_limit else None
        self.host_id = host_id
        self.pools = pools or PoolSlots()
        self.run_pk: int = run["id"]
        self.run_id: str = run["run_id"]
        self.run_state = RunState(run["state"])
        self.logical_date: datetime = run["logical_date"].astimezone(dag.timezone)
        self.interval = (
            (run.get("data_interval_start") or run["logical_date"]).astimezone(dag.timezone),
            (run.get("data_interval_end") or run["logical_date"]).astimezone(dag.timezone),
        )
        self.conf: dict[str, Any] = run.get("conf") or {}
        self.run_type: str = run.get("run_type") or "manual"
        self.run_start_date: datetime | None = run.get("start_date")
        self.states: dict[str, TaskState] = {}
        self.try_numbers: dict[str, int] = {}
        #: the error of each task that failed in this run, for the run's failure notification
        self.failure_texts: dict[str, str] = {}
        self.max_tries: dict[str, int] = {}
        self.started: dict[str, datetime] = {}
        self.first_attempt: dict[str, datetime] = {}
        self.wake_at: dict[str, datetime] = {}          # retries and reschedules, in UTC
        self.outputs: dict[str, tuple[str, str | bytes]] = {}
        self.pushed: dict[str, dict[str, tuple[str, str | bytes]]] = {}  # task_id -> key -> ti.xcom_push value
        self.decisions: dict[str, Decision] = {}
        self.running: set[str] = set()
        self.elsewhere: set[str] = set()                 # claimed by another host
        self._executor: Executor | None = None            # the one dispatch last used, to stop lost tries
        self.fences: dict[str, int] = {}                 # the fence each task had when last read or claimed
        self.orphaned: set[str] = set()                  # held by this host in the store, run by no driver
        self._taken_over: set[str] = set()               # lost tries of a dead host, being recorded
        self.ready: list[str] = []
        #: a mapped task's instances by map index, once it is expanded (task id -> their keys)
        self.instances: dict[str, list[str]] = {}
        self.mapped: frozenset[str] = frozenset(t for t, task in dag.task_dict.items() if task.is_mapped)
        self._ready_sorted = True
        self._log_folder_made = False
        self._pending_expansions: list[str] = []
        self.order = {tid: i for i, tid in enumerate(dag.topological_order())}
        #: tasks that wait for their previous run (depends_on_past), and those waiting now. A test run
        #: neither waits nor counts as a previous run: like Airflow's dag.test(), it is a trial.
        self.past_gated: frozenset[str] = frozenset(
            tid for tid, t in dag.task_dict.items() if t.depends_on_past
        ) if run.get("run_type") != "test" else frozenset()
        self.waiting_past: set[str] = set()
        #: what a try of this DAG carries to a worker process (None: tries run in this process)
        self.shipment = None if in_process else shipment(dag)
        self.hostname = socket.gethostname()
        self.log_folder = os.path.join(settings.logs_folder, safe_path_part(dag.dag_id), safe_path_part(self.run_id))
        self._appended: set[str] = set()
        #: task changes not written yet, merged as they come: task id -> fence -> columns (later
        #: values win, so a task that ran and finished between two writes is written once)
        self._task_changes: dict[str, dict[int | None, dict[str, Any]]] = {}
        self._tries: list[dict[str, Any]] = []
        self._outputs: list[dict[str, Any]] = []
        self._xcoms: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        self._asset_events: list[dict[str, Any]] = []   # of successful tasks' outlets
        #: whether this driver recorded asset events (its host then looks at asset schedules at once)
        self.emitted_assets = False
        self._triggering: dict[str, list[dict[str, Any]]] | None = None  # read once, asset-triggered runs only
        self._run_changes: dict[str, Any] = {}
        self._last_flush = 0.0
        self._outputs_loaded = False
        #: a task of this run succeeded where this driver did not see its output (see kept_outputs)
        self._succeeded_elsewhere = False
        #: when the run is past ``dagrun_timeout`` (None: no limit, or not started); the host compares
        #: it with its clock once per pass (:meth:`time_out`)
        self.deadline: datetime | None = None
        self.timed_out = False
        #: set by its host when one of its steps raised an internal error: it is driven no more
        self.broken = False
        self._set_deadline()
        self._load(store.get_task_instances(self.run_pk))

    def _set_deadline(self) -> None:
        limit = self.dag.dagrun_timeout
        if limit is not None and self.run_start_date is not None and not self.timed_out:
            self.deadline = self.run_start_date + limit

    def _load(self, rows: list[dict[str, Any]]) -> None:
        """Take the store's view of the tasks this driver is not running itself."""
        expanded = False
        for row in rows:
            task_id = row["ti_key"]
            if row["task_id"] not in self.dag.task_dict or task_id in self.running:
                continue
            state = TaskState(row["state"])
            if row["map_index"] >= 0:
                expanded |= self._add_instance(row["task_id"], row["map_index"])
            elif row["task_id"] in self.mapped:
                self._load_mapped(task_id, state, row)
                continue
            self.try_numbers[task_id] = row["try_number"] or 0
            self.fences[task_id] = row.get("fence") or 0
            if (state in (S.QUEUED, S.RUNNING) and self.host_id is not None
                    and row.get("claimed_by") == self.host_id):
                self.orphaned.add(task_id)
            if row.get("max_tries"):
                self.max_tries[task_id] = row["max_tries"]
            if state in (S.QUEUED, S.RUNNING):
                self.elsewhere.add(task_id)
            else:
                self.elsewhere.discard(task_id)
            if (state in (S.QUEUED, S.RUNNING) or state.finished) and task_id in self.ready:
                self.ready.remove(task_id)  # another host took it since we planned it
            if state in (S.UP_FOR_RETRY, S.UP_FOR_RESCHEDULE):
                self.wake_at[task_id] = row["next_retry_at"] or utcnow()
            else:  # its wait ended elsewhere (another host ran the retry): no wake-up here
                self.wake_at.pop(task_id, None)
                if state is S.UP_FOR_RESCHEDULE and row.get("start_date"):
                    self.first_attempt[task_id] = row["start_date"]
            if state is S.SCHEDULED and task_id not in self.ready:
                self._make_ready(task_id)
            if state.finished and self.states.get(task_id) is not state and state is S.SUCCESS:
                self._outputs_loaded = False
                self._succeeded_elsewhere = True
            self.states[task_id] = state
        for task_id in self.dag.task_dict:
            self.states.setdefault(task_id, S.NONE)
        if expanded:
            for keys in self.instances.values():
                keys.sort(key=lambda key: split_key(key)[1])
        for task_id in self.mapped:
            if self.states.get(task_id) in (S.NONE, S.SCHEDULED):
                self._forget_instances(task_id)  # cleared: it expands again, maybe to fewer instances

    def _forget_instances(self, task_id: str, keep: int = 0) -> None:
        """Drop this driver's knowledge of a mapped task's instances from map index ``keep`` on."""
        keys = self.instances.get(task_id, [])
        gone = [key for key in keys if split_key(key)[1] >= keep]
        if not gone:
            return
        for key in gone:
            self.states.pop(key, None)
            self.elsewhere.discard(key)
            self.wake_at.pop(key, None)
            if key in self.ready:
                self.ready.remove(key)
        self.instances[task_id] = [key for key in keys if key not in gone]

    def _add_instance(self, task_id: str, map_index: int) -> bool:
        keys = self.instances.setdefault(task_id, [])
        key = ti_key(task_id, map_index)
        if key in keys:
            return False
        keys.append(key)
        return True

    def _load_mapped(self, task_id: str, state: TaskState, row: dict[str, Any]) -> None:
        """A mapped task's own row: the state the planner sees. It is never claimed (its instances
        are); ``running`` means expanded, and a ``scheduled`` one another host has not expanded yet
        is expanded here."""
        self.fences[task_id] = row.get("fence") or 0
        self.elsewhere.discard(task_id)
        if state.finished and state is S.SUCCESS and self.states.get(task_id) is not state:
            self._outputs_loaded = False
            self._succeeded_elsewhere = True
        self.states[task_id] = state
        if state is S.SCHEDULED:
            self._pending_expansions.append(task_id)

    # -- driving ----------------------------------------------------------------------------------

    def begin(self) -> None:
        """Mark the run running and plan it from the states it has (new, or resumed)."""
        if self.run_state is RunState.QUEUED:
            self.run_state = check_run_transition(self.run_state, RunState.RUNNING)
            self.run_start_date = utcnow()
            if self.host_id is None:
                self._change_run(state=RunState.RUNNING.value, start_date=self.run_start_date)
            else:
                # Written now, not buffered: a host that dies before its first flush must not leave
                # its run "queued" under tasks it claimed, which other hosts would take for a run
                # cleared from outside. False means another host started it first: nothing to do.
                self.store.claim_run(self.run_pk, ("queued",), RunState.RUNNING.value, start_date=self.run_start_date)
                observers.notify(self.dag.dag_id, self.run_id, None, RunState.RUNNING.value)
            self._set_deadline()
        else:  # resumed: views in this process learn that it is driven here now
            observers.notify(self.dag.dag_id, self.run_id, None, self.run_state.value)
        self._fail_orphans()
        self._derive_decisions()
        self._apply(plan_start(self.dag, self.states).changes)
        self._catch_up_mapped()

    def refresh(self) -> None:
        """Re-read task states another host may have changed, and plan again."""
        self.flush()
        self._load(self.store.get_task_instances(self.run_pk))
        self._fail_orphans()
        self._derive_decisions()
        self._apply(plan_start(self.dag, self.states).changes)
        self._catch_up_mapped()

    def _fail_orphans(self) -> None:
        """Task instances this host holds in the store that this driver does not run: an earlier
        driver of this host for the run was replaced without their outcome. Nobody else adopts them
        while this host beats, so their try counts as lost here, and is retried by its policy."""
        for task_id in sorted(self.orphaned - self.running):
            self.lost(task_id, (
                f"WorkerLostError: scheduler host {self.host_id} lost track of try "
                f"{self.try_numbers.get(task_id, 0)} of this task; the try counts as failed and is retried "
                "if retries are left"
            ))
        self.orphaned.clear()

    @property
    def done(self) -> bool:
        return not (self.running or self.ready or self.wake_at or self.elsewhere) and (
            run_outcome(self.dag, self.states) is not None
        )

    def next_wake(self) -> datetime | None:
        return min(self.wake_at.values()) if self.wake_at else None

    def release_due(self, now: datetime) -> None:
        """Retries and reschedules whose time has come become ready."""
        for task_id, due in list(self.wake_at.items()):
            if due <= now:
                del self.wake_at[task_id]
                self._set(task_id, S.SCHEDULED)
                self._make_ready(task_id)

    def dispatch(self, executor: Executor, budget: int) -> int:
        """Start up to ``budget`` ready tasks, most important first; return how many started."""
        self._executor = executor
        started = 0
        while True:
            count, missed = self._dispatch_batch(executor, budget - started)
            started += count
            # Another host claimed some first: its ready list is the same as ours, so try the next
            # ones now instead of leaving our slots idle until the next poll.
            if not missed or started >= budget or not self.ready:
                return started

    def _dispatch_batch(self, executor: Executor, budget: int) -> tuple[int, int]:
        """One claim: return how many tasks started and how many another host had claimed."""
        if not self.ready or budget <= 0:
            return 0, 0
        room = self.dag.max_active_tasks - len(self.running)
        count = min(budget, room, len(self.ready))
        if count <= 0:
            return 0, 0
        if not self._ready_sorted:
            # most important last, so that taking the next task is a pop from the end
            self.ready.sort(key=self._priority, reverse=True)
            self._ready_sorted = True
        chosen: list[str] = []
        refused: list[str] = []
        # a host's executor may hold others that tasks ask for (executor="dask"): each takes what
        # it has slots for, the rest wait in the ready list
        slots: dict[int, int] = {}
        while self.ready and len(chosen) < count:
            task_id = self.ready.pop()
            task = self._task(task_id)
            member = executor.route(task.runs_with)
            left = slots.get(id(member))
            if left is None:
                left = member.free_slots
            if left > 0 and self.pools.admit(task.pool, task.pool_slots):
                chosen.append(task_id)
                slots[id(member)] = left - 1
            else:
                refused.append(task_id)
                slots[id(member)] = left
        self.ready.extend(reversed(refused))
        missed = 0
        if self.host_id is not None:
            # No flush first: a ready task's stored state is claimable whatever is still pending,
            # and the pending changes merge to "running" once this task starts.
            try:
                claimed = self.store.claim_task_instances(
                    self.run_pk, chosen, self.host_id, from_states=self.CLAIMABLE, to_state="running",
                    try_numbers={task_id: self._next_try(task_id) for task_id in chosen},
                    seen={task_id: self.fences.get(task_id, 0) for task_id in chosen}, hostname=self.hostname)
            except StoreError:
                # The store did not answer: the tasks stay ready for when it does. Should the claim
                # have landed all the same, the store names them held by this host and the re-read
                # after the outage (refresh) counts those tries as lost, never runs them twice.
                self._unchoose(chosen)
                raise
            self._took(claimed)
            for task_id in chosen:
                if task_id not in claimed:
                    self.elsewhere.add(task_id)
                    self.states[task_id] = S.RUNNING
                    task = self._task(task_id)
                    self.pools.release(task.pool, task.pool_slots)
            missed = len(chosen) - len(claimed)
            chosen = [t for t in chosen if t in claimed]
        for index, task_id in enumerate(chosen):
            try:
                self._start(task_id, executor)
            except StoreError:
                # Claimed but not started (reading upstream outputs failed): their pool slots go
                # back; the store holds them for this host, so the re-read after the outage counts
                # those tries as lost and retries them by their policy.
                for unstarted in chosen[index:]:
                    task = self._task(unstarted)
                    self.pools.release(task.pool, task.pool_slots)
                raise
        return len(chosen), missed

    def _unchoose(self, chosen: list[str]) -> None:
        """Give tasks taken off the ready list for a claim that failed back their place and slots."""
        for task_id in chosen:
            task = self._task(task_id)
            self.pools.release(task.pool, task.pool_slots)
            self._make_ready(task_id)

    def _took(self, fences: dict[str, int]) -> None:
        """This host now holds these task instances with these fences. What it buffered for them
        before was decided under an older fence: the store would refuse it, so it is dropped here."""
        if not fences:
            return
        self.fences.update(fences)
        for task_id in fences:  # by key: a filter of every buffered change cost 0.25 ms a claim at 1,000 tasks
            self._task_changes.pop(task_id, None)

    def _priority(self, task_id: str) -> tuple[int, int, int]:
        base, index = split_key(task_id)
        return (-self._task(task_id).priority_weight, self.order[base], index)

    def _task(self, key: str) -> Any:
        """The task of a task instance's key (a mapped instance's ``task_id[3]`` gives its task)."""
        task = self.dag.task_dict.get(key)
        return task if task is not None else self.dag.task_dict[split_key(key)[0]]

    def _make_ready(self, task_id: str) -> None:
        self.ready.append(task_id)
        self._ready_sorted = False

    def _next_try(self, task_id: str) -> int:
        """The try number the next start of ``task_id`` takes: a reschedule goes on with its try."""
        rescheduled = self.states.get(task_id) is S.UP_FOR_RESCHEDULE or task_id in self.first_attempt
        return self.try_numbers.get(task_id, 0) + (0 if rescheduled and self.try_numbers.get(task_id) else 1)

    def _start(self, task_id: str, executor: Executor) -> None:
        task = self._task(task_id)
        # first, as the one step that may need the store: if it fails, nothing here has changed yet
        upstream = self._upstream_outputs(task, task_id)
        try_number = self._next_try(task_id)
        self.try_numbers[task_id] = try_number
        now = utcnow()
        self.started[task_id] = now
        first = self.first_attempt.get(task_id, now)
        log_path = self._log_path(task_id, try_number)
        self.running.add(task_id)
        if not self._log_folder_made:
            os.makedirs(self.log_folder, exist_ok=True)
            self._log_folder_made = True
        self._set(task_id, S.RUNNING, try_number=try_number, start_date=first, end_date=None,
                  duration=None, hostname=self.hostname, log_path=log_path, heartbeat_at=now)
        member = executor.route(task.runs_with)  # the host's, or the one the task asks for
        if not member.reads_kept_outputs:
            upstream = self._fetch_kept(upstream, executor)
        # a try that leaves this process carries the DAG's shipment; one run here, the task itself
        if member.in_process:
            shipped = None
        else:
            if self.shipment is None:
                self.shipment = shipment(self.dag)
            shipped = self.shipment
        request = TaskRequest(
            dag_id=self.dag.dag_id, task_id=task.task_id, run_id=self.run_id, try_number=try_number,
            max_tries=self.max_tries.get(task_id, task.retries + 1), logical_date=self.logical_date,
            data_interval_start=self.interval[0], data_interval_end=self.interval[1], conf=self.conf,
            log_path=log_path, operator=task if shipped is None else shipped.task(task.task_id),
            dag=self.dag if shipped is None else shipped.info, upstream=upstream,
            pushed={tid: self.pushed[tid] for tid in upstream if tid in self.pushed},
            max_output_bytes=self.settings.max_output_bytes, max_log_bytes=self.settings.max_log_bytes,
            first_attempt_at=first, run_type=self.run_type, run_start_date=self.run_start_date,
            triggering_asset_events=self._triggering_events(), map_index=split_key(task_id)[1],
            keep_outputs_over=member.keep_outputs_over,
        )
        member.submit((self.run_pk, task_id), run_task, (request,), timeout=task.execution_timeout_seconds,
                        memory_limit=task.memory_limit if task.memory_limit is not None else self._memory_limit,
                        resources=getattr(task, "resources", None), priority=task.priority_weight)

    def _fetch_kept(self, upstream: dict[str, tuple[str, Any]], executor: Executor) -> dict[str, tuple[str, Any]]:
        """``upstream`` with the outputs kept on the Dask cluster fetched here, for a try that runs
        off the cluster. This waits on the cluster, on the host's thread: only tasks that read a large
        output away from where it was made pay it. One that cannot be had stays as it was, and the
        try fails saying which upstream task to clear."""
        if not any(cluster_names(pair) for pair in upstream.values()):
            return upstream

        def fetched(pair: tuple[str, Any]) -> tuple[str, Any]:
            kind, data = pair
            if kind == "mapped":
                return kind, [fetched(item) for item in data]
            if kind != CLUSTER:
                return pair
            try:
                return executor.fetch_output(str(data))
            except OutputOnClusterError as exc:
                log.warning("%s: %s", self.run_id, exc)
                return pair

        return {tid: fetched(pair) for tid, pair in upstream.items()}

    def kept_outputs(self) -> list[str]:
        """The dataset names of this run's outputs kept on the Dask cluster: what to release when
        the run ends. Those of tasks that succeeded elsewhere (a run adopted from a dead host, or
        resumed after a clear) are read from the store, since this driver loads them only when a
        task reads them."""
        pairs = list(self.outputs.values())
        if self._succeeded_elsewhere:
            pairs += [(row["kind"], row["value_json"]) for row in self.store.get_outputs(self.run_pk).values()
                      if row["kind"] == CLUSTER]
        return sorted({name for pair in pairs for name in cluster_names(pair)})

    def _triggering_events(self) -> dict[str, list[dict[str, Any]]]:
        """The events that started this run, read once per run and only for asset-triggered runs."""
        if self.run_type != "asset_triggered":
            return {}
        if self._triggering is None:
            self._triggering = self.store.triggering_asset_events(self.run_pk)
        return self._triggering

    def _upstream_outputs(self, task: Any, key: str | None = None) -> dict[str, tuple[str, Any]]:
        """The encoded outputs ``task`` (instance ``key``) reads: a mapped upstream's is the list of
        its instances' outputs, but within a mapped group instance i reads instance i's."""
        needed = set(task.upstream_task_ids) | {ref.task_id for ref in task.output_refs()}
        if not self._outputs_loaded and any(
            self.states.get(key) is S.SUCCESS and key not in self.outputs
            for t in needed for key in (self.instances.get(t, ()) if t in self.mapped else (t,))
        ):
            self._load_outputs()
        found = {tid: self.outputs[tid] for tid in needed if tid in self.outputs}
        index = split_key(key)[1] if key is not None else -1
        for tid in needed & self.mapped:
            if index >= 0 and task.map_group is not None and self.dag.task_dict[tid].map_group == task.map_group:
                found[tid] = self.outputs.get(ti_key(tid, index), ("json", "null"))
            else:  # a mapped task's output is the list of its instances' outputs, by map index
                found[tid] = ("mapped", [self.outputs[k] for k in self.instances.get(tid, ()) if k in self.outputs])
        return found

    def _load_outputs(self) -> None:
        """Outputs of tasks this driver did not run (a resumed run, or another host's tasks), with
        what they pushed under keys of their own."""
        self.flush()
        for task_id, row in self.store.get_outputs(self.run_pk).items():
            if task_id in self.outputs:
                continue
            encoded = read_stored(row)  # still encoded: only the worker that needs it decodes it
            if encoded is not None:
                self.outputs[task_id] = (encoded.kind, encoded.data)
        loaded: dict[str, dict[str, tuple[str, str | bytes]]] = {}
        for row in self.store.get_xcoms(self.run_pk):
            encoded = read_stored(row)
            if encoded is not None and row["ti_key"] not in self.pushed:
                loaded.setdefault(row["ti_key"], {})[row["key"]] = (encoded.kind, encoded.data)
        self.pushed.update(loaded)
        self._outputs_loaded = True

    def _derive_decisions(self) -> None:
        """Branch decisions of branching tasks that succeeded before this driver knew them."""
        for task_id, task in self.dag.task_dict.items():
            state = self.states.get(task_id)
            if state is not S.SUCCESS or task_id in self.decisions or task_id in self.mapped:
                continue
            if not task.is_branching:
                continue
            if task_id not in self.outputs:
                self._load_outputs()
            if task_id in self.outputs:
                from nbflow.outputs import decode

                try:
                    followed = task.followed_task_ids(decode(*self.outputs[task_id]))
                except NbflowError:
                    followed = None
                if followed is not None:
                    self.decisions[task_id] = Decision(frozenset(followed), bool(task.skip_all_descendants))

    def _needed_outputs(self, task: Any) -> set[str]:
        return set(task.upstream_task_ids) | {ref.task_id for ref in task.output_refs()}

    def _log_path(self, task_id: str, try_number: int) -> str:
        base, index = split_key(task_id)
        if index >= 0:  # a mapped instance: <task>/<map_index>/<try>.log
            return f"{self.log_folder}/{safe_path_part(base)}/{index}/{try_number}.log"
        return f"{self.log_folder}/{safe_path_part(task_id)}/{try_number}.log"

    # -- outcomes ---------------------------------------------------------------------------------

    def handle(self, outcome: Outcome) -> None:
        """Record one outcome and plan what it makes ready."""
        finished = self._task_finished(self._handle(outcome))
        if finished is not None:
            self._apply(plan_after(self.dag, [finished], self.states, self.decisions).changes)

    def handle_many(self, outcomes: list[Outcome]) -> None:
        finished = [tid for tid in (self._task_finished(self._handle(o)) for o in outcomes) if tid is not None]
        if finished:
            self._apply(plan_after(self.dag, finished, self.states, self.decisions).changes)

    def lost(self, task_id: str, reason: str, *, fence: int | None = None, try_number: int | None = None) -> None:
        """A task instance whose host died while it ran: a failed try, retried by its policy.

        ``fence`` and ``try_number`` are what the adoption returned: the try that was lost is the
        one the store holds, whatever this driver read before."""
        from nbflow.executors import Outcome

        self.elsewhere.discard(task_id)
        self.orphaned.discard(task_id)
        if self.states.get(task_id) not in (S.QUEUED, S.RUNNING):
            # The store held it claimed (only such rows are adopted), whatever this driver last
            # read: its view may predate the dead host's claim, even its upstream's end.
            self.states[task_id] = S.RUNNING
            self.wake_at.pop(task_id, None)
            if task_id in self.ready:
                self.ready.remove(task_id)
        if fence is not None:
            self._took({task_id: fence})
        if try_number is not None:
            self.try_numbers[task_id] = try_number
        self.try_numbers[task_id] = max(self.try_numbers.get(task_id, 0), 1)
        self._taken_over.add(task_id)
        self.handle(Outcome(key=(self.run_pk, task_id), ok=False, error=None, traceback=reason))

    def _handle(self, outcome: Outcome) -> str | None:
        """Record one outcome; return the task id if the task reached a final state."""
        if self.timed_out:
            return None  # a try of a run past its dagrun_timeout: skipped already, its late end not kept
        task_id = outcome.key[1] if isinstance(outcome.key, tuple) else str(outcome.key)
        task = self._task(task_id)
        if task_id in self.running:
            self.running.discard(task_id)
            self.pools.release(task.pool, task.pool_slots)
        end = utcnow()
        start = self.started.get(task_id, end)
        duration = (
            outcome.ended_at - outcome.started_at
            if outcome.started_at is not None and outcome.ended_at is not None
            else (end - start).total_seconds()
        )
        common: dict[str, Any] = dict(end_date=end, duration=duration, pid=outcome.pid,
                                      hostname=outcome.hostname or self.hostname)
        error_text: str | None = None
        reschedule_at: datetime | None = None
        logged = True
        if outcome.ok:
            result: TaskResult = outcome.value
            logged = result.logged
            reschedule_at = result.reschedule_at
            if reschedule_at is not None:
                ending = Ending.RESCHEDULED
            elif result.skipped is not None:
                ending = Ending.SKIPPED
            else:
                error_text = self._keep_output(task, result, task_id)
                ending = Ending.RETURNED if error_text is None else Ending.FAILED
        else:
            error = outcome.error
            if outcome.timed_out:
                error = TaskTimeoutError(self.dag.dag_id, task_id, task.execution_timeout_seconds or 0.0)
            memory = isinstance(error, MemoryLimitError)
            if memory:  # named where it is known, here; its traceback would only show the executor's frames
                error = MemoryLimitError(self.dag.dag_id, task_id, error.limit, error.peak, error.executor)
            error_text = _error_text(error, "" if memory else outcome.traceback)
            if outcome.timed_out or memory or not outcome.traceback or outcome.error is None:
                self._append_log(task_id, error_text)
            ending = Ending.FAILED_FOR_GOOD if isinstance(outcome.error, FailTask) else Ending.FAILED
        try_number = self.try_numbers[task_id]
        verdict = decide(self.states[task_id], TryEnded(
            ending, try_number, self.max_tries.get(task_id, task.retries + 1), end,
            retry_delay=task.retry_delay_for(try_number) if ending is Ending.FAILED else 0.0,
            reschedule_at=reschedule_at,
        ))
        if verdict.state is S.UP_FOR_RESCHEDULE:
            return self._reschedule(task_id, verdict.wake_at, common, logged)
        self.first_attempt.pop(task_id, None)
        state = verdict.state
        common["next_retry_at"] = verdict.wake_at
        if verdict.wake_at is not None:
            self.wake_at[task_id] = verdict.wake_at
        if verdict.callback is not None:
            self._callback(task, verdict.callback, None if state is S.SUCCESS else error_text, task_id)
        path = self._log_path(task_id, try_number)
        common["log_path"] = path if logged or path in self._appended else None
        if state is S.FAILED and error_text:
            self.failure_texts[task_id] = error_text
        self._set(task_id, state, error=error_text, **common)
        if state is S.SUCCESS and task.outlets:
            self._emit_outlets(task)
        if task_id in self._taken_over:
            # the try ran on the dead host: its row keeps the start and host its claim wrote
            self._taken_over.discard(task_id)
            self._record_try(task_id, state, None, error_text, {**common, "hostname": None}, outcome.peak_rss)
        else:
            self._record_try(task_id, state, start, error_text, common, outcome.peak_rss, outcome.worker)
        return task_id if verdict.final else None

    def _emit_outlets(self, task: Any) -> None:
        """One asset event per outlet of a task that succeeded, written with its outcome."""
        self.emitted_assets = True
        for asset in task.outlets:
            self._asset_events.append({
                "uri": asset.uri, "asset_extra": asset.extra, "source": "task", "extra": {},
                "source_dag_id": self.dag.dag_id, "source_run_id": self.run_id, "source_task_id": task.task_id,
            })

    def _reschedule(self, task_id: str, when: datetime, common: dict[str, Any], logged: bool) -> None:
        """A sensor gave its slot back: run it again at ``when``, in the same try."""
        self.first_attempt.setdefault(task_id, self.started.get(task_id, utcnow()))
        self.wake_at[task_id] = when
        path = self._log_path(task_id, self.try_numbers[task_id])
        self._set(task_id, S.UP_FOR_RESCHEDULE, next_retry_at=when, end_date=common["end_date"],
                  duration=common["duration"], log_path=path if logged else None)
        if self.host_id is not None:  # its claim wrote the try "running"; it waits now
            self._record_try(task_id, S.UP_FOR_RESCHEDULE, self.first_attempt[task_id], None,
                             {**common, "log_path": path if logged else None})
        self._events.append(self._event("rescheduled", task_id, {"at": when.isoformat()}))
        return None

    # -- finishing --------------------------------------------------------------------------------

    def time_out(self) -> None:
        """End a run past its ``dagrun_timeout``, as Airflow does: the run fails, and every task
        instance that has not finished ends as ``skipped``. Tries running here are stopped
        (``Executor.cancel``: a worker process's group is killed; a thread cannot be stopped, and its
        late outcome is not kept). The host then finishes the run (:meth:`finish`)."""
        assert self.deadline is not None and self.run_start_date is not None
        limit = self.dag.dagrun_timeout.total_seconds() if self.dag.dagrun_timeout else 0.0
        reason = (f"run {self.run_id} of DAG '{self.dag.dag_id}' went past its dagrun_timeout of {limit:g} s "
                  f"(started {self.run_start_date.isoformat()})")
        self.timed_out, self.deadline = True, None
        end = utcnow()
        for task_id in sorted(self.running):
            task = self._task(task_id)
            self.pools.release(task.pool, task.pool_slots)
            if self._executor is not None:
                self._executor.cancel((self.run_pk, task_id), f"stopped: {reason}")
            self._append_log(task_id, f"stopped: {reason}")
            self._record_try(task_id, S.SKIPPED, self.started.get(task_id), f"stopped: {reason}",
                             {"end_date": end, "hostname": self.hostname})
        self.running.clear()
        self.ready.clear()
        self.wake_at.clear()
        self.elsewhere.clear()
        self.waiting_past.clear()
        for task_id, state in self.states.items():
            if state not in FINISHED_TASK_STATES:
                self._set(task_id, S.SKIPPED, end_date=end, next_retry_at=None, error=f"skipped: {reason}")
        self._events.append(self._event("run_timed_out", None, {
            "dagrun_timeout": limit, "start_date": self.run_start_date.isoformat(), "reason": reason}))

    def finish(self) -> RunState:
        """Write the run's final state and call the DAG's callback."""
        outcome = run_outcome(self.dag, self.states)
        state = RunState.SUCCESS if outcome is S.SUCCESS and not self.timed_out else RunState.FAILED
        if self.run_state is not state:  # not again when a store outage made the host call it twice
            self.run_state = check_run_transition(self.run_state, state)
            if self.host_id is None:
                self._change_run(state=state.value, end_date=utcnow())
            self._events.append(self._event(f"run_{state.value}"))
        self.flush()
        # Under several hosts, each may see the run end; the one whose update moves it out of
        # "running" reports it, so callbacks fire once.
        if self.host_id is None or self.store.claim_run(
            self.run_pk, ("queued", "running"), state.value, end_date=utcnow()
        ):
            self._dag_callback(state)
        return state

    def _keep_output(self, task: Any, result: TaskResult, key: str) -> str | None:
        """Store the output and the branch decision; return an error text if the output is unusable."""
        encoded = result.output
        if encoded is None:
            return None
        if task.is_branching:
            try:
                followed = task.followed_task_ids(encoded.decode())
            except NbflowError as exc:
                text = f"{type(exc).__name__}: {exc}"
                self._append_log(key, text)
                return text
            if followed is not None and key == task.task_id:
                self.decisions[task.task_id] = Decision(frozenset(followed), bool(task.skip_all_descendants))
        self.outputs[key] = (encoded.kind, encoded.data)
        self._outputs.append(self._stored_row(key, encoded, "output"))
        if result.pushed:
            self.pushed[key] = {name: (value.kind, value.data) for name, value in result.pushed.items()}
            for name, value in result.pushed.items():
                row = self._stored_row(key, value, f"xcom-{hashlib.sha1(name.encode()).hexdigest()[:16]}")
                row["key"] = name
                self._xcoms.append(row)
        return None

    def _stored_row(self, task_id: str, encoded: Any, name: str) -> dict[str, Any]:
        """A row for an encoded value: inline when it is small JSON, else in an artifact file."""
        if encoded.kind == CLUSTER or (encoded.kind == "json" and encoded.size <= self.settings.inline_output_bytes):
            row = output_row(task_id, encoded, value_json=str(encoded.data))  # a kept output: its name
        else:
            row = output_row(task_id, encoded, artifact_path=self._write_artifact(task_id, encoded.kind, encoded.data, name))
        row["created_at"] = utcnow()
        if self.host_id is not None:
            row["fence"] = self.fences.get(task_id, 0)
        return row

    def _write_artifact(self, task_id: str, kind: str, data: str | bytes, name: str = "output") -> str:
        folder = task_folder(self.settings.artifacts_folder, self.dag.dag_id, self.run_id, task_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (f"{name}.json" if kind == "json" else f"{name}.pickle")
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        return str(path)

    def _record_try(self, task_id: str, state: TaskState, start: datetime | None, error: str | None,
                    common: dict[str, Any], peak_rss: int | None = None, worker: str = "") -> None:
        row = {k: v for k, v in common.items() if k != "next_retry_at"}
        if peak_rss:
            row["peak_rss"] = peak_rss
        if worker:
            row["worker"] = worker
        if self.host_id is not None:
            row["fence"] = self.fences.get(task_id, 0)
        self._tries.append({"task_id": task_id, "try_number": self.try_numbers[task_id], "state": state.value,
                            "start_date": start, "error": error, **row})

    def _append_log(self, task_id: str, text: str) -> None:
        path = self._log_path(task_id, self.try_numbers.get(task_id, 1))
        self._appended.add(path)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(text.rstrip("\n") + "\n")
        except OSError:
            pass

    # -- callbacks --------------------------------------------------------------------------------

    def _context_for(self, task: Any, error: str | None, key: str | None = None) -> dict[str, Any]:
        from nbflow.templates import build_context

        context = build_context(
            dag=self.dag, task=task, run_id=self.run_id, logical_date=self.logical_date,
            data_interval_start=self.interval[0], data_interval_end=self.interval[1], conf=self.conf, ti=None,
            dag_run=self._dag_run(),
        )
        context["exception"] = error
        context["try_number"] = self.try_numbers.get(key or task.task_id, 0)
        context["map_index"] = split_key(key or task.task_id)[1]
        return context

    def _dag_run(self) -> Any:
        from nbflow.dagrun import DagRunInfo

        return DagRunInfo(self.dag.dag_id, self.run_id, self.run_type, self.logical_date, self.interval[0],
                          self.interval[1], dict(self.conf), self.run_start_date)

    def _callback(self, task: Any, name: str, error: str | None, key: str | None = None) -> None:
        from nbflow.notifications import EVENTS, is_notification, send_later, task_extras

        callbacks = getattr(task, name, None)
        callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks] if callbacks else []
        # then the notify_on_* targets (the DAG's, else the settings') and the mail of email_on_*
        callbacks += task_extras(task, name, self.settings)
        if not callbacks:
            return
        context = self._context_for(task, error, key)
        context["event"] = EVENTS[name]
        context["log_path"] = self._log_path(key or task.task_id, context["try_number"])
        for callback in callbacks:
            if is_notification(callback):  # sent off this loop; a failure is written to the same log
                self._append_log(key or task.task_id, f"nbflow: {name} sends {getattr(callback, '__name__', callback)}")
                send_later(callback, context, lambda exc, cb=callback: _write_log(
                    context["log_path"], _callback_failure(name, cb, exc)))
                continue
            try:
                callback(context)
            except Exception as exc:  # a failing callback is logged, it never stops the run
                self._append_log(key or task.task_id, _callback_failure(name, callback, exc))
                self._events.append(self._event("callback_failed", task.task_id, {"callback": name, "error": str(exc)}))

    def _dag_callback(self, state: RunState) -> None:
        from nbflow.notifications import is_notification, run_extras, send_later

        callback = self.dag.on_success_callback if state is RunState.SUCCESS else self.dag.on_failure_callback
        callbacks = list(callback) if isinstance(callback, (list, tuple)) else [callback] if callback else []
        callbacks += run_extras(self.dag, state is RunState.SUCCESS, self.settings)  # notify_on_success
        if not callbacks:
            return
        context = {"dag": self.dag, "run_id": self.run_id, "logical_date": self.logical_date,
                   "conf": self.conf, "state": state.value, "params": self.dag.params,
                   "ds": self.logical_date.strftime("%Y-%m-%d"), "dag_run": self._dag_run(),
                   "reason": "timed_out" if self.timed_out else None,
                   "event": "succeeded" if state is RunState.SUCCESS else "failed",
                   "failed_tasks": [] if state is RunState.SUCCESS else self._failed_tasks()}
        failed = False
        for each in callbacks:
            if is_notification(each):
                send_later(each, context, lambda exc: log.warning("DAG %s, run %s: %s", self.dag.dag_id, self.run_id, exc))
                continue
            try:
                each(context)
            except Exception as exc:
                failed = True
                self._events.append(self._event("callback_failed", None, {"callback": "dag", "error": str(exc)}))
        if failed:
            self.flush()

    def _failed_tasks(self) -> list[dict[str, Any]]:
        """The tasks that failed in this run (in the DAG's order), as a failure notification names them."""
        failed = []
        for task_id, state in self.states.items():
            if state is S.FAILED:
                try_number = self.try_numbers.get(task_id, 0)
                failed.append({"task_id": task_id, "try_number": try_number,
                               "max_tries": self.max_tries.get(task_id), "error": self.failure_texts.get(task_id),
                               "log_path": self._log_path(task_id, try_number) if try_number else None})
        return failed

    # -- bookkeeping ------------------------------------------------------------------------------

    def _apply(self, changes: dict[str, TaskState]) -> None:
        now = utcnow()
        if self.past_gated:
            changes = self._gate_on_past(changes)
        for task_id, state in changes.items():
            if state is S.SCHEDULED and task_id in self.mapped:
                self._expand(task_id)
            elif state is S.SCHEDULED:
                if task_id not in self.ready:
                    self._make_ready(task_id)
                self._set(task_id, state)
            else:
                self._set(task_id, state, end_date=now)

    # -- mapped tasks ------------------------------------------------------------------------------

    def _expand(self, task_id: str) -> None:
        """Count a mapped task's items now that its upstream is done, and make its instances.

        An empty list skips the task, as in Airflow; a value that is not a list, or more items than
        ``max_map_length``, fails it (its downstream then goes by its trigger rule)."""
        task = self.dag.task_dict[task_id]
        failure: str | None = None
        count = 0
        try:
            encoded = self._upstream_outputs(task)
            if self._executor is not None:  # a list kept on the Dask cluster is counted here, on the host
                encoded = self._fetch_kept(encoded, self._executor)
            from nbflow.outputs import decode

            count = task.expand_input.length({tid: decode(*value) for tid, value in encoded.items()},
                                             self.dag.dag_id, task_id)
        except MappingError as exc:
            failure = str(exc)
        except NbflowError as exc:
            failure = f"{type(exc).__name__}: {exc}"
        if failure is None and count > self.settings.max_map_length:
            failure = (f"DAG '{self.dag.dag_id}', task '{task_id}': expands to {count:,} instances, more than "
                       f"max_map_length ({self.settings.max_map_length:,}); map over fewer items or raise the "
                       "max_map_length setting")
        now = utcnow()
        if failure is not None or count == 0:
            state = S.FAILED if failure is not None else S.SKIPPED
            self._set(task_id, state, end_date=now, error=failure or "skipped: it mapped over an empty list")
            if failure is not None:
                self._events.append(self._event("expand_failed", task_id, {"error": failure}))
                self._append_log(task_id, failure)
            self._apply(plan_after(self.dag, [task_id], self.states, self.decisions).changes)
            return
        fences = self.store.expand_task(
            self.run_pk, task_id, count, seen=self.fences.get(task_id, 0) if self.host_id is not None else None,
            row={"dag_id": self.dag.dag_id, "run_id": self.run_id, "max_tries": task.retries + 1,
                 "operator": type(task).__name__, "pool": task.pool, "priority_weight": task.priority_weight})
        if fences is None:  # another host expanded it (or it was cleared): read it again
            self.elsewhere.add(task_id)
            return
        self._took(fences)
        self._forget_instances(task_id, keep=count)
        self.states[task_id] = S.RUNNING
        if observers.active:
            observers.notify(self.dag.dag_id, self.run_id, task_id, S.RUNNING.value)
        self.instances[task_id] = [ti_key(task_id, index) for index in range(count)]
        in_group = [up for up in task.upstream_task_ids
                    if task.map_group is not None and self.dag.task_dict[up].map_group == task.map_group]
        for index, key in enumerate(self.instances[task_id]):
            self.states[key] = S.SCHEDULED
            self.elsewhere.discard(key)
            self.max_tries.setdefault(key, task.retries + 1)
            first = S.SCHEDULED
            if in_group:  # judged against the same instance of the group's earlier tasks
                view = {**self.states, **{up: self.states.get(ti_key(up, index), S.SKIPPED) for up in in_group}}
                first = instance_verdict(self.dag, task_id, view, self.decisions)
            if first is not S.SCHEDULED:
                self._set(key, first, end_date=now)
                continue
            if key not in self.ready:
                self._make_ready(key)
            if observers.active:
                observers.notify(self.dag.dag_id, self.run_id, key, S.SCHEDULED.value)
        if self._settle(task_id) is not None:  # every instance ended before it began (upstream)
            self._apply(plan_after(self.dag, [task_id], self.states, self.decisions).changes)

    def _task_finished(self, key: str | None) -> str | None:
        """The task whose end ``key``'s end makes: itself, or for the last instance of a mapped task
        that task (its state then follows from its instances')."""
        if key is None or key in self.dag.task_dict:
            return key
        return self._settle(split_key(key)[0])

    def _settle(self, task_id: str) -> str | None:
        """Give a mapped task whose instances have all finished its own final state: failed if one
        failed, else upstream_failed if one was, else skipped if one was skipped, else success (the
        one state downstream trigger rules read for it)."""
        keys = self.instances.get(task_id, ())
        if self.states.get(task_id) is not S.RUNNING or not keys:
            return None
        states = [self.states.get(key, S.NONE) for key in keys]
        if not all(state.finished for state in states):
            return None
        for candidate in (S.FAILED, S.UPSTREAM_FAILED, S.SKIPPED):
            if candidate in states:
                final = candidate
                break
        else:
            final = S.SUCCESS
        if final is S.SUCCESS:
            self._outputs_loaded = self._outputs_loaded and all(key in self.outputs for key in keys)
        self._set(task_id, final, end_date=utcnow())
        return task_id

    def _catch_up_mapped(self) -> None:
        """After reading the store: expand what another host scheduled but did not expand, start
        instances cleared by hand, and settle mapped tasks whose instances all ended elsewhere."""
        pending, self._pending_expansions = self._pending_expansions, []
        for task_id in pending:
            if self.states.get(task_id) is S.SCHEDULED:
                self._expand(task_id)
        finished = []
        for task_id, keys in self.instances.items():
            if self.states.get(task_id) is not S.RUNNING:
                continue
            for key in keys:
                if self.states.get(key) is S.NONE and key not in self.running:
                    self._set(key, S.SCHEDULED)
                    self._make_ready(key)
            settled = self._settle(task_id)
            if settled is not None:
                finished.append(settled)
        if finished:
            self._apply(plan_after(self.dag, finished, self.states, self.decisions).changes)

    # -- depends_on_past ---------------------------------------------------------------------------

    def _gate_on_past(self, changes: dict[str, TaskState]) -> dict[str, TaskState]:
        """``changes`` without the tasks that must wait for their previous run: they stay ``none``,
        as in Airflow, until :meth:`recheck_past` finds that run's instance done."""
        gated = [t for t, state in changes.items() if state is S.SCHEDULED and t in self.past_gated]
        if not gated:
            return changes
        blocked = self._blocked_by_past(gated)
        for task_id, reason in blocked.items():
            if task_id not in self.waiting_past:
                self._events.append(self._event("waiting_on_past", task_id, reason))
            self.waiting_past.add(task_id)
        self.waiting_past.difference_update(t for t in gated if t not in blocked)
        return {t: state for t, state in changes.items() if t not in blocked} if blocked else changes

    def _blocked_by_past(self, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The tasks among ``task_ids`` whose instance in the DAG's previous run (by logical date; test
        runs aside) is not done, with what they wait for. Airflow's rule: the first run, and a run
        before the task's start_date, wait for nothing; so does a task the previous run did not have;
        done is success or skipped; ``wait_for_downstream`` also needs the direct downstream of that
        instance done."""
        tasks = [self.dag.task_dict[t] for t in task_ids]
        wanted = set(task_ids).union(*(t.downstream_task_ids for t in tasks if t.wait_for_downstream))
        previous, states = self.store.previous_run_task_states(
            self.dag.dag_id, self.logical_date.astimezone(timezone.utc), sorted(wanted), PAST_RUN_TYPES)
        if previous is None:
            return {}
        before = previous["logical_date"]
        blocked: dict[str, dict[str, Any]] = {}
        for task in tasks:
            start = task.start_date or self.dag.start_date
            if start is not None and before.astimezone(timezone.utc) < start.astimezone(timezone.utc):
                continue
            waits = [task.task_id] + (sorted(task.downstream_task_ids) if task.wait_for_downstream else [])
            pending = {t: states[t] for t in waits if t in states and states[t] not in PAST_DONE}
            if pending:
                blocked[task.task_id] = {"previous_run_id": previous["run_id"], "waiting_for": pending}
        return blocked

    def recheck_past(self) -> None:
        """Look again at the previous run for the tasks waiting on it; those it now allows become
        ready. Called by the host when it polls, and at once when a run it drives ends a task."""
        waiting = sorted(t for t in self.waiting_past if self.states.get(t) is S.NONE)
        self.waiting_past.intersection_update(waiting)
        if not waiting:
            return
        blocked = self._blocked_by_past(waiting)
        for task_id in waiting:
            if task_id not in blocked:
                self.waiting_past.discard(task_id)
                self._set(task_id, S.SCHEDULED)
                self._make_ready(task_id)

    def _set(self, task_id: str, state: TaskState, **columns: Any) -> None:
        check_task_transition(self.states[task_id], state)
        self.states[task_id] = state
        change = {"task_id": task_id, "state": state.value, **columns}
        fence = None
        if self.host_id is not None:
            change["fence"] = fence = self.fences.get(task_id, 0)
        self._task_changes.setdefault(task_id, {}).setdefault(fence, {}).update(change)
        if observers.active:
            observers.notify(self.dag.dag_id, self.run_id, task_id, state.value)

    def _change_run(self, **columns: Any) -> None:
        self._run_changes.update(columns)
        if "state" in columns and observers.active:
            observers.notify(self.dag.dag_id, self.run_id, None, columns["state"])

    def _event(self, kind: str, task_id: str | None = None, detail: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"at": utcnow(), "kind": kind, "dag_id": self.dag.dag_id, "run_id": self.run_id,
                "task_id": task_id, "detail": detail or {}}

    def pending(self) -> bool:
        return bool(self._task_changes or self._tries or self._outputs or self._xcoms or self._events
                    or self._run_changes or self._asset_events)

    def flush(self, force: bool = True) -> None:
        """Write everything decided since the last write, in one transaction."""
        if not self.pending():
            return
        now = time.monotonic()
        if not force and now - self._last_flush < FLUSH_INTERVAL:
            return
        lost = self.store.record(
            self.run_pk, task_changes=[c for by_fence in self._task_changes.values() for c in by_fence.values()],
            tries=self._tries,
            outputs=self._outputs, events=self._events, run_changes=self._run_changes or None,
            fenced=self.host_id is not None, xcoms=self._xcoms, asset_events=self._asset_events,
        )
        for task_id in lost:
            # Their fence moved since this host read or claimed them (another host claimed or
            # adopted them, a user cleared or marked them): read them again before planning them,
            # and stop a try still running here, whose outcome can no longer be written.
            self.elsewhere.add(task_id)
            if task_id in self.running and self._executor is not None:
                self._executor.cancel((self.run_pk, task_id), (
                    f"stopped: task instance {task_id} of run {self.run_id} was taken over by another host "
                    "or changed by hand while it ran here, so this try's outcome would not be kept"))
        self._task_changes, self._tries, self._outputs, self._xcoms, self._events = {}, [], [], [], []
        self._asset_events = []
        self._run_changes = {}
        self._last_flush = now


log = logging.getLogger(__name__)


def _callback_failure(name: str, callback: Any, exc: BaseException) -> str:
    """The log lines of a callback that raised: an nbflow error (a notification that could not be
    delivered) in one line, anything else with its traceback."""
    said = f"{type(exc).__name__}: {exc}\n" if isinstance(exc, NbflowError) else "".join(tb.format_exception(exc))
    return f"{name} {getattr(callback, '__name__', callback)!s} raised (the task's state stands):\n" + said


def _write_log(path: str, text: str) -> None:
    """Append ``text`` to a try's log from a notification's sender thread."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text.rstrip("\n") + "\n")
    except OSError as exc:
        log.warning("could not write to the log %s: %s; it said: %s", path, exc, text)


def _error_text(error: BaseException | None, traceback_text: str) -> str:
    if traceback_text:
        return traceback_text
    if error is None:
        return "the task failed without an exception"
    return "".join(tb.format_exception_only(type(error), error)).strip()
