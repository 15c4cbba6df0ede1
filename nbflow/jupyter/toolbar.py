"""The graph view's toolbar: run now, follow, pause, the run picker; clear or mark the selected task;
open, close or focus on part of the graph.

Thin: every button calls one public method of :class:`~nbflow.jupyter.graph_widget.DagGraph`, and a
failure shows as an error line in the view instead of a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from nbflow.jupyter.timefmt import iso_utc, short_time

if TYPE_CHECKING:
    from nbflow.jupyter.graph_widget import DagGraph


def run_label(run: Mapping[str, Any]) -> str:
    """How the run picker names a run: ``manual · 4 Dec 02:41 · success`` (its type, its logical
    date in local time, its state); the run id is on hover where nbflow's Lab extension runs."""
    return f"{run['run_type']} · {short_time(run.get('logical_date'))} · {run['state']}"


def run_times(options: Sequence[tuple[str, Any]], rows: Mapping[str, Mapping[str, Any]]) -> str:
    """The run picker's runs for nbflow's JupyterLab extension, which writes each label's time in
    the browser's zone with the run id on hover: one entry per option, as JSON in a hidden element."""
    entries = []
    for label, run_id in options:
        row = rows.get(run_id) if run_id is not None else None
        when = short_time(row.get("logical_date")) if row is not None else None
        if row is None or when is None or when not in label:
            entries.append({"iso": None, "before": label, "after": "", "run_id": run_id or ""})
            continue
        before, _, after = label.partition(when)
        entries.append({"iso": iso_utc(row.get("logical_date")), "before": before, "after": after, "run_id": run_id})
    return f"<span class='nbflow-run-times' data-nbflow-runs='{escape(json.dumps(entries), quote=True)}'></span>"


