"""Run one task instance, where the executor put it (this thread, a pool thread or a worker process).

The runner builds the task's context, resolves references to upstream outputs, renders templates,
calls ``execute``, and encodes the return value. It writes only the task's log file; the scheduler
decides the task's state from what this returns or raises and writes the store.
"""

from __future__ import annotations

import copy
import os
import pickle
import shlex
import socket
import time
import traceback
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from nbflow.context import reset_task_context, set_task_context
from nbflow.dagrun import DagRunInfo
from nbflow.errors import OutputOnClusterError, RescheduleTask, SkipTask
from nbflow.engine.logcapture import DEFAULT_MAX_LOG_BYTES, capture, stamp
from nbflow.executors.shipped import Shipped
from nbflow.operators.base import BaseOperator
from nbflow.outputs import EncodedOutput, encode, decode
from nbflow.mapping import apply_values
from nbflow.refs import resolve_refs


@dataclass
class DagInfo:
    """What a task sees of its DAG when it runs away from it (in a worker process)."""

    dag_id: str
    params: dict[str, Any]
    timezone: Any
    owner: str
    tags: list[str]
    description: str | None = None
    fileloc: str | None = None                 # with template_searchpath: where template files are
    template_searchpath: tuple[str, ...] = ()

    @classmethod
    def of(cls, dag: Any) -> DagInfo:
        return cls(dag.dag_id, dict(dag.params), dag.timezone, dag.owner, list(dag.tags), dag.description,
                   dag.fileloc, tuple(dag.template_searchpath))


@dataclass
class TaskRequest:
    """Everything needed to run one try of one task instance."""

    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    max_tries: int
    logical_date: datetime
    data_interval_start: datetime
    data_interval_end: datetime
    conf: dict[str, Any]
    log_path: str
    operator: BaseOperator                     # Shipped on its way to a worker process
    dag: Any                                   # the DAG in-process, a Shipped DagInfo for a worker process
    upstream: dict[str, tuple[str, str | bytes]] = field(default_factory=dict)  # task_id -> encoded output
    max_output_bytes: int = 64 * 1024 * 1024
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES
    first_attempt_at: datetime | None = None   # when this try first started (sensors that reschedule)
    run_type: str = "manual"                   # scheduled, manual, backfill, test, asset_triggered (dag_run.run_type)
    run_start_date: datetime | None = None     # when the run started (dag_run.start_date)
    #: what upstream tasks pushed under keys of their own: task_id -> key -> encoded value
    pushed: dict[str, dict[str, tuple[str, str | bytes]]] = field(default_factory=dict)
    #: an asset-triggered run's events: uri -> events (dicts with source, extra, created_at, ...)
    triggering_asset_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: which instance of a mapped task this is (0, 1, ...); -1 for a task that is not mapped
    map_index: int = -1
    #: a return value larger than this (bytes, serialised) stays where the try ran, for executors
    #: that can keep it there (the Dask cluster: setting dask_keep_outputs_over); 0: never
    keep_outputs_over: int = 0

    def dag_run(self) -> DagRunInfo:
        """``dag_run`` in the context, built where the task runs from the request's plain fields."""
        return DagRunInfo(self.dag_id, self.run_id, self.run_type, self.logical_date, self.data_interval_start,
                          self.data_interval_end, dict(self.conf or {}), self.run_start_date)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Bound for a worker process, a request holds plain data (conf is JSON, outputs are encoded)
        # and its operator and DAG as Shipped bytes: the C pickler takes it in a third of the time
        # cloudpickle's per-object hooks need. Anything else goes the usual way.
        if isinstance(self.operator, Shipped) and isinstance(self.dag, Shipped):
            try:
                return _request_from, (pickle.dumps(_fields_of(self), protocol=5),)
            except Exception:
                pass
        return super().__reduce_ex__(protocol)


def _fields_of(request: TaskRequest) -> tuple[Any, ...]:
    """The request's fields in order, not copied (``dataclasses.astuple`` copies them deeply)."""
    return tuple(getattr(request, name) for name in _REQUEST_FIELDS)


def _request_from(data: bytes) -> TaskRequest:
    return TaskRequest(*pickle.loads(data))


_REQUEST_FIELDS = tuple(f.name for f in fields(TaskRequest))


