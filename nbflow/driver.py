"""``RunDriver``: drives one DAG run from its first task to its last.

It plans, dispatches to an executor, and records what happened: the one writer of a run's outcomes.
It is event-driven: a finished task's downstream is planned and dispatched as soon as its outcome
arrives, and the only waiting is for outcomes, for a retry's delay, or for the next batched write.
Writes to the store are coalesced: while tasks flow, everything decided goes out in one transaction
per ``FLUSH_INTERVAL``, which keeps the cost per task well under a millisecond.
"""

from __future__ import annotations

import os
import queue
import re
import socket
import time
import traceback as tb
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbflow.errors import NbflowError, TaskTimeoutError
from nbflow.operators.base import BaseOperator
from nbflow.planner import Decision, plan_after, plan_start, run_outcome
from nbflow.runner import DagInfo, TaskRequest, TaskResult, run_task
from nbflow.states import RunState, TaskState, check_task_transition

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.executors import Executor, Outcome
    from nbflow.settings import Settings
    from nbflow.store import Store

S = TaskState
#: While tasks are flowing, store writes are coalesced into one transaction per this many seconds.
#: A crash can lose at most this much bookkeeping; those tasks are found by their stale heartbeat.
FLUSH_INTERVAL = 0.02
_PATH_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def safe_path_part(text: str) -> str:
    return _PATH_UNSAFE.sub("_", text)


