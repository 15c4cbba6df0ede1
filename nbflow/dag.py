"""``DAG``: the tasks, their dependencies, and when they run.

Use it as a context manager (``with DAG("id", ...) as d:``) or through ``@dag``. The object is pure
description: building one touches no database and starts nothing; :meth:`DAG.test` and the
scheduler are what run it.
"""

from __future__ import annotations

import re
import sys
import math
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from nbflow.context import collect_dag, pop_dag, push_dag
from nbflow.params import Param, check_dag_params
from nbflow.errors import (
    CycleError,
    DagDefinitionError,
    DuplicateTaskIdError,
    InvalidOptionError,
    ScheduleError,
    TaskNotFoundError,
    UnknownArgumentError,
)

if TYPE_CHECKING:
    from nbflow.dagrun import DagRun
    from nbflow.operators.base import BaseOperator
    from nbflow.taskgroup import TaskGroup
    from nbflow.timetables import Timetable

_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,249}$")
_UNSET: Any = object()


def check_id(kind: str, value: Any, dag_id: str | None = None) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise DagDefinitionError(
            f"{kind} {value!r} is not valid: use letters, digits, '_', '-' and '.', starting with a "
            "letter, digit or '_' (at most 250 characters)",
            dag_id,
        )
    return value


def _at_least_one(option: str, value: Any, dag_id: str) -> int:
    """A limit on what runs at once: 0 would leave every run queued forever, so it is refused."""
    from nbflow.operators.base import INT_MAX, whole_number

    number = whole_number(value)
    if not isinstance(number, int) or not 1 <= number <= INT_MAX:
        raise InvalidOptionError(option, value, f"give a whole number from 1 to {INT_MAX:,} (0 would never start anything)", dag_id)
    return number


def _caller_file() -> str | None:
    """The file that built the DAG: the first frame outside nbflow itself."""
    frame = sys._getframe(2)
    package_dir = __file__.rsplit("/", 1)[0]
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(package_dir) and not filename.startswith("<frozen"):
            return filename
        frame = frame.f_back
    return None


def check_dag_arguments(arguments: Iterable[str], dag_id: str | None = None) -> None:
    """Refuse a keyword ``DAG(...)`` / ``@dag(...)`` does not take with one line that names it, the
    known ones and the closest, rather than Python's bare TypeError (a typo such as ``shedule`` would
    otherwise read like a bug in nbflow)."""
    import inspect

    known = [name for name, p in inspect.signature(DAG.__init__).parameters.items()
             if p.kind is inspect.Parameter.KEYWORD_ONLY or name == "dag_id"]
    for name in arguments:
        if name not in known:
            raise UnknownArgumentError(name, known, "DAG argument", dag_id)


