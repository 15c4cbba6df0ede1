"""The details panel of the graph view: what one task did in one run.

:func:`collect_task_details` reads the store and the files a try left (its log, a notebook's
progress file); :func:`render_task_details` turns that into HTML and is pure, so what the panel shows
can be tested without a store. :class:`DetailsPanel` is the widget; whatever fails while filling it
becomes one error line in it, never an exception out of a click.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from nbflow.jupyter.graph import style_for
from nbflow.jupyter.timefmt import duration_text, local_time, utc_time
from nbflow.memory import format_size
from nbflow.outputs import stored_preview

if TYPE_CHECKING:
    from nbflow.store import Store

log = logging.getLogger(__name__)

LOG_LINES = 40


def log_tail(path: str | None, lines: int = LOG_LINES) -> str | None:
    """The last ``lines`` lines of a log file, or None if there is none."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except OSError:
        return None


def collect_task_details(store: Store, dag_id: str, run_id: str, task_id: str, *, kind: str = "") -> dict[str, Any]:
    """Everything the panel shows of ``task_id`` in run ``run_id``, read from the store and files."""
    from nbflow.errors import RunNotFoundError, TaskNotFoundError
    from nbflow.notebook.progress import read_progress
    from nbflow.settings import get_settings
    from nbflow.store import queries

    info: dict[str, Any] = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "kind": kind}
    try:
        detail = queries.task_instance_detail(store, dag_id, run_id, task_id)
    except RunNotFoundError:
        info["missing"] = f"no run {run_id} of {dag_id} in the store"
        return info
    except TaskNotFoundError:
        info["missing"] = f"run {run_id} has no task instance {task_id}"
        return info
    ti = detail.ti
    info.update(state=ti["state"], try_number=ti["try_number"], max_tries=ti["max_tries"],
                start_date=ti["start_date"], end_date=ti["end_date"], duration=ti["duration"],
                error=ti["error"], hostname=ti["hostname"], tries=len(detail.tries))
    current = next((t for t in detail.tries if t["try_number"] == ti["try_number"]), None)
    info["peak_rss"] = current.get("peak_rss") if current is not None else None
    info["log_path"] = detail.log_path
    info["log_tail"] = log_tail(detail.log_path)
    if detail.instances:  # a mapped task: each instance's state, tries and error line
        info["instances"] = [{"map_index": row["map_index"], "state": row["state"], "try_number": row["try_number"],
                              "duration": row["duration"], "error": row["error"]} for row in detail.instances]
    if detail.output is not None:
        # the preview stored when the output was written: unpickling here would run the pickle's code
        shown = stored_preview(detail.output)
        info["output"] = shown.line()
        info["output_summary"] = shown.summary()
    if kind == "notebook":
        output_path, report_path = queries.notebook_files(get_settings().artifacts_folder, dag_id, run_id, task_id,
                                                          detail.log_paths)
        info["notebook"] = output_path
        info["report"] = report_path
        info["progress"] = read_progress(output_path) if output_path else None
    return info


def _row(name: str, value: str) -> str:
    return f"<tr><th style='text-align:left;padding-right:8px'>{escape(name)}</th><td>{value}</td></tr>"


def _time(value: Any) -> str:
    """Local time with its zone named, UTC on hover."""
    return f"<span class='nbflow-time' title='{escape(utc_time(value))}'>{escape(local_time(value))}</span>"


def state_badge(state: str | None) -> str:
    look = style_for(state)
    return (f"<span class='nbflow-state' data-state='{escape(str(state))}' style='background:{look['background']};"
            f"color:{look['text']};border:1px solid {look['border']};padding:0 6px;border-radius:3px'>"
            f"{escape(look['label'])}</span>")


