"""``DagGraph``: a DAG drawn in the notebook, coloured by the states of one run, updated live.

The drawing is an ipycytoscape widget (``graph.cytoscape``, free to restyle) fed by a folded,
laid-out :class:`~nbflow.jupyter.graph.GraphModel`, so a DAG of any size costs at most
``max_elements`` widgets (see :mod:`nbflow.jupyter.cyto` for the message budget). States reach it
only through :meth:`DagGraph.set_states`, which goes through a
:class:`~nbflow.jupyter.graph.StateBatcher`: a few batches a second, one message per node that
changed, whatever the number of task-state changes.

The view follows its DAG's newest run by default (``following``): runs driven in this kernel are
seen through :mod:`nbflow.observers` the moment each state changes, runs driven elsewhere through
the store (:mod:`nbflow.jupyter.live`). Picking a past run in the run picker stops following.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import ipywidgets as w
from traitlets import Bool, Unicode, observe

from nbflow.errors import InvalidRequestError
from nbflow.jupyter.cyto import Elements, legend_html
from nbflow.jupyter.details import DetailsPanel, render_dag_assets, render_node_summary
from nbflow.jupyter.graph import MAX_ELEMENTS, NO_STATUS, GraphModel, StateBatcher
from nbflow.jupyter.unfolding import Unfolding

if TYPE_CHECKING:
    from nbflow.engine.controls import Changes
    from nbflow.dag import DAG
    from nbflow.observers import StateNotice
    from nbflow.store import Store

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

#: seconds after a display at which the browser is asked to fit the graph again: the view's final
#: size is known only once the output area has settled, and ipycytoscape fits only once, at once
REFIT_AFTER = (0.3, 0.8, 1.5)
#: two clicks on one node within this many seconds are a double click (which expands it)
DOUBLE_CLICK = 0.45
ACTIVE_TASK_STATES = ("running", "queued", "scheduled", "up_for_retry", "up_for_reschedule")


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
    (``run_id``, ``selected_node``, ``selected_task``, ``following``, ``status``).
    """

    dag_id = Unicode("").tag(sync=True)
    run_id = Unicode(None, allow_none=True).tag(sync=True)
    selected_node = Unicode(None, allow_none=True).tag(sync=True)
    selected_task = Unicode(None, allow_none=True).tag(sync=True)
    following = Bool(True).tag(sync=True)
    status = Unicode("").tag(sync=True)

    def __init__(self, dag: DAG, *, run_id: str | None = None, max_elements: int = MAX_ELEMENTS, rate: float = 4.0,
                 load: bool = True, live: bool = True, model: GraphModel | None = None, **kwargs: Any) -> None:
        from nbflow.jupyter.toolbar import GraphToolbar

        self.dag = dag
        self.max_elements = max_elements
        #: what the user opened and closed (the same state the JupyterLab view replays on the server)
        self.unfolding = Unfolding(dag, max_elements=max_elements)
        self.model = model or self.unfolding.model()
        self._states: dict[str, str] = {}
        self._selecting = False
        self._lock = threading.RLock()
        self._run_pk: int | None = None
        # task states of run _noticed_run announced in this process (see _load_run)
        self._noticed_run: str | None = None
        self._noticed: dict[str, str] = {}
        self._last_click: tuple[str, float] = ("", 0.0)
        self.elements = Elements()
        self.elements.sync(self.model, self._states)
        self._batcher = StateBatcher(self._apply, rate=rate)
        self._runner: threading.Thread | None = None
        self.grid: Any = None
        self.details = DetailsPanel()
        self.details.layout.height = f"{self.elements.height}px"
        self.legend = w.HTML(legend_html())
        self.toolbar = GraphToolbar(self)
        kwargs.setdefault("layout", w.Layout(width="100%"))
        # the legend right under the graph; a report or notebook opened from the details panel under
        # it, across the whole width
        super().__init__(children=[self.toolbar, w.HBox([self.cytoscape, self.details]), self.legend,
                                   self.details.report], **kwargs)
        self.dag_id = dag.dag_id
        self.cytoscape.on("node", "click", self._on_node_click)
        if load:
            self._initial_load(run_id)
            self._show_assets()
        self._live = live
        if live:
            from nbflow.jupyter.live import hub

            hub().add(self)

    @property
    def cytoscape(self) -> Any:
        """The ipycytoscape ``CytoscapeWidget`` that draws the graph."""
        return self.elements.view

    @_guarded("reading the DAG's assets")
    def _show_assets(self) -> None:
        """Under "click a task": the assets the DAG updates and runs on, with the DAGs they connect."""
        definition = self.dag.describe()
        if not definition.get("asset_schedule") and not any(t.get("outlets") for t in definition.get("tasks", [])):
            return
        from nbflow.store import queries

        with self._store() as store:
            assets = queries.dag_assets(store, self.dag.dag_id, definition)
        self.details.body.value += render_dag_assets(assets)

    @_guarded("reading the store")
    def _initial_load(self, run_id: str | None) -> None:
        runs = self.refresh_runs()
        if run_id is None and runs:
            run_id = max(runs, key=lambda row: row["id"])["run_id"]
            self.following = True
        elif run_id is not None:
            self.following = False
        self.run_id = run_id

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self.refit_soon()
        return super()._repr_mimebundle_(**kwargs)

    def refit_soon(self, delays: Iterable[float] = REFIT_AFTER) -> None:
        """Fit the graph to its view a few times over the next seconds (after it is displayed)."""
        def refit() -> None:
            for delay in delays:
                time.sleep(delay)
                try:
                    self.elements.fit()
                except Exception:  # closed meanwhile
                    return

        threading.Thread(target=refit, name="nbflow-graph-fit", daemon=True).start()

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
        return dict(self.elements.nodes[node_id].data)

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
            self.elements.update(self.model, touched, self._states)
        if self.selected_task is not None and self.selected_task in batch:
            self.refresh_details()
        elif self.selected_task is None and self.selected_node in touched:
            self.refresh_details()  # a folded node's or a group's counts follow its tasks' states

    # -- the view: groups, folded nodes, focus ---------------------------------------------------

    @property
    def focused(self) -> str | None:
        """The task the view is focused on (None: the whole DAG)."""
        return self.unfolding.focused

    def redraw(self, model: GraphModel | None = None) -> None:
        """Draw ``model`` (default: fold and lay out again with the current choices)."""
        self.flush()
        model = model or self.unfolding.model()
        with self._lock:
            self.model = model
            self.elements.sync(model, self._states)
        self.details.layout.height = f"{self.elements.height}px"
        node = self.selected_node
        if node is not None and node not in self.elements.nodes:
            node = model.node_of(self.selected_task) if self.selected_task else None
        self.elements.select(node)
        self.elements.fit()

    def expand(self, node_id: str | None = None) -> None:
        """Open a collapsed group or a folded node (default: the selected one) to show its inside;
        the rest of the drawing keeps its place."""
        node = self.model.node(self._node_or_selected(node_id))
        model = self.unfolding.open(self.model, node["id"])
        self.status = f"opened {node['label']}"
        self.redraw(model)

    def collapse(self, node_id: str | None = None) -> None:
        """Close the group holding a node (or the group box itself), or fold an opened node again."""
        node = self.model.node(self._node_or_selected(node_id))
        model = self.unfolding.close(self.model, node["id"])
        self.status = f"closed {node['label']}"
        self.redraw(model)

    def focus(self, task_id: str | None = None, hops: int = 2) -> None:
        """Show one task with its neighbourhood; everything else folds into a few nodes."""
        task_id = task_id or self.selected_task
        if task_id is None:
            raise InvalidRequestError("select a task first (click it in the graph)", self.dag.dag_id)
        self.unfolding.focused = task_id
        self.status = f"focus on {task_id}"
        self.redraw()

    def reset_view(self) -> None:
        """The whole DAG again, folded only as its size demands."""
        model = self.unfolding.reset()
        self.status = "whole DAG"
        self.redraw(model)

    def _node_or_selected(self, node_id: str | None) -> str:
        node_id = node_id or self.selected_node
        if node_id is None:
            raise InvalidRequestError("select a node first (click it in the graph)", self.dag.dag_id)
        return node_id

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

    def pick_run(self, run_id: str | None) -> None:
        """A run chosen by the user: show it and keep showing it (stop following new runs)."""
        self.following = False
        self.show_run(run_id)

    @observe("run_id")
    def _run_id_changed(self, change: dict[str, Any]) -> None:
        self.toolbar.select_run(change["new"])
        self._load_run(change["new"])

    @_guarded("loading the run")
    def _load_run(self, run_id: str | None) -> None:
        found: dict[str, str] = {}
        self._run_pk = None
        if run_id is not None:
            from nbflow.store import queries

            with self._store() as store:
                row = store.get_run(self.dag.dag_id, run_id)
                if row is not None:
                    self._run_pk = row["id"]
                    found = queries.task_states(store, row["id"], instances=True)
        states = {task_id: found.get(task_id, NO_STATUS) for task_id in self.dag.task_dict}
        states.update((key, state) for key, state in found.items() if key not in states)  # mapped instances
        with self._lock:
            for key in [k for k in self._states if k not in self.dag.task_dict and k not in found]:
                del self._states[key]  # another run's mapped instances
            if self._noticed_run != run_id:
                self._noticed_run, self._noticed = run_id, {}
            # A run driven in this process told us more than the store knows yet (its writes are
            # coalesced, and an inline task keeps them from being written at all): keep what it said.
            states.update(self._noticed)
            # Pushed under the lock, so a notice that arrives while the store was read cannot be
            # overtaken by these older states (live_notice pushes under the same lock).
            self.set_states(states)
        self.flush()
        self.refresh_details()

    def show_grid(self, shown: bool = True) -> Any:
        """Show (or hide) the runs grid below the graph: recent runs × tasks, clickable."""
        from nbflow.jupyter.runs_grid import RunsGrid

        if shown:
            if self.grid is None:
                self.grid = RunsGrid(self.dag, graph=self)
            else:
                self.grid.refresh()
            if self.grid not in self.children:
                self.children = (*self.children, self.grid)
        elif self.grid is not None:
            self.children = tuple(c for c in self.children if c is not self.grid)
        if self.toolbar.grid_toggle.value != shown:
            self.toolbar.grid_toggle.value = shown
        return self.grid

    # -- live (called by nbflow.jupyter.live on its thread, or by the run's thread) ---------------

    @_guarded("following the runs")
    def live_newest(self, run: Mapping[str, Any]) -> None:
        if self.following and run["run_id"] != self.run_id and (self._run_pk is None or run["id"] > self._run_pk):
            self.refresh_runs()
            self.run_id = run["run_id"]
            self.status = f"following {run['run_id']}: {run['state']}"
        if self.selected_task is not None and self._states.get(self.selected_task) in ACTIVE_TASK_STATES:
            self.refresh_details()  # the log tail follows a running task

    def live_notice(self, notice: StateNotice) -> None:
        if notice.task_id is not None:
            with self._lock:
                if notice.run_id != self.run_id:
                    return
                if self._noticed_run != notice.run_id:
                    self._noticed_run, self._noticed = notice.run_id, {}
                self._noticed[notice.task_id] = notice.state
                self.set_states({notice.task_id: notice.state})
            return
        if notice.state in ("success", "failed"):
            with self._lock:  # the run's last writes follow at once: from now on the store knows best
                if self._noticed_run == notice.run_id:
                    self._noticed = {}
        self._run_notice(notice)

    @_guarded("following the runs")
    def _run_notice(self, notice: StateNotice) -> None:
        if notice.run_id != self.run_id:
            if not self.following or notice.state != "running":
                return
            self.refresh_runs()
            self.run_id = notice.run_id
        self.status = f"{'following ' if self.following else ''}{notice.run_id}: {notice.state}"
        self.toolbar.update_run_label({"run_id": notice.run_id, "state": notice.state})
        if self.grid is not None and notice.state in ("success", "failed"):
            self.grid.refresh()

    def live_states(self, run_id: str, states: Mapping[str, str]) -> None:
        if run_id == self.run_id:
            self.set_states(states)

    def follow(self) -> None:
        """Show the newest run and every run that starts after it, live."""
        from nbflow.jupyter.live import hub

        self.following = True
        self.status = "following the newest run"
        if not self._live:
            hub().add(self)
            self._live = True
        hub().poke()

    def stop(self) -> None:
        """Keep showing the current run; do not switch to new ones."""
        self.following = False

    # -- selection and details --------------------------------------------------------------------

    def select(self, task_id: str) -> None:
        """Select the node of ``task_id`` (a folded node if it is folded) and show its details."""
        node_id = self.model.node_of(task_id)
        self.elements.select(node_id)
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
        before, at = self._last_click
        now = time.monotonic()
        self._last_click = (node_id, now)
        if before == node_id and now - at < DOUBLE_CLICK and (node["is_aggregate"] or
                                                              (node["is_group"] and not node["is_compound"])):
            self.expand(node_id)
            return
        plain = not (node["is_aggregate"] or node["is_group"] or node.get("is_compound")) and len(node["members"]) == 1
        self.elements.select(node_id)
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
        elif self.selected_node is not None and self.selected_node in self.elements.nodes:
            node = self.model.node(self.selected_node)
            counts = self.model.state_counts(self._states)[node["id"]]
            members = node["members"] or [t for t in self.dag.task_dict if self._inside(self.model.node_of(t), node["id"])]
            self.details.show_html(render_node_summary(node["label"], counts, members, self._states,
                                                       openable=bool(node["is_aggregate"] or node["is_group"])))

    def _inside(self, node_id: str | None, box: str) -> bool:
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

    # -- controls ---------------------------------------------------------------------------------

    def run_now(self, *, executor: Any = None) -> threading.Thread:
        """Run the DAG now in a background thread of this kernel; the graph follows it live."""
        from nbflow.engine.runs import run_dag

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
            raise InvalidRequestError("select a task first (click it in the graph)", self.dag.dag_id)
        if self.run_id is None:
            raise InvalidRequestError("no run is shown: pick one in the run list", self.dag.dag_id)
        return self.run_id, task_id

    def clear_task(self, task_id: str | None = None, *, downstream: bool = False) -> Changes:
        """Clear the task (default: the selected one) in the shown run, so that it runs again."""
        from nbflow.engine.controls import clear

        run_id, task_id = self._target(task_id)
        with self._store() as store:
            changes = clear(self.dag, run_id=run_id, task_ids=[task_id], downstream=downstream, store=store)
        self._after_control(f"cleared {len(changes)} task(s)", changes)
        return changes

    def mark_task(self, state: str, task_id: str | None = None, *, downstream: bool = False) -> Changes:
        """Mark the task (default: the selected one) ``success`` or ``failed`` in the shown run."""
        from nbflow.engine.controls import mark

        run_id, task_id = self._target(task_id)
        with self._store() as store:
            changes = mark(self.dag, run_id, [task_id], state, downstream=downstream, store=store)
        self._after_control(f"marked {len(changes)} task(s) {state}", changes)
        return changes

    def _after_control(self, what: str, changes: Changes) -> None:
        with self._lock:  # the store has just been changed by hand: it knows best
            self._noticed = {}
        skipped = f"; {len(changes.skipped)} held by a running host were left alone" if changes.skipped else ""
        self.status = what + skipped
        self.refresh_runs()
        self._load_run(self.run_id)

    @property
    def paused(self) -> bool:
        from nbflow.store import queries

        with self._store() as store:
            return queries.is_paused(store, self.dag.dag_id)

    def set_paused(self, paused: bool) -> None:
        """Pause or unpause the DAG's schedule (a DAG the store does not know yet is recorded first)."""
        from nbflow.engine.controls import pause, unpause
        from nbflow.engine.sync import source_kind, sync_dag

        with self._store() as store:
            if store.get_dag(self.dag.dag_id) is None:
                sync_dag(store, self.dag, source_kind=source_kind(self.dag))
            (pause if paused else unpause)(self.dag.dag_id, store=store)
        self.status = "paused" if paused else "unpaused"

    def close(self) -> None:
        from nbflow.jupyter.live import hub

        hub().remove(self)
        self._batcher.close()
        self.toolbar.close()
        self.details.close()
        if self.grid is not None:
            self.grid.close()
        self.elements.close()
        super().close()
