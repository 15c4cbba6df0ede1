"""``DagGraph``: a DAG drawn in the notebook, coloured by the states of one run, updated live.

Cost model (measured with ipycytoscape 1.3, counting the comm messages a kernel sends):

* ipycytoscape makes every node and every edge its own widget, so drawing N elements costs at least
  N ``comm_open`` messages; nothing can batch those. ``Graph.add_graph_from_json`` costs about 3.5
  messages per element on top (each attribute is set after the element's comm is open, and the
  graph's adjacency dict is re-sent after every node). Here each element is created with its data,
  position and classes in its constructor (which go out with its ``comm_open``) and all of them are
  handed to the graph inside one ``hold_sync``, which sends the node list, the edge list and the
  adjacency once: N + 2 messages for the whole build. The model keeps N under ``max_elements``.
* A state change is a change of one element's ``data`` (``state``, and the label of a folded node
  with its counts): one message per changed element, because each element is a separate widget and
  ipycytoscape has no message that updates several. So changes are coalesced by
  :class:`~nbflow.jupyter.graph.StateBatcher` (at most ``rate`` batches a second, latest state per
  task), each batch touches each visible node at most once, and an element whose data did not change
  sends nothing. A 2,000-task run in a 400-element view therefore costs at most 400 messages per
  batch, usually a handful, whatever the number of task-state changes.
* Layout is ``preset`` with positions computed in Python; the browser never runs dagre.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from html import escape
from typing import TYPE_CHECKING, Any, TypeVar

import ipycytoscape
import ipywidgets as w
from traitlets import Bool, Unicode, observe

from nbflow.jupyter.details import DetailsPanel, render_node_summary
from nbflow.jupyter.graph import KIND_SHAPES, LEGEND, NO_STATUS, GraphModel, StateBatcher, node_size, style_for

if TYPE_CHECKING:
    from nbflow.controls import Changes
    from nbflow.dag import DAG
    from nbflow.jupyter.live import RunFollower
    from nbflow.store import Store

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

GRAPH_HEIGHT = "440px"


# -- pure: model -> cytoscape ----------------------------------------------------------------------


def cytoscape_style() -> list[dict[str, Any]]:
    """The stylesheet: shapes by ``data.kind``, colours by ``data.state`` (from ``style_for``),
    open group boxes as compound nodes, arrows on every edge."""
    base = style_for(NO_STATUS)
    sheet: list[dict[str, Any]] = [
        {"selector": "node", "style": {
            "label": "data(label)", "width": "data(width)", "height": "data(height)",
            "text-valign": "center", "text-halign": "center", "text-wrap": "ellipsis", "text-max-width": "140px",
            "font-size": 11, "border-width": 2, "background-color": base["background"],
            "border-color": base["border"], "color": base["text"],
        }},
    ]
    sheet += [{"selector": f'node[kind = "{kind}"]', "style": {"shape": shape}} for kind, shape in KIND_SHAPES.items()]
    sheet += [
        {"selector": f'node[state = "{state}"]', "style": {
            "background-color": look["background"], "border-color": look["border"], "color": look["text"]}}
        for state, look in LEGEND
    ]
    sheet += [
        {"selector": "node[?is_aggregate], node[?is_group]", "style": {"border-style": "double", "border-width": 4}},
        {"selector": "node[?is_compound]", "style": {
            "background-color": "#f4f6fa", "background-opacity": 0.6, "border-style": "dashed", "border-width": 2,
            "text-valign": "top", "text-halign": "center", "color": "#333333", "padding": "12px", "shape": "round-rectangle"}},
        {"selector": "node:selected", "style": {"overlay-color": "#1e6fd9", "overlay-opacity": 0.25, "overlay-padding": 4}},
        {"selector": "edge", "style": {
            "curve-style": "bezier", "width": 1.5, "line-color": "#9a9a9a", "target-arrow-color": "#9a9a9a",
            "target-arrow-shape": "triangle", "arrow-scale": 1.1}},
        {"selector": "edge[count > 1]", "style": {"label": "data(count)", "font-size": 9, "width": 3,
                                                 "text-background-color": "#ffffff", "text-background-opacity": 1}},
    ]
    return sheet


def element_specs(model: GraphModel) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Constructor arguments of the cytoscape nodes and edges for ``model``, in drawing order."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for element in model.to_elements():
        data = dict(element["data"])
        if element["group"] == "nodes":
            width, height = node_size(data.get("kind", "custom"))
            data.update(state=NO_STATUS, width=width, height=height)
            nodes.append({"data": data, "position": dict(element["position"]), "grabbable": True})
        else:
            edges.append({"data": data, "classes": "directed"})
    return nodes, edges


def legend_html() -> str:
    items = "".join(
        f"<span style='display:inline-block;margin:0 8px 2px 0'><span style='display:inline-block;width:11px;"
        f"height:11px;vertical-align:middle;background:{look['background']};border:1px solid {look['border']}'>"
        f"</span> {escape(look['label'])}</span>"
        for _, look in LEGEND
    )
    return f"<div class='nbflow-legend' style='font-size:11px'>{items}</div>"


def build_cytoscape(model: GraphModel) -> tuple[ipycytoscape.CytoscapeWidget, dict[str, ipycytoscape.Node]]:
    """The cytoscape widget with every element of ``model``, sent in one build (see the module doc)."""
    view = ipycytoscape.CytoscapeWidget(
        cytoscape_layout={"name": "preset", "fit": True, "padding": 24},
        cytoscape_style=cytoscape_style(), auto_unselectify=False, min_zoom=0.05, max_zoom=4.0,
        layout=w.Layout(width="60%", height=GRAPH_HEIGHT),
    )
    node_specs, edge_specs = element_specs(model)
    nodes = [ipycytoscape.Node(**spec) for spec in node_specs]
    edges = [ipycytoscape.Edge(**spec) for spec in edge_specs]
    with view.graph.hold_sync():
        view.graph.add_nodes(nodes)
        view.graph.add_edges(edges, directed=True)
    return view, {node.data["id"]: node for node in nodes}


# -- the widget ------------------------------------------------------------------------------------


def _guarded(what: str) -> Callable[[F], F]:
    """For callbacks (clicks, buttons, observers, threads): a failure becomes an error line in the
    details panel and the status, never an exception out of the view."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def call(self: DagGraph, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except Exception as exc:
                self.report_failure(what, exc)
                return None

        return call  # type: ignore[return-value]

    return wrap


