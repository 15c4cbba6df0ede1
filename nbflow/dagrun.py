"""``DagRun``: what a finished (or running) run looks like to the user.

Built from the store, so the same object describes a run made by ``dag.test()``, by the scheduler or
by another machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from nbflow.states import RunState, TaskState


@dataclass(frozen=True)
class DagRunInfo:
    """``dag_run`` in a task's context and templates: what Airflow tasks commonly read of their run
    (``{{ dag_run.conf["x"] }}``, ``{{ dag_run.run_id }}``). Plain data, so it travels to worker
    processes with the task's request; ``conf`` is the run's JSON object."""

    dag_id: str
    run_id: str
    run_type: str
    logical_date: datetime
    data_interval_start: datetime
    data_interval_end: datetime
    conf: dict[str, Any] = field(default_factory=dict)
    start_date: datetime | None = None

    @property
    def execution_date(self) -> datetime:
        """Airflow 2's name of ``logical_date``."""
        return self.logical_date


@dataclass
class TaskInstanceResult:
    task_id: str
    state: TaskState
    try_number: int = 0
    max_tries: int = 1
    start_date: datetime | None = None
    end_date: datetime | None = None
    duration: float | None = None
    error: str | None = None
    log_path: str | None = None
    hostname: str | None = None
    pid: int | None = None
    #: a mapped task's instances per state (None for a task that is not mapped)
    map_counts: dict[str, int] | None = None