@dataclass
class TaskResult:
    """How one try ended, when it did not raise."""

    output: EncodedOutput | None
    skipped: str | None = None                 # the reason, when the task ended as skipped
    hostname: str = ""
    pid: int = 0
    logged: bool = False                       # whether the try wrote a log file
    reschedule_at: datetime | None = None      # set when the task asked to run again later
    #: what the try pushed with ``ti.xcom_push``, encoded where it ran (kept when the try succeeds)
    pushed: dict[str, EncodedOutput] = field(default_factory=dict)


#: the key of a task's return value among its XComs (Airflow's name)
RETURN_KEY = "return_value"


class TaskInstanceInfo:
    """``ti`` in the context: which try this is, and the upstream outputs it can pull."""

    def __init__(self, request: TaskRequest, outputs: dict[str, Any]) -> None:
        self.dag_id = request.dag_id
        self.task_id = request.task_id
        self.run_id = request.run_id
        self.try_number = request.try_number
        self.map_index = request.map_index
        self.max_tries = request.max_tries
        self.log_path = request.log_path
        #: when the current try first started; a rescheduled sensor keeps its first poke's time
        self.first_attempt_at = request.first_attempt_at
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self._outputs = outputs
        self._pulled = request.pushed
        #: what this try pushed, by key; kept with its outcome when it succeeds
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        """Keep ``value`` under ``key`` for downstream tasks (``xcom_pull(task_ids=..., key=key)``).

        Written to the store with the try's outcome when the try succeeds (a failed try leaves
        nothing behind for its retry to trip over); a value pushed twice keeps the last one.
        """
        from nbflow.errors import InvalidOptionError

        if not isinstance(key, str) or not key or len(key) > 250:
            raise InvalidOptionError("key", key, "a non-empty text of at most 250 characters", self.dag_id, self.task_id)
        if key == RETURN_KEY:
            raise InvalidOptionError("key", key, "another key: the task's return value is kept under "
                                     f"{RETURN_KEY!r}, so return the value instead", self.dag_id, self.task_id)
        self.pushed[key] = value

    def xcom_pull(self, task_ids: str | list[str] | None = None, key: str | None = RETURN_KEY,
                  default: Any = None, dag_id: str | None = None, include_prior_dates: bool = False) -> Any:
        """What an upstream task returned (``key`` ``"return_value"``, or None) or pushed under
        ``key``; for a list of ids, a list. A key nobody pushed gives the task's returned dict's
        value of that key (``multiple_outputs``), else ``default``, as in Airflow."""
        from nbflow.errors import InvalidOptionError

        if task_ids is None:
            raise TypeError("xcom_pull needs task_ids: the id (or ids) of upstream tasks")
        if dag_id not in (None, self.dag_id):
            raise InvalidOptionError("dag_id", dag_id, "this run's own DAG: values of other DAGs' runs are not "
                                     "pulled; pass them in conf or use an ExternalTaskSensor", self.dag_id, self.task_id)
        if include_prior_dates:
            raise InvalidOptionError("include_prior_dates", True, "False: only this run's values are pulled",
                                     self.dag_id, self.task_id)
        ids = [task_ids] if isinstance(task_ids, str) else list(task_ids)
        values = []
        for tid in ids:
            if tid not in self._outputs and tid not in self._pulled:
                near = ", ".join(sorted({*self._outputs, *self._pulled})) or "none"
                raise InvalidOptionError(
                    "task_ids", tid, f"a task directly upstream of {self.task_id!r} (here: {near}): only their "
                    f"values travel with its try; add {tid} >> {self.task_id}, or pass the value as an argument",
                    self.dag_id, self.task_id)
            values.append(self._pull_one(tid, key, default))
        return values[0] if isinstance(task_ids, str) else values

    def _pull_one(self, task_id: str, key: str | None, default: Any) -> Any:
        if key is None or key == RETURN_KEY:
            return self._outputs.get(task_id, default)
        pushed = self._pulled.get(task_id, {})
        if key in pushed:
            return decode(*pushed[key])
        value = self._outputs.get(task_id)
        return value[key] if isinstance(value, dict) and key in value else default

    def __repr__(self) -> str:
        return f"<TaskInstance {self.dag_id}.{self.task_id} {self.run_id} try {self.try_number}>"


def _on_execute(task: BaseOperator, context: dict[str, Any], log: Any) -> None:
    """Call the task's ``on_execute_callback`` (one or a list) right before ``execute``, here where
    the task runs. A callback that raises is written to the task's log and the task goes on, as in
    Airflow: a notification must not decide whether the work is done."""
    callbacks = task.on_execute_callback
    for callback in callbacks if isinstance(callbacks, (list, tuple)) else [callbacks]:
        try:
            callback(context)
        except Exception as exc:
            name = getattr(callback, "__name__", repr(callback))
            log.write(f"[{stamp()}] nbflow: on_execute_callback {name} raised; the task goes on:\n")
            log.write("".join(traceback.format_exception(exc)))