class DagGraph(w.VBox):
    """A DAG's graph with a toolbar and a details panel, showing the task states of one run.

    ``cytoscape`` is the ipycytoscape widget, free to restyle. The view's state lives in synced traits
    (``run_id``, ``selected_node``, ``selected_task``, ``following``, ``status``); state reaches the
    drawing only through :meth:`set_states`, which goes through a :class:`StateBatcher`.
    """

    dag_id = Unicode("").tag(sync=True)
    run_id = Unicode(None, allow_none=True).tag(sync=True)
    selected_node = Unicode(None, allow_none=True).tag(sync=True)
    selected_task = Unicode(None, allow_none=True).tag(sync=True)
    following = Bool(False).tag(sync=True)
    status = Unicode("").tag(sync=True)

    def __init__(self, dag: DAG, *, run_id: str | None = None, max_elements: int = 400, rate: float = 4.0,
                 load: bool = True, **kwargs: Any) -> None:
        from nbflow.jupyter.toolbar import GraphToolbar

        self.dag = dag
        self.model = GraphModel.from_dag(dag, max_elements=max_elements)
        self._states: dict[str, str] = {}
        self._selecting = False
        self._lock = threading.RLock()
        self.cytoscape, self._elements = build_cytoscape(self.model)
        self._batcher = StateBatcher(self._apply, rate=rate)
        self.follower: RunFollower | None = None
        self._runner: threading.Thread | None = None
        self.details = DetailsPanel()
        self.legend = w.HTML(legend_html())
        self.toolbar = GraphToolbar(self)
        kwargs.setdefault("layout", w.Layout(width="100%"))
        super().__init__(children=[self.toolbar, w.HBox([self.cytoscape, self.details]), self.legend], **kwargs)
        self.dag_id = dag.dag_id
        self.cytoscape.on("node", "click", self._on_node_click)
        if load:
            self._initial_load(run_id)

    @_guarded("reading the store")
    def _initial_load(self, run_id: str | None) -> None:
        runs = self.refresh_runs()
        self.run_id = run_id if run_id is not None else (runs[0]["run_id"] if runs else None)

    # -- states -----------------------------------------------------------------------------------

    @property
    def states(self) -> dict[str, str]:
        """The task states the drawing shows (after the last batch), by task id."""
        with self._lock:
            return dict(self._states)

    def set_states(self, states: Mapping[str, Any]) -> None:
        """Show new task states; they reach the drawing with the next batch (or :meth:`flush`)."""
        self._batcher.push_many(states)

    def flush(self) -> None:
        """Apply the pending state changes now."""
        self._batcher.flush()

    def node_data(self, node_id: str) -> dict[str, Any]:
        """The data of a drawn node, as the browser has it."""
        return dict(self._elements[node_id].data)

    def _apply(self, batch: dict[str, str]) -> None:
        with self._lock:
            self._states.update(batch)
            touched: dict[str, None] = {}
            for task_id in batch:
                try:
                    node_id: str | None = self.model.node_of(task_id)
                except Exception:  # a task the drawing does not know (added since): nothing to draw
                    continue
                while node_id is not None and node_id not in touched:
                    touched[node_id] = None
                    node_id = self.model.node(node_id)["parent"]
            counts = None
            for node_id in touched:
                node = self.model.node(node_id)
                look = self.model.node_style(node, self._states)
                element = self._elements[node_id]
                data = dict(element.data)
                data["state"] = look["state"]
                data["label"] = look["label"]
                if node["is_aggregate"] or node["is_group"]:
                    counts = counts if counts is not None else self.model.state_counts(self._states)
                    data["counts"] = counts[node_id]
                if data != element.data:
                    element.data = data  # one message for this element, none if unchanged
        if self.selected_task is not None and self.selected_task in batch:
            self.refresh_details()

    # -- runs -------------------------------------------------------------------------------------

    @contextmanager
    def _store(self) -> Iterator[Store]:
        from nbflow.store import Store

        store = Store.open()
        try:
            yield store
        finally:
            store.close()

    def list_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """The DAG's runs in the store, newest logical date first."""
        with self._store() as store:
            return store.list_runs(self.dag.dag_id, limit=limit)

    def refresh_runs(self) -> list[dict[str, Any]]:
        """Reload the run picker's list; returns the runs."""
        runs = self.list_runs()
        self.toolbar.set_runs(runs, self.run_id)
        return runs

    def show_run(self, run_id: str | None) -> None:
        """Show the task states of run ``run_id`` (None: no run, every task without status)."""
        if run_id == self.run_id:
            self._load_run(run_id)
        else:
            self.run_id = run_id

    @observe("run_id")
    def _run_id_changed(self, change: dict[str, Any]) -> None:
        self.toolbar.select_run(change["new"])
        self._load_run(change["new"])

    @_guarded("loading the run")
    def _load_run(self, run_id: str | None) -> None:
        from nbflow.jupyter.live import run_task_states

        found: dict[str, str] = {}
        if run_id is not None:
            with self._store() as store:
                found = run_task_states(store, self.dag.dag_id, run_id)
        self.set_states({task_id: found.get(task_id, NO_STATUS) for task_id in self.dag.task_dict})
        self.flush()
        self.refresh_details()

    # -- selection and details --------------------------------------------------------------------

    def select(self, task_id: str) -> None:
        """Select the node of ``task_id`` (a folded node if it is folded) and show its details."""
        node_id = self.model.node_of(task_id)
        for nid, element in self._elements.items():
            if element.selected != (nid == node_id):
                element.selected = nid == node_id
        self._set_selection(node_id, task_id)

    def _set_selection(self, node_id: str | None, task_id: str | None) -> None:
        self._selecting = True
        try:
            self.selected_node = node_id
            self.selected_task = task_id
        finally:
            self._selecting = False
        self.refresh_details()

    @_guarded("showing the node")
    def _on_node_click(self, event: Mapping[str, Any]) -> None:
        node_id = event["data"]["id"]
        node = self.model.node(node_id)
        plain = not (node["is_aggregate"] or node["is_group"] or node.get("is_compound")) and len(node["members"]) == 1
        self._set_selection(node_id, node["members"][0] if plain else None)

    @observe("selected_node", "selected_task")
    def _selection_changed(self, _change: dict[str, Any]) -> None:
        if not self._selecting:
            self.refresh_details()

    @_guarded("showing the details")
    def refresh_details(self) -> None:
        if self.selected_task is not None:
            kind = self.dag.task_dict[self.selected_task].kind if self.selected_task in self.dag.task_dict else ""
            with self._store() as store:
                self.details.show_task(store, self.dag.dag_id, self.run_id, self.selected_task, kind=kind)
        elif self.selected_node is not None:
            node = self.model.node(self.selected_node)
            counts = self.model.state_counts(self._states)[node["id"]]
            members = node["members"] or [t for t, n in ((t, self.model.node_of(t)) for t in self.dag.task_dict)
                                          if self._inside(n, node["id"])]
            self.details.show_html(render_node_summary(node["label"], counts, members, self._states))

    def _inside(self, node_id: str, box: str) -> bool:
        while node_id is not None:
            if node_id == box:
                return True
            node_id = self.model.node(node_id)["parent"]
        return False

    def report_failure(self, what: str, exc: BaseException) -> None:
        """Show a failure in the panel and the status line; used by every callback."""
        log.debug("%s failed", what, exc_info=exc)
        try:
            self.details.show_error(what, exc)
            self.status = f"{what} failed: {type(exc).__name__}: {exc}"
        except Exception:  # even the error line failed: the log has it
            log.exception("%s failed and could not be shown", what)

    # -- live -------------------------------------------------------------------------------------

    def follow(self, run_id: str | None = None, *, interval: float = 0.5, wait: float | None = 300.0) -> RunFollower:
        """Follow a run live until it ends: ``run_id``, or (without) the next run of this DAG that
        starts, e.g. ``dag.test()`` or ``%nbflow run`` in this kernel, a scheduler, another host."""
        from nbflow.jupyter.live import RunFollower

        self.stop()
        self.follower = RunFollower(self.dag.dag_id, run_id=run_id, interval=interval, wait=wait,
                                    on_run=self._followed_run, on_states=self.set_states, on_end=self._follow_ended)
        self.following = True
        self.status = f"following {run_id}" if run_id else "waiting for the next run…"
        self.follower.start()
        return self.follower

    def stop(self) -> None:
        """Stop following."""
        if self.follower is not None:
            self.follower.stop()
        self.following = False

    @_guarded("following the run")
    def _followed_run(self, run: Mapping[str, Any]) -> None:
        if run["run_id"] != self.run_id:
            self.refresh_runs()
            self.run_id = run["run_id"]
        self.status = f"following {run['run_id']}: {run['state']}"
        self.toolbar.update_run_label(run)

    @_guarded("following the run")
    def _follow_ended(self, run: Mapping[str, Any] | None) -> None:
        self.flush()
        self.following = False
        if run is not None:
            self.status = f"{run['run_id']}: {run['state']}"
            self.refresh_runs()
        elif self.follower is not None and self.follower.error:
            self.status = f"following stopped: {self.follower.error}"

    # -- controls ---------------------------------------------------------------------------------

    def run_now(self, *, executor: Any = None) -> threading.Thread:
        """Run the DAG now in a background thread of this kernel and follow it live."""
        from nbflow.runs import run_dag

        self.follow()

        def work() -> None:
            try:
                run_dag(self.dag, run_type="manual", executor=executor)
            except Exception as exc:
                self.report_failure("the run", exc)

        self._runner = threading.Thread(target=work, name=f"nbflow-run-{self.dag.dag_id}", daemon=True)
        self._runner.start()
        return self._runner

    def _target(self, task_id: str | None) -> tuple[str, str]:
        task_id = task_id or self.selected_task
        if task_id is None:
            raise ValueError("select a task first (click it in the graph)")
        if self.run_id is None:
            raise ValueError("no run is shown: pick one in the run list")
        return self.run_id, task_id

    def clear_task(self, task_id: str | None = None, *, downstream: bool = False) -> Changes:
        """Clear the task (default: the selected one) in the shown run, so that it runs again."""
        from nbflow.controls import clear

        run_id, task_id = self._target(task_id)
        with self._store() as store:
            changes = clear(self.dag, run_id=run_id, task_ids=[task_id], downstream=downstream, store=store)
        self._after_control(f"cleared {len(changes)} task(s)", changes)
        return changes

    def mark_task(self, state: str, task_id: str | None = None, *, downstream: bool = False) -> Changes:
        """Mark the task (default: the selected one) ``success`` or ``failed`` in the shown run."""
        from nbflow.controls import mark

        run_id, task_id = self._target(task_id)
        with self._store() as store:
            changes = mark(self.dag, run_id, [task_id], state, downstream=downstream, store=store)
        self._after_control(f"marked {len(changes)} task(s) {state}", changes)
        return changes

    def _after_control(self, what: str, changes: Changes) -> None:
        skipped = f"; {len(changes.skipped)} held by a running host were left alone" if changes.skipped else ""
        self.status = what + skipped
        self.refresh_runs()
        self._load_run(self.run_id)

    @property
    def paused(self) -> bool:
        with self._store() as store:
            row = store.get_dag(self.dag.dag_id)
        return bool(row and row["is_paused"])

    def set_paused(self, paused: bool) -> None:
        """Pause or unpause the DAG's schedule (a DAG the store does not know yet is recorded first)."""
        from nbflow.controls import pause, unpause
        from nbflow.runs import source_kind, sync_dag

        with self._store() as store:
            if store.get_dag(self.dag.dag_id) is None:
                sync_dag(store, self.dag, source_kind=source_kind(self.dag))
            (pause if paused else unpause)(self.dag.dag_id, store=store)
        self.status = "paused" if paused else "unpaused"

    def close(self) -> None:
        self.stop()
        self._batcher.close()
        super().close()