def render_task_details(info: Mapping[str, Any]) -> str:
    """The panel's HTML for what :func:`collect_task_details` found."""
    head = f"<div><b>{escape(info['task_id'])}</b> <small>{escape(info.get('kind') or '')}</small></div>"
    if info.get("missing"):
        return head + f"<div class='nbflow-missing'>{escape(info['missing'])}</div>"
    rows = [
        _row("state", state_badge(info.get("state"))),
        _row("try", f"{info.get('try_number', 0)} of {info.get('max_tries', 1)}"),
        _row("started", _time(info.get("start_date"))),
        _row("ended", _time(info.get("end_date"))),
        _row("duration", escape(duration_text(info.get("duration")))),
        _row("run", f"<code>{escape(info['run_id'])}</code>"),
    ]
    if info.get("hostname"):
        rows.append(_row("host", escape(info["hostname"])))
    if info.get("peak_rss"):
        rows.append(_row("peak memory", escape(format_size(info["peak_rss"]))))
    parts = [head, "<table class='nbflow-details'>" + "".join(rows) + "</table>"]
    progress = info.get("progress")
    if progress:
        parts.append(f"<div class='nbflow-progress'>cell {progress['cell']}/{progress['cells']} "
                     f"<progress value='{progress['cell']}' max='{progress['cells']}'></progress> "
                     f"{escape(duration_text(progress.get('elapsed')))}</div>")
    if info.get("notebook"):
        parts.append(f"<div>notebook: <code>{escape(info['notebook'])}</code></div>")
    if info.get("report"):
        parts.append(f"<div>report: <code>{escape(info['report'])}</code></div>")
    if info.get("error"):
        last = info["error"].strip().splitlines()[-1] if info["error"].strip() else ""
        parts.append(f"<div class='nbflow-task-error' style='color:#b30000'>{escape(last)}</div>")
    if "output" in info:
        summary = f" <small class='nbflow-output-type'>{escape(info['output_summary'])}</small>" if info.get("output_summary") else ""
        parts.append(f"<div><b>output</b>{summary}<pre class='nbflow-output'>"
                     f"{escape(info['output'])}</pre></div>")
    if info.get("instances"):
        parts.append(_instances_table(info["instances"]))
    tail = info.get("log_tail")
    if tail is not None:
        parts.append(f"<div><b>log</b> <small>last {LOG_LINES} lines</small>"
                     f"<pre class='nbflow-log' style='max-height:240px;overflow:auto'>{escape(tail)}</pre></div>")
    elif info.get("state") not in (None, "none", "scheduled", "queued"):
        parts.append("<div><small>no log</small></div>")
    return "".join(parts)


def render_dag_assets(assets: Mapping[str, list[Mapping[str, Any]]]) -> str:
    """The assets a DAG runs on and updates, each with the DAGs on its other side."""
    items = []
    for a in assets.get("consumes", []):
        producers = ", ".join(sorted({p["dag_id"] for p in a.get("producers", [])})) or "no DAG yet"
        items.append(f"<li>runs on <code>{escape(a['uri'])}</code> ⟵ {escape(producers)}</li>")
    for a in assets.get("produces", []):
        consumers = ", ".join(a.get("consumers", [])) or "no DAG runs on it"
        items.append(f"<li><code>{escape(a['uri'])}</code> updated by {escape(', '.join(a.get('tasks', [])))} "
                     f"⟶ {escape(consumers)}</li>")
    return f"<div class='nbflow-assets'><b>assets</b><ul>{''.join(items)}</ul></div>" if items else ""


#: a mapped task's panel lists at most this many instances (the failed ones first)
MAX_INSTANCES_SHOWN = 50


