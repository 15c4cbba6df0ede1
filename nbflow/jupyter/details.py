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
from nbflow.jupyter.timefmt import duration_text, run_html, time_html
from nbflow.memory import format_size
from nbflow.outputs import stored_preview

if TYPE_CHECKING:
    from nbflow.store import Store

log = logging.getLogger(__name__)

LOG_LINES = 40
#: the log scrolls inside a box as wide as the panel and wraps long lines there, every character
#: kept (a ``pre`` as wide as its longest line would be cut at the panel's edge)
WRAP_STYLE = "overflow-wrap:anywhere;min-width:0;max-width:100%"
LOG_STYLE = ("max-height:240px;overflow-y:auto;overflow-x:hidden;white-space:pre-wrap;overflow-wrap:anywhere;"
             "word-break:break-all;box-sizing:border-box;width:100%;max-width:100%;margin:2px 0;padding:4px;"
             "background:var(--jp-layout-color2,#f5f5f5);font-size:11px;line-height:1.35")


def log_tail(path: str | None, lines: int = LOG_LINES) -> str | None:
    """The last ``lines`` lines of a log file, or None if there is none."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except OSError:
        return None


def collect_task_details(store: Store, dag_id: str, run_id: str, task_id: str, *, kind: str = "",
                         try_number: int | None = None) -> dict[str, Any]:
    """Everything the panel shows of ``task_id`` in run ``run_id``, read from the store and files.

    ``try_number`` picks an earlier try: its state, times, host, error and log replace the task
    instance's own (``tries_list`` lists every try for a picker)."""
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
    info["worker"] = current.get("worker") if current is not None else None  # a cluster's worker ran it
    info["log_path"] = detail.log_path
    info["log_tail"] = log_tail(detail.log_path)
    info["tries_list"] = [{"try_number": t["try_number"], "state": t["state"]} for t in detail.tries]
    picked = next((t for t in detail.tries if t["try_number"] == try_number), None)
    if picked is not None and picked is not current:
        # the whole header follows the picked try, not only its log
        info.update(state=picked["state"], try_number=picked["try_number"], start_date=picked["start_date"],
                    end_date=picked["end_date"], duration=picked["duration"], error=picked["error"],
                    hostname=picked["hostname"], peak_rss=picked.get("peak_rss"), worker=picked.get("worker"),
                    log_path=picked.get("log_path"), log_tail=log_tail(picked.get("log_path")), picked_try=True)
    if detail.instances:  # a mapped task: each instance's state, tries and error line
        info["instances"] = [{"map_index": row["map_index"], "state": row["state"], "try_number": row["try_number"],
                              "duration": row["duration"], "error": row["error"]} for row in detail.instances]
    if detail.output is not None and not info.get("picked_try"):  # the output is the last try's
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
    """Local time with its zone named, UTC on hover (the browser's zone in JupyterLab)."""
    return time_html(value)


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
        _row("try", f"{info.get('try_number', 0)} of {info.get('max_tries', 1)}"
                    + (" <small class='nbflow-earlier-try'>(an earlier try)</small>" if info.get("picked_try") else "")),
        _row("started", _time(info.get("start_date"))),
        _row("ended", _time(info.get("end_date"))),
        _row("duration", escape(duration_text(info.get("duration")))),
        _row("run", run_html(info["run_id"])),
    ]
    if info.get("hostname"):
        rows.append(_row("host", escape(info["hostname"])))
    if info.get("worker"):
        rows.append(_row("worker", f"<code>{escape(info['worker'])}</code>"))
    if info.get("peak_rss"):
        rows.append(_row("peak memory", escape(format_size(info["peak_rss"]))))
    # the table's words wrap between words only ("duration" stays whole)
    parts = [head, "<table class='nbflow-details' style='overflow-wrap:normal'>" + "".join(rows) + "</table>"]
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
                     f"<pre class='nbflow-log' style='{LOG_STYLE}'>{escape(tail)}</pre></div>")
    elif info.get("state") not in (None, "none", "scheduled", "queued"):
        parts.append("<div><small>no log</small></div>")
    # long paths and lines break anywhere, so nothing is wider than the panel
    return f"<div class='nbflow-task-details' style='{WRAP_STYLE}'>{''.join(parts)}</div>"


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


