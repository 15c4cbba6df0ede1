"""The read side the views share: what the command line, the widgets and the REST API ask of the store.

Each question a view asks ("this DAG's runs × tasks", "one task instance with its tries and logs",
"every DAG with its counts and the files that failed") is answered here once, from a
:class:`~nbflow.store.Store`, as plain dicts and dataclasses. The views only format what they get,
so the three of them cannot drift apart on what a question means (which log is the newest, where a
notebook task's report is, which runs count as recent), and a query made cheaper here is cheaper
everywhere. Nothing here writes, and nothing here unpickles an output: an output is its stored row,
previewed with :func:`nbflow.outputs.stored_preview`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbflow.errors import RunNotFoundError, TaskNotFoundError

if TYPE_CHECKING:
    from nbflow.store import Store

#: the lines a notebook task writes to its log (see nbflow.operators.notebook)
OUTPUT_NOTEBOOK_LINE = "nbflow: output notebook "
REPORT_LINE = "nbflow: report "


# -- runs -------------------------------------------------------------------------------------------


def task_states(store: Store, run_pk: int, *, instances: bool = False) -> dict[str, str]:
    """``{task_id: state}`` of one run, in the order the run was planned: what every view colours.
    A mapped task has its own state (that of its instances together); with ``instances``, each
    instance's follows as ``task_id[map_index]`` (what a graph counts on a mapped task's node)."""
    if instances:
        return {ti["ti_key"]: ti["state"] for ti in store.get_task_instances(run_pk)}
    return {ti["task_id"]: ti["state"] for ti in folded_task_instances(store, run_pk)}


def folded_task_instances(store: Store, run_pk: int) -> list[dict[str, Any]]:
    """One row per task, in planned order: a mapped task's row carries its instances' rows (by map
    index) under ``instances`` and how many are in each state under ``map_counts``."""
    rows = store.get_task_instances(run_pk)
    tasks = [row for row in rows if row["map_index"] < 0]
    instances: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["map_index"] >= 0:
            instances.setdefault(row["task_id"], []).append(row)
    for row in tasks:
        mine = sorted(instances.get(row["task_id"], ()), key=lambda ti: ti["map_index"])
        if mine:
            row["instances"] = mine
            counts: dict[str, int] = {}
            for ti in mine:
                counts[ti["state"]] = counts.get(ti["state"], 0) + 1
            row["map_counts"] = counts
    return tasks


def latest_run(store: Store, dag_id: str) -> dict[str, Any] | None:
    """The DAG's newest run (newest logical date, then newest created), or None before its first:
    what "the last run" means in the dashboard, ``nbflow tasks logs`` and ``%nbflow logs``."""
    return next(iter(store.list_runs(dag_id, limit=1)), None)


def run_or_latest(store: Store, dag_id: str, run_id: str | None) -> dict[str, Any] | None:
    """Run ``run_id``, or without one the newest (:func:`latest_run`); None when there is none."""
    return store.get_run(dag_id, run_id) if run_id else latest_run(store, dag_id)


@dataclass
class RunTasks:
    """One run and its task instances (in planned order)."""

    run: dict[str, Any]
    task_instances: list[dict[str, Any]]


def runs_with_task_instances(store: Store, dag_id: str, limit: int | None) -> list[RunTasks]:
    """The DAG's last ``limit`` runs, newest first, each with its task instances."""
    return [RunTasks(run, folded_task_instances(store, run["id"])) for run in store.list_runs(dag_id, limit=limit)]


@dataclass
class RunsGrid:
    """The runs × tasks grid: ``runs`` oldest first (as time reads, left to right) and the task states
    of each, ``{run_id: {task_id: state}}``."""

    runs: list[dict[str, Any]]
    states: dict[str, dict[str, str]]
    #: a mapped task's instances per state, ``{run_id: {task_id: {state: n}}}``
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)