def _instances_table(instances: list[Mapping[str, Any]]) -> str:
    """A mapped task's instances: counts per state, then one row per instance, failed ones first."""
    counts: dict[str, int] = {}
    for one in instances:
        counts[one["state"]] = counts.get(one["state"], 0) + 1
    badges = " ".join(f"{state_badge(state)} {n}" for state, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    ordered = sorted(instances, key=lambda one: (one["state"] not in ("failed", "upstream_failed"), one["map_index"]))
    rows = "".join(
        f"<tr><td>[{one['map_index']}]</td><td>{state_badge(one['state'])}</td><td>try {one['try_number'] or 0}</td>"
        f"<td>{escape(duration_text(one.get('duration')))}</td>"
        f"<td>{escape((one.get('error') or '').strip().splitlines()[-1] if (one.get('error') or '').strip() else '')}</td></tr>"
        for one in ordered[:MAX_INSTANCES_SHOWN])
    more = (f"<div><small>… and {len(instances) - MAX_INSTANCES_SHOWN} more</small></div>"
            if len(instances) > MAX_INSTANCES_SHOWN else "")
    return (f"<div class='nbflow-instances'><b>{len(instances)} mapped instances</b> {badges}"
            f"<table class='nbflow-details'>{rows}</table>{more}</div>")


def render_node_summary(label: str, counts: Mapping[str, int], members: list[str], states: Mapping[str, Any],
                        *, openable: bool = False) -> str:
    """A folded node or a group box: how many of its tasks are in each state, and the first few."""
    badges = " ".join(f"{state_badge(state)} {n}" for state, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    shown = "".join(f"<li>{escape(t)} {state_badge(states.get(t))}</li>" for t in members[:20])
    more = f"<li>… and {len(members) - 20} more</li>" if len(members) > 20 else ""
    hint = "<div><small>double-click it, or press <b>open</b>, to see its tasks</small></div>" if openable else ""
    return (f"<div><b>{escape(label)}</b> — {len(members)} tasks</div><div>{badges}</div>{hint}"
            f"<ul class='nbflow-members'>{shown}{more}</ul>")


def render_error(what: str, exc: BaseException) -> str:
    return (f"<div class='nbflow-error' style='color:#b30000'>{escape(what)} failed: "
            f"{escape(type(exc).__name__)}: {escape(str(exc))}</div>")


class DetailsPanel(w.VBox):
    """The panel beside the graph: an HTML body, and for a notebook task its report or its executed
    notebook, rendered inline on request (sandboxed, so the page's scripts cannot reach Lab)."""

    def __init__(self, **kwargs: Any) -> None:
        self.body = w.HTML("<small>click a task to see its details</small>")
        self.report_button = w.Button(description="show report", icon="file", layout=w.Layout(display="none"))
        self.notebook_button = w.Button(description="show notebook", icon="book", layout=w.Layout(display="none"))
        self.report = w.HTML()
        self._report_path: str | None = None
        self._notebook_path: str | None = None
        #: what the panel shows now, as :func:`collect_task_details` found it
        self.last_info: dict[str, Any] = {}
        self.report_button.on_click(lambda _: self.show_report())
        self.notebook_button.on_click(lambda _: self.show_notebook())
        # A fixed height: a panel that grew with its content would move the graph under the mouse
        # between the two clicks of a double click.
        kwargs.setdefault("layout", w.Layout(width="36%", height="440px", overflow="auto", padding="4px"))
        super().__init__(children=[self.body, w.HBox([self.report_button, self.notebook_button]), self.report],
                         **kwargs)

    def show_html(self, html: str, report_path: str | None = None, notebook_path: str | None = None) -> None:
        self.body.value = html
        if (report_path, notebook_path) != (self._report_path, self._notebook_path):
            self.report.value = ""
        self._report_path, self._notebook_path = report_path, notebook_path
        self.report_button.layout.display = "" if report_path else "none"
        self.notebook_button.layout.display = "" if notebook_path else "none"

    def show_error(self, what: str, exc: BaseException) -> None:
        log.debug("%s failed", what, exc_info=exc)
        self.body.value = render_error(what, exc)
        self.report_button.layout.display = "none"
        self.notebook_button.layout.display = "none"

    def show_task(self, store: Store, dag_id: str, run_id: str | None, task_id: str, *, kind: str = "") -> dict[str, Any]:
        if run_id is None:
            info = {"task_id": task_id, "kind": kind, "missing": "no run yet: run the DAG to see its tasks' details"}
        else:
            info = collect_task_details(store, dag_id, run_id, task_id, kind=kind)
        self.last_info = info
        self.show_html(render_task_details(info), info.get("report"), info.get("notebook"))
        return info

    def _inline(self, html: str) -> None:
        self.report.value = (f"<iframe class='nbflow-inline' sandbox srcdoc=\"{escape(html, quote=True)}\" "
                             "style='width:100%;height:420px;border:1px solid #ccc'></iframe>")

    def show_report(self) -> None:
        """The notebook's HTML report, inline, below the details."""
        try:
            if self._report_path:
                self._inline(Path(self._report_path).read_text(encoding="utf-8"))
        except Exception as exc:
            self.show_error("showing the report", exc)

    def show_notebook(self) -> None:
        """The executed notebook, rendered to HTML, inline (a failed one shows its error cell)."""
        try:
            if self._notebook_path:
                from nbflow.notebook.report import notebook_html

                self._inline(notebook_html(self._notebook_path))
        except Exception as exc:
            self.show_error("showing the notebook", exc)