#: the panel is never shorter than this, even beside a small graph: room for a task's log
MIN_HEIGHT = "400px"
#: how tall an opened report or notebook is drawn (pixels), across the whole width under the graph
INLINE_HEIGHT = 640


class DetailsPanel(w.VBox):
    """The panel beside the graph: for a notebook task the buttons that open its report or its
    executed notebook, then an HTML body (state, times, output, log).

    The buttons come first, so that a long body never lies over them. What they open is rendered
    in :attr:`report`, a sandboxed iframe (the page's scripts cannot reach Lab) that the graph view
    places under the graph and the legend at full width: beside the graph it was too narrow to read.
    """

    def __init__(self, **kwargs: Any) -> None:
        # the body scrolls under the buttons, which stay in view at the top of the panel
        self.body = w.HTML("<small>click a task to see its details</small>",
                           layout=w.Layout(flex="1 1 auto", width="100%", min_width="0", min_height="0",
                                           overflow="auto"),
                           _dom_classes=("nbflow-details-body",))
        self.report_button = w.Button(description="show report", icon="file", layout=w.Layout(display="none"),
                                      _dom_classes=("nbflow-show-report",))
        self.notebook_button = w.Button(description="show notebook", icon="book", layout=w.Layout(display="none"),
                                        _dom_classes=("nbflow-show-notebook",))
        self.hide_button = w.Button(description="hide", icon="times", tooltip="hide the report or notebook shown below",
                                    layout=w.Layout(display="none"))
        self.report = w.HTML(layout=w.Layout(width="100%"), _dom_classes=("nbflow-inline-area",))
        self._report_path: str | None = None
        self._notebook_path: str | None = None
        #: what the panel shows now, as :func:`collect_task_details` found it
        self.last_info: dict[str, Any] = {}
        self.report_button.on_click(lambda _: self.show_report())
        self.notebook_button.on_click(lambda _: self.show_notebook())
        self.hide_button.on_click(lambda _: self.hide_inline())
        #: for a task with several tries, which one the panel shows (the header, the times and the log
        #: follow it); made when first needed, as most tasks have one try
        self.try_picker: w.Dropdown | None = None
        self._quiet = False
        self._shown: tuple[str, str | None, str, str] | None = None
        self._picked: dict[tuple[str, str | None, str], int] = {}
        # A fixed height: a panel that grew with its content would move the graph under the mouse
        # between the two clicks of a double click. Its width is its share of the row, never more.
        kwargs.setdefault("layout", w.Layout(width="36%", min_width="0", height="440px", min_height=MIN_HEIGHT,
                                             overflow="hidden", padding="4px"))
        self.buttons = w.HBox([self.report_button, self.notebook_button, self.hide_button],
                              layout=w.Layout(flex="0 0 auto", flex_flow="row wrap"))
        kwargs.setdefault("_dom_classes", ("nbflow-details",))
        super().__init__(children=[self.buttons, self.body], **kwargs)

    def show_html(self, html: str, report_path: str | None = None, notebook_path: str | None = None) -> None:
        self.body.value = html
        if (report_path, notebook_path) != (self._report_path, self._notebook_path):
            self.hide_inline()
        self._report_path, self._notebook_path = report_path, notebook_path
        self.report_button.layout.display = "" if report_path else "none"
        self.notebook_button.layout.display = "" if notebook_path else "none"

    def show_error(self, what: str, exc: BaseException) -> None:
        log.debug("%s failed", what, exc_info=exc)
        self.body.value = render_error(what, exc)
        self.report_button.layout.display = "none"
        self.notebook_button.layout.display = "none"

    def show_task(self, store: Store, dag_id: str, run_id: str | None, task_id: str, *, kind: str = "",
                  try_number: int | None = None) -> dict[str, Any]:
        """Show ``task_id`` of run ``run_id``: its current try, or ``try_number`` (default: the try
        last picked for this task in this run, so that live refreshes keep the user's pick)."""
        key = (dag_id, run_id, task_id)
        if try_number is not None:
            self._picked[key] = try_number
        try_number = self._picked.get(key)
        if run_id is None:
            info = {"task_id": task_id, "kind": kind, "missing": "no run yet: run the DAG to see its tasks' details"}
        else:
            info = collect_task_details(store, dag_id, run_id, task_id, kind=kind, try_number=try_number)
        self.last_info = info
        self._shown = (dag_id, run_id, task_id, kind)
        self._set_tries(info)
        self.show_html(render_task_details(info), info.get("report"), info.get("notebook"))
        return info

    def _set_tries(self, info: Mapping[str, Any]) -> None:
        tries = info.get("tries_list") or []
        if len(tries) > 1 and self.try_picker is None:
            self.try_picker = w.Dropdown(options=[("try 1", 1)], value=1, layout=w.Layout(width="auto"),
                                         _dom_classes=("nbflow-try-picker",))
            self.try_picker.observe(self._picked_try, "value")
            self.buttons.children = (self.try_picker, *self.buttons.children)
        if self.try_picker is None:
            return
        self._quiet = True
        try:
            if len(tries) > 1:
                # the state's word as every view shows it ("up for retry"), as in Lab's picker
                options = [(f"try {t['try_number']} · {style_for(t['state'])['label']}", t["try_number"]) for t in tries]
                if list(self.try_picker.options) != options:
                    self.try_picker.options = options
                if self.try_picker.value != info.get("try_number"):
                    self.try_picker.value = info.get("try_number")
                self.try_picker.layout.display = ""
            else:
                self.try_picker.layout.display = "none"
        finally:
            self._quiet = False

    def _picked_try(self, change: Mapping[str, Any]) -> None:
        if self._quiet or self._shown is None or change["new"] is None:
            return
        dag_id, run_id, task_id, kind = self._shown
        try:
            from nbflow.store import Store

            store = Store.open()
            try:
                self.show_task(store, dag_id, run_id, task_id, kind=kind, try_number=int(change["new"]))
            finally:
                store.close()
        except Exception as exc:
            self.show_error("showing the try", exc)

    def _inline(self, html: str, title: str) -> None:
        self.report.value = (f"<div class='nbflow-inline-title'><b>{escape(title)}</b></div>"
                             f"<iframe class='nbflow-inline' sandbox srcdoc=\"{escape(html, quote=True)}\" "
                             f"style='width:100%;height:{INLINE_HEIGHT}px;border:1px solid #ccc;box-sizing:border-box'>"
                             "</iframe>")
        self.hide_button.layout.display = ""

    def hide_inline(self) -> None:
        """Take the report or notebook shown under the graph away."""
        self.report.value = ""
        self.hide_button.layout.display = "none"

    def _task_name(self) -> str:
        return str(self.last_info.get("task_id") or "")

    def show_report(self) -> None:
        """The notebook's HTML report, inline, under the graph."""
        try:
            if self._report_path:
                self._inline(Path(self._report_path).read_text(encoding="utf-8"), f"report of {self._task_name()}")
        except Exception as exc:
            self.show_error("showing the report", exc)

    def show_notebook(self) -> None:
        """The executed notebook, rendered to HTML, inline (a failed one shows its error cell)."""
        try:
            if self._notebook_path:
                from nbflow.notebook.report import notebook_html

                self._inline(notebook_html(self._notebook_path), f"executed notebook of {self._task_name()}")
        except Exception as exc:
            self.show_error("showing the notebook", exc)