def runs_grid(store: Store, dag_id: str, limit: int) -> RunsGrid:
    """The DAG's last ``limit`` runs × their task states, for the grid widget and the API's grid."""
    runs = list(reversed(store.list_runs(dag_id, limit=limit)))
    grid = RunsGrid(runs, {})
    for run in runs:
        rows = folded_task_instances(store, run["id"])
        grid.states[run["run_id"]] = {ti["task_id"]: ti["state"] for ti in rows}
        mapped = {ti["task_id"]: ti["map_counts"] for ti in rows if ti.get("map_counts")}
        if mapped:
            grid.counts[run["run_id"]] = mapped
    return grid


# -- DAGs -------------------------------------------------------------------------------------------


def is_paused(store: Store, dag_id: str) -> bool:
    """Whether the DAG's schedule is paused; a DAG the store does not know is not."""
    return bool((store.get_dag(dag_id) or {}).get("is_paused"))


def definition_tasks(row: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The tasks of a stored DAG row's definition (``DAG.describe()``), in DAG order; none for a row
    recorded before its definition (a run created by a test, a DAG known only by its runs)."""
    return list(((row or {}).get("definition") or {}).get("tasks") or [])


def task_kind(store: Store, dag_id: str, task_id: str) -> str:
    """A task's kind (``python``, ``notebook``, ...) as the stored definition has it, else ``custom``."""
    tasks = definition_tasks(store.get_dag(dag_id))
    return next((t.get("kind") or "custom" for t in tasks if t["task_id"] == task_id), "custom")


def in_dag_order(store: Store, dag_id: str, instances: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Task instances in the DAG's order (the stored definition's), unknown ones last by creation."""
    order = {t["task_id"]: i for i, t in enumerate(definition_tasks(store.get_dag(dag_id)))}
    return sorted((dict(ti) for ti in instances), key=lambda ti: (order.get(ti["task_id"], len(order)), ti["id"]))


def stored_schedule(row: Mapping[str, Any]) -> str | None:
    """The schedule as written, from a DAG's row: its ``schedule`` without the `` (zone)`` the
    description adds; None for a DAG run only by hand."""
    text = row.get("schedule")
    if not text or text == "manual":
        return None
    zone = row.get("timezone")
    suffix = f" ({zone})"
    return text[: -len(suffix)] if zone and text.endswith(suffix) else text


def next_run_times(row: Mapping[str, Any], n: int, dag: Any = None) -> list[Any]:
    """The next ``n`` scheduled times of a DAG, as every view shows them (the Lab sidebar, the
    notebook dashboard): from the DAG object when there is one, else rebuilt from its stored
    schedule, zone and dates (cron and presets; nothing for schedules only the DAG file can
    rebuild). Aware datetimes in the DAG's zone."""
    from nbflow.errors import NbflowError
    from nbflow.timetables import make_timetable, next_runs, parse_date, resolve_timezone

    if n <= 0:
        return []
    if dag is not None:
        return dag.next_runs(n)
    schedule = stored_schedule(row)
    if schedule is None:
        return []
    definition = row.get("definition") or {}
    try:
        zone = resolve_timezone(row.get("timezone") or "UTC")
        start = parse_date(definition["start_date"], zone) if definition.get("start_date") else None
        end = parse_date(definition["end_date"], zone) if definition.get("end_date") else None
        return next_runs(make_timetable(schedule, zone, start), n, start_date=start, end_date=end)
    except NbflowError:
        return []


@dataclass
class DagOverview:
    """One DAG as the lists show it: its stored row (schedule, owner, tags, ``is_paused``), its newest
    runs (newest first) and how many runs it has in each state."""

    row: dict[str, Any]
    recent_runs: list[dict[str, Any]]
    counts: dict[str, int]

    @property
    def dag_id(self) -> str:
        return str(self.row["dag_id"])

    @property
    def paused(self) -> bool:
        return bool(self.row.get("is_paused"))

    @property
    def last_run(self) -> dict[str, Any] | None:
        return self.recent_runs[0] if self.recent_runs else None


@dataclass
class DagsOverview:
    """Every DAG the store knows (by id) and every DAG file that failed to load (by file)."""

    dags: list[DagOverview] = field(default_factory=list)
    import_errors: list[dict[str, Any]] = field(default_factory=list)


def dag_overview(store: Store, row: Mapping[str, Any], recent: int,
                 counts: Mapping[str, Mapping[str, int]] | None = None) -> DagOverview:
    """:class:`DagOverview` of the DAG of ``row``. ``counts`` is :meth:`Store.run_counts` when the
    caller has it already (one query for every DAG of a list rather than one per DAG)."""
    counts = store.run_counts() if counts is None else counts
    runs = store.list_runs(row["dag_id"], limit=recent) if recent > 0 else []
    return DagOverview(dict(row), runs, dict(counts.get(row["dag_id"], {})))


def dags_overview(store: Store, recent: int) -> DagsOverview:
    """Every DAG with its ``recent`` newest runs and its run counts, and the import errors: the
    dashboard and the API's DAG list. Counts come from one grouped query for all DAGs."""
    counts = store.run_counts()
    return DagsOverview([dag_overview(store, row, recent, counts) for row in store.list_dags()],
                        store.list_import_errors())


# -- one task instance ------------------------------------------------------------------------------


@dataclass
class TaskInstanceDetail:
    """One task instance of one run: its row, its tries (oldest first) and its stored output row
    (None without one; previewed, never unpickled)."""

    run: dict[str, Any]
    ti: dict[str, Any]
    tries: list[dict[str, Any]]
    output: dict[str, Any] | None
    #: a mapped task's instances (rows by map index); empty for any other task instance
    instances: list[dict[str, Any]] = field(default_factory=list)

    @property
    def log_paths(self) -> list[str]:
        """The task's log files, newest try first: the current try's (it may have no try row yet, while
        it runs), then each try's."""
        paths = [self.ti["log_path"]] if self.ti.get("log_path") else []
        paths += [t["log_path"] for t in sorted(self.tries, key=lambda t: -t["try_number"]) if t.get("log_path")]
        return list(dict.fromkeys(paths))

    @property
    def log_path(self) -> str | None:
        """The newest log file, the one a view shows first."""
        return next(iter(self.log_paths), None)


def task_instance_detail(store: Store, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> TaskInstanceDetail:
    """Task ``task_id`` of run ``run_id`` (instance ``map_index`` of a mapped task) with its tries
    and output; a mapped task's own detail lists its instances. :class:`RunNotFoundError` for an
    unknown run; :class:`TaskNotFoundError` (naming the run's tasks) for a task not in it."""
    run = store.get_run(dag_id, run_id)
    if run is None:
        raise RunNotFoundError(dag_id, run_id)
    ti = store.get_task_instance(dag_id, run_id, task_id, map_index)
    if ti is None:
        rows = store.get_task_instances(run["id"])
        if map_index >= 0 and any(t["task_id"] == task_id for t in rows):
            raise TaskNotFoundError(dag_id, f"{task_id}[{map_index}]", sorted(
                t["ti_key"] for t in rows if t["task_id"] == task_id))
        raise TaskNotFoundError(dag_id, task_id, [t["task_id"] for t in rows if t["map_index"] < 0])
    instances = [] if map_index >= 0 else next(
        (row.get("instances", []) for row in folded_task_instances(store, run["id"]) if row["task_id"] == task_id), [])
    return TaskInstanceDetail(run, ti, store.get_tries(run["id"], task_id, map_index),
                              store.get_output(run["id"], task_id, map_index), instances)


# -- a notebook task's files ------------------------------------------------------------------------


def notebook_files(artifacts_folder: str | Path, dag_id: str, run_id: str, task_id: str,
                   log_paths: Sequence[str] = ()) -> tuple[str | None, str | None]:
    """(executed notebook, HTML report) of a notebook task, or None for either that is not there.

    First as its logs name them (newest try first: a notebook task with an ``output_path`` of its
    own writes elsewhere), else as found in its artifacts folder, under the safe folder names the
    task writes to, then under the raw ids (kept for folders written before names were made safe).
    The report is the notebook's ``.html`` twin, else any HTML file beside it. The paths are
    unchecked: a server passes them through its file rule before reading one.
    """
    from nbflow.paths import safe_path_part

    output = report = None
    for log_path in log_paths:
        try:
            with open(log_path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if line.startswith(OUTPUT_NOTEBOOK_LINE):
                        output = line[len(OUTPUT_NOTEBOOK_LINE):].strip()
                    elif line.startswith(REPORT_LINE):
                        report = line[len(REPORT_LINE):].strip()
        except OSError:
            continue
        if output:
            return output, report
    root = Path(artifacts_folder)
    for folder in (root / safe_path_part(dag_id) / safe_path_part(run_id) / safe_path_part(task_id),
                   root / dag_id / run_id / task_id):
        notebooks = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
        if notebooks:
            html = notebooks[0].with_suffix(".html")
            htmls = [html] if html.exists() else sorted(folder.glob("*.html"))
            return str(notebooks[0]), (str(htmls[0]) if htmls else None)
    return None, None


# -- assets -----------------------------------------------------------------------------------------


def _uris_of(condition: Any) -> list[str]:
    """Every URI of a stored asset condition (``dag.describe()["asset_schedule"]``)."""
    if condition is None:
        return []
    if isinstance(condition, str):
        return [condition]
    return [uri for member in next(iter(condition.values()), []) for uri in _uris_of(member)]


def assets_overview(store: Store) -> list[dict[str, Any]]:
    """Every asset known to the store or named by a stored DAG: its extra, its newest event, and
    the DAGs that produce it (a task's outlets) and consume it (an asset schedule), by their
    stored definitions. An asset a DAG names but no event has reached yet is listed too."""
    rows = {row["uri"]: {**row, "producers": [], "consumers": []} for row in store.list_assets()}

    def entry(uri: str) -> dict[str, Any]:
        return rows.setdefault(uri, {"uri": uri, "extra": {}, "created_at": None, "last_event": None,
                                     "producers": [], "consumers": []})

    for dag in store.list_dags():
        definition = dag.get("definition") or {}
        for task in definition.get("tasks") or []:
            for uri in task.get("outlets") or []:
                entry(uri)["producers"].append({"dag_id": dag["dag_id"], "task_id": task["task_id"]})
        for uri in dict.fromkeys(_uris_of(definition.get("asset_schedule"))):
            entry(uri)["consumers"].append(dag["dag_id"])
    return [rows[uri] for uri in sorted(rows)]


def dag_assets(store: Store, dag_id: str, definition: Mapping[str, Any] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The assets a DAG connects through, with the DAGs on their other side: ``produces`` (its
    tasks' outlets, with the DAGs scheduled on each) and ``consumes`` (its asset schedule, with the
    DAGs and tasks that update each). ``definition`` is the DAG's ``describe()`` when the caller has
    a fresher one than the store's."""
    everything = {row["uri"]: row for row in assets_overview(store)}
    definition = definition if definition is not None else ((store.get_dag(dag_id) or {}).get("definition") or {})
    produced: dict[str, list[str]] = {}
    for task in definition.get("tasks") or []:
        for uri in task.get("outlets") or []:
            produced.setdefault(uri, []).append(task["task_id"])
    consumed = list(dict.fromkeys(_uris_of(definition.get("asset_schedule"))))
    return {
        "produces": [{"uri": uri, "tasks": tasks,
                      "consumers": [d for d in everything.get(uri, {}).get("consumers", []) if d != dag_id]}
                     for uri, tasks in sorted(produced.items())],
        "consumes": [{"uri": uri, "producers": [p for p in everything.get(uri, {}).get("producers", [])
                                                if p["dag_id"] != dag_id],
                      "last_event_at": (everything.get(uri, {}).get("last_event") or {}).get("created_at")}
                     for uri in consumed],
    }