class RunDriver:
    """Drives one DAG run from its first task to its last."""

    def __init__(
        self, dag: DAG, store: Store, executor: Executor, settings: Settings, *, run_pk: int, run: dict[str, Any]
    ) -> None:
        self.dag = dag
        self.store = store
        self.executor = executor
        self.settings = settings
        self.run_pk = run_pk
        self.run_id: str = run["run_id"]
        self.logical_date: datetime = run["logical_date"].astimezone(dag.timezone)
        self.interval = (
            (run.get("data_interval_start") or run["logical_date"]).astimezone(dag.timezone),
            (run.get("data_interval_end") or run["logical_date"]).astimezone(dag.timezone),
        )
        self.conf: dict[str, Any] = run.get("conf") or {}
        self.states: dict[str, TaskState] = {}
        self.try_numbers: dict[str, int] = {}
        self.started: dict[str, datetime] = {}
        self.retry_at: dict[str, float] = {}
        self.outputs: dict[str, tuple[str, str | bytes]] = {}
        self.decisions: dict[str, Decision] = {}
        self.running: set[str] = set()
        self.ready: list[str] = []
        self.outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self.order = {tid: i for i, tid in enumerate(dag.topological_order())}
        self.dag_for_worker: Any = dag if executor.in_process else DagInfo.of(dag)
        self.hostname = socket.gethostname()
        self.log_folder = os.path.join(settings.logs_folder, safe_path_part(dag.dag_id), safe_path_part(self.run_id))
        self._appended: set[str] = set()
        self._task_changes: list[dict[str, Any]] = []
        self._tries: list[dict[str, Any]] = []
        self._outputs: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        self._run_changes: dict[str, Any] = {}
        self._last_flush = 0.0
        for row in store.get_task_instances(run_pk):
            self.states[row["task_id"]] = TaskState(row["state"])
            self.try_numbers[row["task_id"]] = row["try_number"] or 0
        for task_id in dag.task_dict:
            self.states.setdefault(task_id, S.NONE)

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> RunState:
        self._change_run(state=RunState.RUNNING.value, start_date=utcnow())
        self._apply(plan_start(self.dag, self.states).changes)
        while True:
            self._dispatch()
            self._flush(force=False)
            if not self.running and not self.ready:
                if not self.retry_at:
                    break
                self._flush()
                time.sleep(max(0.0, min(self.retry_at.values()) - time.monotonic()))
                self._release_due_retries()
                continue
            self._wait_for_outcomes()
        outcome = run_outcome(self.dag, self.states)
        state = RunState.SUCCESS if outcome is S.SUCCESS else RunState.FAILED
        self._change_run(state=state.value, end_date=utcnow())
        self._events.append(self._event(f"run_{state.value}"))
        self._flush()
        self._dag_callback(state)
        return state

    def _wait_for_outcomes(self) -> None:
        deadlines = list(self.retry_at.values())
        if self._pending():
            deadlines.append(self._last_flush + FLUSH_INTERVAL)
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        try:
            first = self.outcomes.get(timeout=timeout)
        except queue.Empty:
            self._flush(force=False)
            self._release_due_retries()
            return
        finished = [self._handle(first)]
        while True:
            try:
                finished.append(self._handle(self.outcomes.get_nowait()))
            except queue.Empty:
                break
        done = [tid for tid in finished if tid is not None]
        if done:
            self._apply(plan_after(self.dag, done, self.states, self.decisions).changes)
        self._release_due_retries()

    def _release_due_retries(self) -> None:
        now = time.monotonic()
        for task_id, due in list(self.retry_at.items()):
            if due <= now:
                del self.retry_at[task_id]
                self._set(task_id, S.SCHEDULED)
                self.ready.append(task_id)

    # -- dispatch ---------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        if not self.ready:
            return
        limit = self.dag.max_active_tasks
        self.ready.sort(key=lambda t: (-self.dag.task_dict[t].priority_weight, self.order[t]))
        while self.ready and self.executor.free_slots > 0 and len(self.running) < limit:
            task_id = self.ready.pop(0)
            self._start(task_id)

    def _start(self, task_id: str) -> None:
        task = self.dag.task_dict[task_id]
        try_number = self.try_numbers.get(task_id, 0) + 1
        self.try_numbers[task_id] = try_number
        now = utcnow()
        self.started[task_id] = now
        log_path = self._log_path(task_id, try_number)
        self.running.add(task_id)
        if not os.path.isdir(self.log_folder):
            os.makedirs(self.log_folder, exist_ok=True)
        self._set(task_id, S.RUNNING, try_number=try_number, start_date=now, end_date=None,
                  duration=None, hostname=self.hostname, log_path=log_path, heartbeat_at=now)
        upstream = {tid: self.outputs[tid] for tid in self._needed_outputs(task) if tid in self.outputs}
        request = TaskRequest(
            dag_id=self.dag.dag_id, task_id=task_id, run_id=self.run_id, try_number=try_number,
            max_tries=task.retries + 1, logical_date=self.logical_date,
            data_interval_start=self.interval[0], data_interval_end=self.interval[1], conf=self.conf,
            log_path=log_path, operator=task, dag=self.dag_for_worker, upstream=upstream,
            max_output_bytes=self.settings.max_output_bytes,
        )
        self.executor.submit(task_id, run_task, (request,), timeout=task.execution_timeout_seconds)

    def _needed_outputs(self, task: Any) -> set[str]:
        return set(task.upstream_task_ids) | {ref.task_id for ref in task.output_refs()}

    def _log_path(self, task_id: str, try_number: int) -> str:
        return f"{self.log_folder}/{safe_path_part(task_id)}/{try_number}.log"

    # -- outcomes ---------------------------------------------------------------------------------

    def _handle(self, outcome: Outcome) -> str | None:
        """Record one outcome; return the task id if the task reached a final state."""
        task_id = str(outcome.key)
        self.running.discard(task_id)
        task = self.dag.task_dict[task_id]
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
        logged = True
        if outcome.ok:
            result: TaskResult = outcome.value
            logged = result.logged
            if result.skipped is not None:
                state = S.SKIPPED
            else:
                state = S.SUCCESS
                error_text = self._keep_output(task, result)
                if error_text is not None:
                    state = S.FAILED
        else:
            error = outcome.error
            if outcome.timed_out:
                error = TaskTimeoutError(self.dag.dag_id, task_id, task.execution_timeout_seconds or 0.0)
            error_text = _error_text(error, outcome.traceback)
            if outcome.timed_out or not outcome.traceback:
                self._append_log(task_id, error_text)
            state = S.FAILED
        try_number = self.try_numbers[task_id]
        retrying = state is S.FAILED and try_number <= task.retries
        if retrying:
            delay = task.retry_delay_for(try_number)
            self.retry_at[task_id] = time.monotonic() + delay
            common["next_retry_at"] = datetime.fromtimestamp(time.time() + delay, timezone.utc)
            state = S.UP_FOR_RETRY
            self._callback(task, "on_retry_callback", error_text)
        else:
            common["next_retry_at"] = None
            if state is S.SUCCESS:
                self._callback(task, "on_success_callback", None)
            elif state is S.FAILED:
                self._callback(task, "on_failure_callback", error_text)
        path = self._log_path(task_id, try_number)
        common["log_path"] = path if logged or path in self._appended else None
        self._set(task_id, state, error=error_text, **common)
        self._record_try(task_id, state, start, error_text, common)
        return None if retrying else task_id

    def _keep_output(self, task: Any, result: TaskResult) -> str | None:
        """Store the output and the branch decision; return an error text if the output is unusable."""
        encoded = result.output
        if encoded is None:
            return None
        if type(task).followed_task_ids is not BaseOperator.followed_task_ids:
            try:
                followed = task.followed_task_ids(encoded.decode())
            except NbflowError as exc:
                text = f"{type(exc).__name__}: {exc}"
                self._append_log(task.task_id, text)
                return text
            if followed is not None:
                self.decisions[task.task_id] = Decision(frozenset(followed), bool(task.skip_all_descendants))
        self.outputs[task.task_id] = (encoded.kind, encoded.data)
        row: dict[str, Any] = {"task_id": task.task_id, "size": encoded.size, "created_at": utcnow(),
                               "value_json": None, "artifact_path": None}
        if encoded.kind == "json" and encoded.size <= self.settings.inline_output_bytes:
            row["value_json"] = encoded.data
        else:
            row["artifact_path"] = self._write_artifact(task.task_id, encoded.kind, encoded.data)
        self._outputs.append(row)
        return None

    def _write_artifact(self, task_id: str, kind: str, data: str | bytes) -> str:
        folder = (Path(self.settings.artifacts_folder) / safe_path_part(self.dag.dag_id)
                  / safe_path_part(self.run_id) / safe_path_part(task_id))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / ("output.json" if kind == "json" else "output.pickle")
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        return str(path)

    def _record_try(self, task_id: str, state: TaskState, start: datetime, error: str | None, common: dict[str, Any]) -> None:
        row = {k: v for k, v in common.items() if k != "next_retry_at"}
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

    def _context_for(self, task: Any, error: str | None) -> dict[str, Any]:
        from nbflow.templates import build_context

        context = build_context(
            dag=self.dag, task=task, run_id=self.run_id, logical_date=self.logical_date,
            data_interval_start=self.interval[0], data_interval_end=self.interval[1], conf=self.conf, ti=None,
        )
        context["exception"] = error
        context["try_number"] = self.try_numbers.get(task.task_id, 0)
        return context

    def _callback(self, task: Any, name: str, error: str | None) -> None:
        callbacks = getattr(task, name, None)
        if not callbacks:
            return
        context = self._context_for(task, error)
        for callback in callbacks if isinstance(callbacks, (list, tuple)) else [callbacks]:
            try:
                callback(context)
            except Exception as exc:  # a failing callback is reported, it never stops the run
                text = f"{name} {getattr(callback, '__name__', callback)!s} raised:\n" + "".join(tb.format_exception(exc))
                self._append_log(task.task_id, text)
                self._events.append(self._event("callback_failed", task.task_id, {"callback": name, "error": str(exc)}))

    def _dag_callback(self, state: RunState) -> None:
        callback = self.dag.on_success_callback if state is RunState.SUCCESS else self.dag.on_failure_callback
        if callback is None:
            return
        context = {"dag": self.dag, "run_id": self.run_id, "logical_date": self.logical_date,
                   "conf": self.conf, "state": state.value, "params": self.dag.params,
                   "ds": self.logical_date.strftime("%Y-%m-%d")}
        try:
            callback(context)
        except Exception as exc:
            self._events.append(self._event("callback_failed", None, {"callback": "dag", "error": str(exc)}))
            self._flush()

    # -- bookkeeping ------------------------------------------------------------------------------

    def _apply(self, changes: dict[str, TaskState]) -> None:
        now = utcnow()
        for task_id, state in changes.items():
            if state is S.SCHEDULED:
                self.ready.append(task_id)
                self._set(task_id, state)
            else:
                self._set(task_id, state, end_date=now)

    def _set(self, task_id: str, state: TaskState, **columns: Any) -> None:
        check_task_transition(self.states[task_id], state)
        self.states[task_id] = state
        self._task_changes.append({"task_id": task_id, "state": state.value, **columns})

    def _change_run(self, **columns: Any) -> None:
        self._run_changes.update(columns)

    def _event(self, kind: str, task_id: str | None = None, detail: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"at": utcnow(), "kind": kind, "dag_id": self.dag.dag_id, "run_id": self.run_id,
                "task_id": task_id, "detail": detail or {}}

    def _pending(self) -> bool:
        return bool(self._task_changes or self._tries or self._outputs or self._events or self._run_changes)

    def _flush(self, force: bool = True) -> None:
        """Write everything decided since the last write, in one transaction."""
        if not self._pending():
            return
        now = time.monotonic()
        if not force and now - self._last_flush < FLUSH_INTERVAL:
            return
        self.store.record(
            self.run_pk, task_changes=_merge_changes(self._task_changes), tries=self._tries,
            outputs=self._outputs, events=self._events, run_changes=self._run_changes or None,
        )
        self._task_changes, self._tries, self._outputs, self._events = [], [], [], []
        self._run_changes = {}
        self._last_flush = now


def _merge_changes(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One change per task: later values win, so a task that ran and finished within one turn is
    written once."""
    merged: dict[str, dict[str, Any]] = {}
    for change in changes:
        merged.setdefault(change["task_id"], {}).update(change)
    return list(merged.values())


def _error_text(error: BaseException | None, traceback_text: str) -> str:
    if traceback_text:
        return traceback_text
    if error is None:
        return "the task failed without an exception"
    return "".join(tb.format_exception_only(type(error), error)).strip()