def run_options(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(label, run_id) pairs for the run picker, newest logical date first (the store's order);
    labels are made unique so that two runs in the same minute stay apart."""
    options: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for run in runs:
        label = run_label(run)
        seen[label] = seen.get(label, 0) + 1
        options.append((label if seen[label] == 1 else f"{label} ({seen[label]})", run["run_id"]))
    return options


class GraphToolbar(w.VBox):
    """Buttons over the graph; ``runs`` is the run picker (a Dropdown of the DAG's runs)."""

    def __init__(self, graph: DagGraph) -> None:
        self.graph = graph
        # a button keeps its whole label (no flex shrinking into "fol…"); rows wrap instead
        small = w.Layout(width="auto", flex="0 0 auto")
        self.run_button = w.Button(description="run now", icon="play", tooltip="run the DAG now in this kernel, live",
                                   layout=small)
        self.follow_button = w.ToggleButton(description="follow", icon="eye", tooltip="follow the next run live",
                                            layout=small)
        self.clear_button = w.Button(description="clear", icon="eraser", tooltip="clear the selected task in this run",
                                     layout=small)
        self.downstream = w.Checkbox(description="downstream", value=False, indent=False, layout=w.Layout(width="110px"))
        self.success_button = w.Button(description="mark success", icon="check", layout=small)
        self.failed_button = w.Button(description="mark failed", icon="times", layout=small)
        self.pause_toggle = w.ToggleButton(description="pause", icon="pause", tooltip="pause or unpause the schedule",
                                           layout=small)
        self.runs = w.Dropdown(description="run", options=[("(no run yet)", None)], value=None,
                               layout=w.Layout(width="420px"))
        self.open_button = w.Button(description="open", icon="expand", tooltip="show the inside of the selected "
                                    "folded node or group (or double-click it)", layout=small)
        self.close_button = w.Button(description="close", icon="compress", tooltip="fold the selected node's group "
                                     "or opened node again", layout=small)
        self.focus_button = w.Button(description="focus", icon="crosshairs", tooltip="show the selected task with "
                                     "its neighbours only", layout=small)
        self.whole_button = w.Button(description="whole DAG", icon="sitemap", tooltip="undo every open, close and "
                                     "focus", layout=small)
        self.fit_button = w.Button(description="fit", icon="arrows-alt", tooltip="fit the graph to the view",
                                   layout=small)
        self.grid_toggle = w.ToggleButton(description="runs grid", icon="th", tooltip="show the recent runs × tasks "
                                          "below the graph; click a cell to show that run and task", layout=small)
        self.run_times = w.HTML(layout=w.Layout(display="none"))
        self.source_button = w.ToggleButton(description="source", icon="code", tooltip="show where this DAG is "
                                            "written: its file and line, or its notebook cell", layout=small)
        self.source_view = w.HTML(layout=w.Layout(display="none"))
        self.status = w.HTML(layout=w.Layout(margin="0 0 0 8px"))
        self._quiet = False
        self._rows: dict[str, dict[str, Any]] = {}

        self.run_button.on_click(self._handler("run now", lambda: self.graph.run_now()))
        self.clear_button.on_click(self._handler("clear", lambda: self.graph.clear_task(downstream=self.downstream.value)))
        self.success_button.on_click(self._handler("mark success", lambda: self.graph.mark_task(
            "success", downstream=self.downstream.value)))
        self.failed_button.on_click(self._handler("mark failed", lambda: self.graph.mark_task(
            "failed", downstream=self.downstream.value)))
        self.open_button.on_click(self._handler("open", lambda: self.graph.expand()))
        self.close_button.on_click(self._handler("close", lambda: self.graph.collapse()))
        self.focus_button.on_click(self._handler("focus", lambda: self.graph.focus()))
        self.whole_button.on_click(self._handler("whole DAG", lambda: self.graph.reset_view()))
        self.fit_button.on_click(self._handler("fit", lambda: self.graph.elements.fit()))
        self.grid_toggle.observe(lambda change: self._guard("runs grid", lambda: self.graph.show_grid(change["new"])),
                                 "value")
        self.pause_toggle.observe(self._toggled_pause, "value")
        self.source_button.observe(lambda change: self._guard("source", lambda: self._show_source(change["new"])),
                                   "value")
        self.follow_button.observe(self._toggled_follow, "value")
        self.runs.observe(self._picked_run, "value")
        graph.observe(self._status_changed, "status")
        graph.observe(self._following_changed, "following")
        super().__init__(children=[
            w.HBox([self.run_button, self.follow_button, self.pause_toggle, self._runs_box(), self.grid_toggle],
                   layout=w.Layout(flex_flow="row wrap")),
            w.HBox([self.clear_button, self.downstream, self.success_button, self.failed_button,
                    self.open_button, self.close_button, self.focus_button, self.whole_button, self.fit_button,
                    self.source_button],
                   layout=w.Layout(flex_flow="row wrap")),
            self.status,
            self.source_view,
        ])
        self._following_changed({"new": graph.following})

    def _runs_box(self) -> w.HBox:
        # where nbflow's Lab extension finds the picker's runs
        return w.HBox([self.runs, self.run_times], _dom_classes=("nbflow-runs-box",))

    def _guard(self, what: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as exc:
            self.graph.report_failure(what, exc)

    def _handler(self, what: str, action: Callable[[], Any]) -> Callable[[Any], None]:
        def handle(_button: Any) -> None:
            try:
                action()
            except Exception as exc:
                self.graph.report_failure(what, exc)

        return handle

    # -- the run picker ---------------------------------------------------------------------------

    def set_runs(self, runs: Sequence[Mapping[str, Any]], selected: str | None) -> None:
        self._rows = {run["run_id"]: dict(run) for run in runs}
        options = run_options(runs) or [("(no run yet)", None)]
        self._quiet = True
        try:
            self.run_times.value = run_times(options, self._rows)
            self.runs.options = options
            self.runs.value = selected if any(value == selected for _, value in options) else options[0][1]
        finally:
            self._quiet = False
        self._sync_pause()

    def select_run(self, run_id: str | None) -> None:
        if self.runs.value == run_id:
            return
        if not any(value == run_id for _, value in self.runs.options):
            self.graph.refresh_runs()
            return
        self._quiet = True
        try:
            self.runs.value = run_id
        finally:
            self._quiet = False

    def update_run_label(self, run: Mapping[str, Any]) -> None:
        """A followed run changed state: its label in the picker says so."""
        row = {**self._rows.get(run["run_id"], {"run_type": "", "logical_date": None}), **run}
        self._rows[run["run_id"]] = row
        options = list(self.runs.options)
        for i, (_, value) in enumerate(options):
            if value == run["run_id"]:
                options[i] = (run_label(row), value)
                self.set_runs_options(options, self.runs.value)
                return

    def set_runs_options(self, options: list[tuple[str, Any]], selected: Any) -> None:
        self._quiet = True
        try:
            self.run_times.value = run_times(options, self._rows)
            self.runs.options = options
            self.runs.value = selected
        finally:
            self._quiet = False

    def _picked_run(self, change: dict[str, Any]) -> None:
        if self._quiet:
            return
        try:
            self.graph.pick_run(change["new"])
        except Exception as exc:
            self.graph.report_failure("loading the run", exc)

    # -- the DAG's source -------------------------------------------------------------------------

    def _show_source(self, shown: bool) -> None:
        """Show (or hide) the lines that define the DAG, read from its file or notebook now."""
        from nbflow.jupyter.dagsource import locate, source_html

        if shown:
            dag = self.graph.dag
            self.source_view.value = source_html(locate(dag.fileloc, dag.dag_id))
        self.source_view.layout.display = None if shown else "none"

    # -- pause and follow -------------------------------------------------------------------------

    def _sync_pause(self) -> None:
        try:
            paused = self.graph.paused
        except Exception:
            return
        self._quiet = True
        try:
            self.pause_toggle.value = paused
            self._label_pause(paused)
        finally:
            self._quiet = False

    def _label_pause(self, paused: bool) -> None:
        self.pause_toggle.description = "paused" if paused else "pause"
        self.pause_toggle.icon = "play" if paused else "pause"

    def _toggled_pause(self, change: dict[str, Any]) -> None:
        if self._quiet:
            return
        try:
            self.graph.set_paused(change["new"])
            self._label_pause(change["new"])
        except Exception as exc:
            self.graph.report_failure("pause" if change["new"] else "unpause", exc)

    def _toggled_follow(self, change: dict[str, Any]) -> None:
        if self._quiet:
            return
        try:
            self.graph.follow() if change["new"] else self.graph.stop()
        except Exception as exc:
            self.graph.report_failure("follow", exc)

    def _following_changed(self, change: dict[str, Any]) -> None:
        self._quiet = True
        try:
            self.follow_button.value = bool(change["new"])
        finally:
            self._quiet = False

    def _status_changed(self, change: dict[str, Any]) -> None:
        self.status.value = f"<small>{escape(change['new'])}</small>"