def _upstream_values(request: TaskRequest) -> dict[str, Any]:
    """The upstream outputs as Python values; one kept on the Dask cluster that did not reach this
    try (its executor fetches those it can) fails the try naming the upstream task and the fix."""
    values = {}
    for tid, (kind, data) in request.upstream.items():
        try:
            values[tid] = decode(kind, data)
        except OutputOnClusterError as exc:
            raise OutputOnClusterError(
                request.dag_id, tid, exc.name, f"{request.task_id!r} could not read it: the cluster no longer holds "
                "it (the run ended, or the cluster was restarted), or this host has no client of it",
                f"Clear {tid!r} as well so that it runs again: nbflow tasks clear {request.dag_id} -t {tid} "
                f"--downstream -r {shlex.quote(request.run_id)} --yes") from None
    return values


def run_task(request: TaskRequest) -> TaskResult:
    """Run one try. Returns a :class:`TaskResult`; raises what the task raised (after logging it)."""
    from nbflow.templates import build_context, render_fields

    started = time.perf_counter()
    instance = f"[{request.map_index}]" if request.map_index >= 0 else ""
    preamble = (
        f"[{stamp()}] nbflow: {request.dag_id}.{request.task_id}{instance} run {request.run_id} try "
        f"{request.try_number} of {request.max_tries} on {socket.gethostname()} pid {os.getpid()}\n"
    )
    with capture(request.log_path, preamble, request.max_log_bytes) as log:
        try:
            outputs = _upstream_values(request)
            task = copy.copy(request.operator)
            # copying goes through __getstate__, which leaves the DAG behind for worker processes;
            # in this process the task keeps it, so its messages can name the DAG
            object.__setattr__(task, "dag", request.operator.dag)
            for name in dict.fromkeys([*type(task).template_fields, "op_args", "op_kwargs"]):
                if name in task.__dict__:
                    object.__setattr__(task, name, resolve_refs(task.__dict__[name], outputs))
            if task.expand_input is not None:  # a mapped task's instance: its own values in their places
                apply_values(task, task.expand_input.values(outputs, request.map_index, request.dag_id, request.task_id))
            ti = TaskInstanceInfo(request, outputs)
            context = build_context(
                dag=request.dag, task=task, run_id=request.run_id, logical_date=request.logical_date,
                data_interval_start=request.data_interval_start, data_interval_end=request.data_interval_end,
                conf=request.conf, ti=ti, dag_run=request.dag_run(),
            )
            # Airflow 3's name, and Airflow 2's: plain data, whatever process the task runs in
            context["triggering_asset_events"] = context["triggering_dataset_events"] = request.triggering_asset_events
            context["map_index"] = request.map_index
            render_fields(task, context)
            token = set_task_context(context)
            try:
                if task.on_execute_callback:
                    _on_execute(task, context, log)
                value = task.execute(context)
            finally:
                reset_task_context(token)
            # a branching task's output is its decision, which the host must read: never kept away
            keep_over = 0 if task.is_branching else request.keep_outputs_over
            encoded = encode(value, request.dag_id, request.task_id, request.max_output_bytes, keep_over)
            pushed = {key: encode(item, request.dag_id, f"{request.task_id} (xcom {key!r})", request.max_output_bytes)
                      for key, item in ti.pushed.items()}
        except RescheduleTask as signal:
            log.write(f"[{stamp()}] nbflow: {signal}\n")
            return TaskResult(None, hostname=socket.gethostname(), pid=os.getpid(), logged=True,
                              reschedule_at=signal.reschedule_at)
        except SkipTask as signal:
            log.write(f"[{stamp()}] nbflow: skipped: {signal.reason}\n")
            return TaskResult(None, skipped=signal.reason, hostname=socket.gethostname(), pid=os.getpid(), logged=True)
        except BaseException as exc:
            log.write(f"[{stamp()}] nbflow: failed after {time.perf_counter() - started:.3f} s\n")
            log.write("".join(traceback.format_exception(exc)))
            raise
        log.write_if_created(f"[{stamp()}] nbflow: success after {time.perf_counter() - started:.3f} s\n")
    return TaskResult(encoded, hostname=socket.gethostname(), pid=os.getpid(), logged=log.created, pushed=pushed)