class DAG:
    """A directed acyclic graph of tasks with a schedule.

    ``schedule`` is a 5-field cron string, a preset (``@daily``, ``@once``, ...), a ``timedelta`` or
    ``None`` (manual runs only, the default); ``schedule_interval`` is accepted as its old name. Times
    are evaluated in ``timezone`` (an IANA name; default: the zone of an aware ``start_date``, then the
    ``default_timezone`` setting, then the machine's zone).
    """

    def __init__(
        self,
        dag_id: str,
        *,
        schedule: Any = _UNSET,
        schedule_interval: Any = _UNSET,
        start_date: Any = None,
        end_date: Any = None,
        timezone: str | tzinfo | None = None,
        catchup: bool = False,
        default_args: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        owner: str | None = None,
        description: str | None = None,
        max_active_runs: int = 16,
        max_active_tasks: int = 16,
        doc_md: str | None = None,
        on_success_callback: Callable[[dict[str, Any]], Any] | None = None,
        on_failure_callback: Callable[[dict[str, Any]], Any] | None = None,
        dagrun_timeout: Any = None,
        template_searchpath: str | Iterable[str] | None = None,
        dag_display_name: str | None = None,
        notify_on_failure: Iterable[str] | None = None,
        notify_on_success: Iterable[str] | None = None,
        notify_on_retry: Iterable[str] | None = None,
        deadline: Any = None,
        deadline_notify: Iterable[str] | None = None,
        executor: str | None = None,
        fileloc: str | None = None,
        **unknown: Any,
    ) -> None:
        self.dag_id = check_id("dag_id", dag_id)
        check_dag_arguments(unknown, dag_id)
        if schedule is not _UNSET and schedule_interval is not _UNSET:
            raise ScheduleError(schedule, "give either schedule or schedule_interval, not both", dag_id)
        self.schedule = schedule if schedule is not _UNSET else (
            schedule_interval if schedule_interval is not _UNSET else None
        )
        # checked here too, so a bad default fails even in a DAG without tasks yet
        self.default_args = self.check_default_args(default_args or {})
        self.catchup = bool(catchup)
        self.params = dict(params or {})
        self.tags = sorted(set(tags or ()))
        self.owner = owner or self.default_args.get("owner") or "nbflow"
        if not isinstance(self.owner, str):
            raise InvalidOptionError("owner", self.owner, "a name, as text", dag_id)
        self.description = description
        self.doc_md = doc_md
        self.max_active_runs = _at_least_one("max_active_runs", max_active_runs, dag_id)
        self.max_active_tasks = _at_least_one("max_active_tasks", max_active_tasks, dag_id)
        self.on_success_callback = on_success_callback
        self.on_failure_callback = on_failure_callback
        #: how long a run may go on after it starts (as in Airflow): past it, the host driving the run
        #: fails it, stops its running tries and skips what has not finished
        self.dagrun_timeout: timedelta | None = _dagrun_timeout(dagrun_timeout, dag_id)
        from nbflow.notifications import check_targets
        from nbflow.operators.base import check_notifiers, check_option

        for name, callback in (("on_success_callback", on_success_callback), ("on_failure_callback", on_failure_callback)):
            if callback is not None:
                check_notifiers(name, callback, dag_id=dag_id)
        #: Apprise URLs told when a task fails for good / a run succeeds / a try will be retried, in
        #: place of the settings of the same names; None means the settings', [] nobody
        self.notify_on_failure = None if notify_on_failure is None else check_targets(notify_on_failure, "notify_on_failure", dag_id)
        self.notify_on_success = None if notify_on_success is None else check_targets(notify_on_success, "notify_on_success", dag_id)
        self.notify_on_retry = None if notify_on_retry is None else check_targets(notify_on_retry, "notify_on_retry", dag_id)
        #: how long after its logical date a run should have finished: past it, still queued or
        #: running, the run is told once to ``deadline_notify`` (else the failure targets); it goes on
        self.deadline: timedelta | None = _deadline(deadline, dag_id)
        self.deadline_notify = None if deadline_notify is None else check_targets(deadline_notify, "deadline_notify", dag_id)
        if self.deadline_notify is not None and self.deadline is None:
            raise InvalidOptionError("deadline_notify", self.deadline_notify, "it names who hears of a missed deadline: "
                                     "give deadline=timedelta(...) too, or leave deadline_notify out", dag_id)
        #: where its tasks' tries run (inline, thread, process or dask), wherever the DAG runs; a
        #: task's own ``executor`` comes first. None: the executor of the host running it
        self.executor: str | None = check_option("executor", executor, dag_id=dag_id)
        self.fileloc = fileloc or _caller_file()
        #: what views show for the DAG (its id stays what commands, files and the store use)
        from nbflow.operators.base import display_name

        self.dag_display_name = display_name("dag_display_name", dag_display_name, dag_id) or dag_id
        #: folders where template files (a field ending in .sql or .sh, {% include %}) are looked for
        #: after the DAG file's own; relative ones are read from the DAG file's folder
        self.template_searchpath = _searchpath(template_searchpath, self.fileloc, dag_id)
        #: where the definition lives: "file", "notebook" or "interactive"; set by what built the
        #: DAG (DAG-file discovery, the %%dag magic), otherwise inferred from ``fileloc``
        self.source_kind: str | None = None
        self.task_dict: dict[str, BaseOperator] = {}
        self.task_groups: dict[str, TaskGroup] = {}
        #: what is known of an edge beyond that it exists, by (upstream, downstream): {"label": ...}
        self.edge_info: dict[tuple[str, str], dict[str, str]] = {}
        self._order: list[str] | None = None
        self._token: Any = None

        from nbflow.timetables import make_timetable, parse_date, resolve_timezone

        start = start_date if start_date is not None else self.default_args.get("start_date")
        end = end_date if end_date is not None else self.default_args.get("end_date")
        if timezone is None and isinstance(start, datetime) and start.tzinfo is not None:
            timezone = start.tzinfo
        if timezone is None:
            from nbflow.settings import get_settings

            timezone = get_settings().default_timezone or None
        self.timezone: tzinfo = resolve_timezone(timezone, dag_id)
        self.start_date = parse_date(start, self.timezone, field="start_date", dag_id=dag_id) if start is not None else None
        self.end_date = parse_date(end, self.timezone, field="end_date", dag_id=dag_id) if end is not None else None
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise DagDefinitionError(
                f"end_date {self.end_date.isoformat()} is before start_date {self.start_date.isoformat()}; "
                "swap them or drop end_date",
                dag_id,
            )
        self.timetable: Timetable = make_timetable(self.schedule, self.timezone, self.start_date, dag_id)
        if any(isinstance(value, Param) for value in self.params.values()):
            check_dag_params(self.params, dag_id, scheduled=self.schedule is not None)
        collect_dag(self)

    # -- authoring --------------------------------------------------------------------------------

    def check_default_args(self, default_args: Mapping[str, Any], *, group_id: str | None = None) -> dict[str, Any]:
        """``default_args`` of this DAG (or of its task group ``group_id``) as tasks will use them,
        or an error naming the key: refused where they are written, not first by a task.

        A group's cannot hold ``start_date`` or ``end_date``, which the DAG reads from its own."""
        from nbflow.operators.base import DEFAULT_ARGS_KEYS, check_email, check_option

        where = f"task group '{group_id}' default_args" if group_id else "default_args"
        allowed = DEFAULT_ARGS_KEYS - {"start_date", "end_date"} if group_id else DEFAULT_ARGS_KEYS
        checked = dict(default_args)
        for key, value in checked.items():
            if key not in allowed:
                raise UnknownArgumentError(key, sorted(allowed), where, self.dag_id)
            checked[key] = check_option(key, value, dag_id=self.dag_id, via=where)
        check_email(checked, dag_id=self.dag_id, via=where)
        return checked

    def __enter__(self) -> DAG:
        self._token = push_dag(self)
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        pop_dag(self._token)
        if exc_type is None:
            self.validate()

    def __getstate__(self) -> dict[str, Any]:
        # A DAG travels whole (from the process that parsed its file): the authoring token is only
        # meaningful in the process that made it.
        return {**self.__dict__, "_token": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("edge_info", {})  # a DAG pickled before edges had labels
        for task in self.task_dict.values():  # a pickled task leaves its DAG behind (BaseOperator.__getstate__)
            task.dag = self

    def add_task(self, task: BaseOperator) -> None:
        check_id("task_id", task.task_id, self.dag_id)
        if task.task_id in self.task_dict:
            raise DuplicateTaskIdError(self.dag_id, task.task_id)
        task.dag = self
        self.task_dict[task.task_id] = task
        self._order = None

    def _edges_changed(self) -> None:
        self._order = None

    def set_edge_info(self, upstream_task_id: str, downstream_task_id: str, info: dict[str, str]) -> None:
        """Keep ``info`` (``{"label": "when valid"}``) for the edge ``upstream >> downstream``, which
        ``Label`` does; views draw it, the run never reads it."""
        self.edge_info[(upstream_task_id, downstream_task_id)] = dict(info)

    def get_edge_info(self, upstream_task_id: str, downstream_task_id: str) -> dict[str, str]:
        """What is kept for the edge ``upstream >> downstream`` (``{}`` if nothing)."""
        return dict(self.edge_info.get((upstream_task_id, downstream_task_id), {}))

    @property
    def tasks(self) -> list[BaseOperator]:
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        return list(self.task_dict)

    def get_task(self, task_id: str) -> BaseOperator:
        try:
            return self.task_dict[task_id]
        except KeyError:
            raise TaskNotFoundError(self.dag_id, task_id, list(self.task_dict)) from None

    def has_task(self, task_id: str) -> bool:
        return task_id in self.task_dict

    @property
    def roots(self) -> list[BaseOperator]:
        return [t for t in self.task_dict.values() if not t.upstream_task_ids]

    @property
    def leaves(self) -> list[BaseOperator]:
        return [t for t in self.task_dict.values() if not t.downstream_task_ids]

    # -- validation -------------------------------------------------------------------------------

    def validate(self) -> DAG:
        """Raise a :class:`CycleError` naming the loop if the tasks are not acyclic."""
        self.topological_order()
        return self

    def topological_order(self) -> list[str]:
        """Task ids, every task after all of its upstream tasks (ties in definition order)."""
        if self._order is not None:
            return self._order
        import heapq

        position = {tid: i for i, tid in enumerate(self.task_dict)}
        remaining = {tid: len(t.upstream_task_ids) for tid, t in self.task_dict.items()}
        ready = [position[tid] for tid, n in remaining.items() if n == 0]
        ids = list(self.task_dict)
        order: list[str] = []
        while ready:
            tid = ids[heapq.heappop(ready)]
            order.append(tid)
            for down in self.task_dict[tid].downstream_task_ids:
                remaining[down] -= 1
                if remaining[down] == 0:
                    heapq.heappush(ready, position[down])
        if len(order) != len(self.task_dict):
            raise CycleError(self.dag_id, self._find_cycle({t for t, n in remaining.items() if n > 0}))
        self._order = order
        return order

    def _find_cycle(self, candidates: set[str]) -> list[str]:
        # Walk upstream from any task left over: every one of them has an unfinished upstream, so the
        # walk must come back to a task it has seen, and the part from there is the cycle.
        start = min(candidates)
        seen: dict[str, int] = {}
        path: list[str] = []
        node = start
        while node not in seen:
            seen[node] = len(path)
            path.append(node)
            node = min(u for u in self.task_dict[node].upstream_task_ids if u in candidates)
        cycle = path[seen[node]:] + [node]
        return list(reversed(cycle))

    # -- schedule ---------------------------------------------------------------------------------

    def next_runs(self, n: int = 5, after: Any = None) -> list[datetime]:
        """The next ``n`` scheduled times after ``after`` (default now), aware, in the DAG's zone;
        ``n`` goes from 1 to :data:`~nbflow.timetables.MAX_NEXT_RUNS`."""
        from nbflow.timetables import check_run_count, next_runs, parse_date

        check_run_count(n, self.dag_id)
        when = parse_date(after, self.timezone, field="after", dag_id=self.dag_id) if after is not None else None
        return next_runs(self.timetable, n, when, start_date=self.start_date, end_date=self.end_date)

    # -- running ----------------------------------------------------------------------------------

    def test(
        self,
        logical_date: Any = None,
        conf: dict[str, Any] | None = None,
        executor: str | Any | None = None,
        progress: bool | None = None,
    ) -> DagRun:
        """Run the DAG once now, in this process, and return the finished run.

        The run is recorded in the store like any other (run type ``test``) so that its logs and
        outputs can be looked at afterwards. ``progress`` draws a bar of the tasks as they finish
        (a widget in a notebook, a line in a terminal); None draws it for DAGs of 50 tasks or more.
        """
        from nbflow.plugins import engine

        return engine("run")(self, logical_date=logical_date, conf=conf, executor=executor, run_type="test",
                             progress=progress)

    def backfill(self, start: Any, end: Any, *, reprocess: str = "none", executor: str | Any | None = None,
                 progress: bool = True) -> list[DagRun]:
        """Run every scheduled time in [start, end] (both included) and return the runs in order.

        Existing runs are kept (``reprocess="none"``), re-run when failed (``"failed"``) or always
        (``"all"``); an interrupted backfill resumes without redoing what finished. A bar shows the
        runs done (a widget in a notebook, a line in a terminal) unless ``progress=False``.
        """
        from nbflow.plugins import engine

        return engine("backfill")(self, start, end, reprocess=reprocess, executor=executor, progress=progress)

    # -- description ------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """A JSON-able definition for the store and the views."""
        from nbflow.timetables import timezone_name

        return {
            "dag_id": self.dag_id,
            "dag_display_name": self.dag_display_name,
            "schedule": self.timetable.description,
            # what starts it besides time: a URI, or {"all": [...]} / {"any": [...]} (nbflow.assets)
            "asset_schedule": (self.timetable.asset_condition.to_json()
                               if self.timetable.asset_condition is not None else None),
            "timezone": timezone_name(self.timezone),
            "start_date": self.start_date.isoformat() if self.start_date else None,
            "end_date": self.end_date.isoformat() if self.end_date else None,
            "catchup": self.catchup,
            "tags": self.tags,
            "owner": self.owner,
            "description": self.description,
            "doc_md": self.doc_md,
            "params": {name: _jsonable(value.describe() if isinstance(value, Param) else value)
                       for name, value in self.params.items()},
            "tasks": [self.task_dict[t].describe() for t in self.topological_order()],
            "groups": {gid: {"tasks": g.task_ids, "tooltip": g.tooltip} for gid, g in self.task_groups.items()},
            "edge_labels": [{"upstream": up, "downstream": down, "label": info["label"]}
                            for (up, down), info in sorted(self.edge_info.items()) if "label" in info],
        }

    def __repr__(self) -> str:
        return f"<DAG {self.dag_id!r}: {self._task_count()}, schedule {self.timetable.description}>"

    def _task_count(self) -> str:
        count = len(self.task_dict)
        return f"{count} task" if count == 1 else f"{count} tasks"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """In a notebook: what the installed DAG view draws (nbflow's: the live graph widget, with
        an SVG picture for viewers that run no kernel), else the plain table of tasks."""
        from nbflow.plugins import render

        bundle = render("dag", self, include=include, exclude=exclude)
        return bundle if bundle is not None else {"text/plain": repr(self), "text/html": self._repr_html_()}

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(
            f"<tr><td>{escape(t.task_id)}</td><td>{escape(t.kind)}</td>"
            f"<td>{escape(', '.join(sorted(t.upstream_task_ids)) or '—')}</td></tr>"
            for t in (self.task_dict[tid] for tid in self.topological_order())
        )
        return (
            f"<div><b>DAG {escape(self.dag_id)}</b> — {self._task_count()}, schedule "
            f"{escape(self.timetable.description)}<table><tr><th>task</th><th>kind</th>"
            f"<th>upstream</th></tr>{rows}</table></div>"
        )


def _searchpath(value: Any, fileloc: str | None, dag_id: str) -> list[str]:
    import os

    if value is None:
        return []
    folders = [value] if isinstance(value, (str, os.PathLike)) else value
    try:
        folders = list(folders)
    except TypeError:
        folders = [value]
    if not all(isinstance(folder, (str, os.PathLike)) for folder in folders):
        raise InvalidOptionError("template_searchpath", value, "a folder, or a list of folders", dag_id)
    base = os.path.dirname(os.path.abspath(fileloc)) if fileloc else os.getcwd()
    return [os.path.normpath(os.path.join(base, os.fspath(folder))) for folder in folders]


def _jsonable(value: Any) -> Any:
    import json

    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _deadline(value: Any, dag_id: str) -> timedelta | None:
    """``deadline`` as a timedelta from the logical date: 0 or more seconds; None for none."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else (
        float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None)
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise InvalidOptionError("deadline", value, "give how long after its logical date a run should have "
                                 "finished: 0 or more seconds (a number or a datetime.timedelta), or None", dag_id)
    return timedelta(seconds=seconds)


def _dagrun_timeout(value: Any, dag_id: str) -> timedelta | None:
    """``dagrun_timeout`` as a timedelta: a timedelta or seconds, more than 0; None for no limit."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else (
        float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise InvalidOptionError("dagrun_timeout", value, "give more than 0 seconds (a number or a "
                                 "datetime.timedelta), or None for no limit", dag_id)
    return timedelta(seconds=seconds)