@dataclass
class DagRun:
    dag_id: str
    run_id: str
    run_type: str
    state: RunState
    logical_date: datetime
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    conf: dict[str, Any] = field(default_factory=dict)
    task_instances: dict[str, TaskInstanceResult] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def task_states(self) -> dict[str, TaskState]:
        return {tid: ti.state for tid, ti in self.task_instances.items()}

    @property
    def tries(self) -> dict[str, int]:
        return {tid: ti.try_number for tid, ti in self.task_instances.items()}

    @property
    def durations(self) -> dict[str, float | None]:
        return {tid: ti.duration for tid, ti in self.task_instances.items()}

    @property
    def errors(self) -> dict[str, str]:
        """The traceback text of each task whose last try failed."""
        return {tid: ti.error for tid, ti in self.task_instances.items() if ti.error}

    @property
    def log_paths(self) -> dict[str, str]:
        return {tid: ti.log_path for tid, ti in self.task_instances.items() if ti.log_path}

    @property
    def duration(self) -> float | None:
        if self.start_date and self.end_date:
            return (self.end_date - self.start_date).total_seconds()
        return None

    def summary(self) -> str:
        """The run in plain text: every task a line when there are few, else counts by state; then each
        failure with its try, error line and log."""
        lines = [
            f"DAG {self.dag_id}  run {self.run_id}  {self.state.value.upper()}",
            f"logical date {self.logical_date.isoformat()}"
            + (f"  took {self.duration:.2f} s" if self.duration is not None else ""),
            "",
        ]
        listed = self.task_instances if len(self.task_instances) <= self.LIST_TASKS_UP_TO else {}
        if listed:
            lines.append(f"{'task':<32} {'state':<16} {'tries':>5} {'seconds':>8}")
        else:
            lines.append(f"{len(self.task_instances):,} tasks: {self._counts_text()}")
        for tid, ti in listed.items():
            seconds = f"{ti.duration:.3f}" if ti.duration is not None else "-"
            if ti.map_counts:  # a mapped task: its instances, not tries of its own
                counts = ", ".join(f"{n} {s}" for s, n in sorted(ti.map_counts.items()))
                lines.append(f"{tid:<32} {ti.state.value:<16} {'-':>5} {seconds:>8}  "
                             f"[{sum(ti.map_counts.values())} instances: {counts}]")
                continue
            lines.append(f"{tid:<32} {ti.state.value:<16} {ti.try_number:>5} {seconds:>8}")
        for ti in self.failures()[:self.LIST_TASKS_UP_TO]:
            lines.append(f"  {_failure_line(ti)}" + (f"  log: {ti.log_path}" if ti.log_path else ""))
        return "\n".join(lines)

    #: up to this many tasks a run lists every task; beyond, only its failures and counts by state
    LIST_TASKS_UP_TO = 30

    def counts(self) -> dict[str, int]:
        """How many tasks are in each state, most common first."""
        counts: dict[str, int] = {}
        for ti in self.task_instances.values():
            counts[ti.state.value] = counts.get(ti.state.value, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def failures(self) -> list[TaskInstanceResult]:
        """The tasks whose last try failed (or whose run they failed), in the run's task order."""
        return [ti for ti in self.task_instances.values()
                if ti.state in (TaskState.FAILED, TaskState.UP_FOR_RETRY) or (ti.error and ti.state != TaskState.SUCCESS)]

    def _counts_text(self) -> str:
        return ", ".join(f"{n:,} {s}" for s, n in self.counts().items()) or "no tasks"

    def __repr__(self) -> str:
        """The run's state, its tasks counted by state, then one line per failure with its error and log;
        every task is listed only when there are few (a 2,000-task run is not 2,000 lines)."""
        lines = [f"<DagRun {self.dag_id} {self.run_id}: {self.state.value} ({self._counts_text()})>"]
        failures = self.failures()
        for ti in failures[:self.LIST_TASKS_UP_TO]:
            lines.append(f"  {_failure_line(ti)}")
            if ti.log_path:
                lines.append(f"    log: {ti.log_path}")
        if len(failures) > self.LIST_TASKS_UP_TO:
            lines.append(f"  ... and {len(failures) - self.LIST_TASKS_UP_TO:,} more failed (run.errors has them all)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = {"success": "#2e7d32", "failed": "#c62828", "skipped": "#9e9e9e",
                  "upstream_failed": "#ef6c00", "up_for_retry": "#f9a825"}
        counts = ", ".join(f"<span style='color:{colour.get(s, '#333')}'>{n:,} {escape(s)}</span>"
                           for s, n in self.counts().items()) or "no tasks"
        failures = self.failures()
        failed_html = ""
        if failures:
            items = "".join(
                f"<li><b>{escape(ti.task_id)}</b> (try {ti.try_number} of {ti.max_tries}): "
                f"<code>{escape(_error_line(ti))}</code>"
                + (f"<br><small>log: <code>{escape(ti.log_path)}</code></small>" if ti.log_path else "")
                + "</li>"
                for ti in failures[:self.LIST_TASKS_UP_TO])
            more = (f"<li>... and {len(failures) - self.LIST_TASKS_UP_TO:,} more (<code>run.errors</code>)</li>"
                    if len(failures) > self.LIST_TASKS_UP_TO else "")
            failed_html = f"<div class='nbflow-run-failures'>{len(failures):,} failed:<ul>{items}{more}</ul></div>"
        table = ""
        if len(self.task_instances) <= self.LIST_TASKS_UP_TO:
            rows = "".join(
                f"<tr><td>{escape(tid)}</td><td style='color:{colour.get(ti.state.value, '#333')}'>"
                f"{escape(ti.state.value)}</td><td>{ti.try_number}</td>"
                f"<td>{'' if ti.duration is None else f'{ti.duration:.3f}'}</td></tr>"
                for tid, ti in self.task_instances.items()
            )
            table = (f"<table><tr><th>task</th><th>state</th><th>tries</th><th>seconds</th></tr>{rows}</table>")
        return (
            f"<div><b>{escape(self.dag_id)}</b> run <code>{escape(self.run_id)}</code>: "
            f"<b>{escape(self.state.value)}</b> · {counts}{failed_html}{table}</div>"
        )


def _error_line(ti: TaskInstanceResult) -> str:
    """The last line of a try's traceback: the exception and its message."""
    text = (ti.error or "").strip()
    return text.splitlines()[-1] if text else "(no error recorded; see the log)"


def _failure_line(ti: TaskInstanceResult) -> str:
    return f"{ti.task_id} {ti.state.value} (try {ti.try_number} of {ti.max_tries}): {_error_line(ti)}"


def check_conf(conf: Any, dag_id: str | None = None, *, max_bytes: int | None = None) -> dict[str, Any]:
    """The ``conf`` of a new run of ``dag_id``, checked before anything is stored; every way of
    starting a run (``dag.test``, a trigger from the CLI, a notebook or the REST API) calls it.

    A conf is kept as JSON in the store and sent whole in every answer that lists runs, so it must be
    a JSON object of plain values: a NaN or an infinity would be stored as text that browsers and
    PostgreSQL reject, a datetime or a set would fail deep in the store, a key that is not a string
    would come back as another key, and a conf of megabytes would make every list of runs that big.
    ``max_bytes`` (default: the ``max_conf_bytes`` setting) limits the size of its compact UTF-8 JSON.
    Raises :class:`~nbflow.errors.InvalidConfError` naming the DAG and the first bad value.
    """
    import json
    import math

    from nbflow.errors import InvalidConfError

    if conf is None:
        return {}
    if not isinstance(conf, dict):
        raise InvalidConfError(f"is a {type(conf).__name__}, not a JSON object ({{...}})", dag_id)
    stack: list[tuple[Any, str]] = [(conf, "conf")]
    while stack:  # not recursive: a conf nested thousands deep must not blow the stack
        value, where = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidConfError(
                        f"has the key {key!r} ({type(key).__name__}) in {where}: JSON keys are strings", dag_id)
                stack.append((item, f"{where}[{key!r}]"))
        elif isinstance(value, (list, tuple)):
            stack.extend((item, f"{where}[{index}]") for index, item in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidConfError(f"has {value!r} at {where}: JSON has no NaN or infinity", dag_id)
        elif value is not None and not isinstance(value, (str, int, float)):
            raise InvalidConfError(
                f"has a {type(value).__name__} at {where}, which JSON cannot hold (give it as a string or a number)",
                dag_id)
    try:
        text = json.dumps(conf, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        size = len(text.encode("utf-8"))
    except RecursionError:
        raise InvalidConfError("is nested too deeply to be written as JSON", dag_id) from None
    except UnicodeEncodeError:
        raise InvalidConfError("has a string that is not valid Unicode (a lone surrogate such as \\ud800)", dag_id) from None
    if max_bytes is None:
        from nbflow.settings import get_settings

        max_bytes = get_settings().max_conf_bytes
    if size > max_bytes:
        raise InvalidConfError(
            f"takes {size:,} bytes as JSON, over the limit of {max_bytes:,} bytes (setting max_conf_bytes)", dag_id,
            fix="Pass large data as a file path or a table name instead, or raise the limit with max_conf_bytes "
                "in nbflow.toml or NBFLOW_MAX_CONF_BYTES.")
    return dict(conf)
