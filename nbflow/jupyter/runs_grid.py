"""``RunsGrid``: a DAG's recent runs × its tasks, one small coloured button per task instance.

Columns are runs (oldest on the left, as time reads), rows are the tasks, or for a big DAG the same
folded nodes the graph draws (a folded row takes the colour of its worst state). Clicking a cell shows
that run and selects that task in an attached :class:`~nbflow.jupyter.graph_widget.DagGraph`.

Every button is a widget of its own, so the buttons share one ``Layout`` and one ``ButtonStyle`` per
colour: a cell costs one widget, not three.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from nbflow.jupyter.graph import NO_STATUS, GraphModel, style_for
from nbflow.jupyter.toolbar import run_label

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.jupyter.graph_widget import DagGraph

CELL = "18px"
LABEL_WIDTH = "180px"


def grid_rows(dag: DAG, max_rows: int) -> tuple[GraphModel, list[dict[str, Any]]]:
    """The rows: the drawn (non-box) nodes of a model folded until there are at most ``max_rows``."""
    limit = max(4 * max_rows, 8)
    while True:
        model = GraphModel.from_dag(dag, max_elements=limit)
        rows = [node for node in model.nodes if not node.get("is_compound")]
        if len(rows) <= max_rows or limit <= 8:
            return model, rows
        limit //= 2


def cell_colour(model: GraphModel, node: Mapping[str, Any], states: Mapping[str, Any]) -> tuple[str, str]:
    """(background colour, state shown) of one cell, from ``style_for`` through the model."""
    if len(node["members"]) == 1:
        state = states.get(node["members"][0]) or NO_STATUS
        return style_for(state)["background"], str(state)
    look = model.node_style(node, states)
    return look["background"], look["state"]


class RunsGrid(w.VBox):
    """The last ``limit`` runs of ``dag`` × its tasks; ``attach`` (or ``graph=``) a DagGraph to drive."""

    def __init__(self, dag: DAG, limit: int = 25, *, graph: DagGraph | None = None, max_rows: int = 40,
                 **kwargs: Any) -> None:
        self.dag = dag
        self.limit = limit
        self.graph = graph
        self.model, self.rows = grid_rows(dag, max_rows)
        self.runs: list[dict[str, Any]] = []
        self.states: dict[str, dict[str, str]] = {}
        self.cells: dict[tuple[str, str], w.Button] = {}
        self._layout = w.Layout(width=CELL, height=CELL, padding="0", margin="1px")
        self._styles: dict[str, w.ButtonStyle] = {}
        self.message = w.HTML()
        self.grid = w.GridBox()
        super().__init__(children=[self.grid, self.message], **kwargs)
        self.refresh()

    def attach(self, graph: DagGraph) -> None:
        self.graph = graph

    def _style(self, colour: str) -> w.ButtonStyle:
        if colour not in self._styles:
            self._styles[colour] = w.ButtonStyle(button_color=colour)
        return self._styles[colour]

    def refresh(self) -> None:
        """Read the runs again and redraw."""
        from nbflow.store import Store, queries

        try:
            with Store.open() as store:
                found = queries.runs_grid(store, self.dag.dag_id, self.limit)
        except Exception as exc:
            self.message.value = f"<span style='color:#b30000'>reading the runs failed: {escape(str(exc))}</span>"
            return
        runs, states = found.runs, found.states
        self.runs, self.states = runs, states
        self.message.value = "" if runs else "<small>no runs yet</small>"
        self.cells = {}
        children: list[w.Widget] = [w.HTML("<small>task \\ run</small>", layout=w.Layout(width=LABEL_WIDTH))]
        for run in runs:
            head = w.Button(layout=self._layout, style=self._style(style_for(run["state"])["background"]),
                            tooltip=f"{run['run_id']}\n{run_label(run)}")
            head.on_click(self._on_click(run["run_id"], None))
            children.append(head)
        for node in self.rows:
            children.append(w.HTML(f"<small title='{escape(node['id'])}'>{escape(node['label'])}</small>",
                                   layout=w.Layout(width=LABEL_WIDTH, overflow="hidden")))
            for run in runs:
                colour, state = cell_colour(self.model, node, states[run["run_id"]])
                mapped = found.counts.get(run["run_id"], {}).get(node["members"][0]) if len(node["members"]) == 1 else None
                instances = (f" · {sum(mapped.values())} instances: "
                             + ", ".join(f"{n} {s}" for s, n in sorted(mapped.items()))) if mapped else ""
                cell = w.Button(layout=self._layout, style=self._style(colour),
                                tooltip=f"{node['label']} · {run_label(run)} · {state}{instances}")
                cell.on_click(self._on_click(run["run_id"], node["id"]))
                self.cells[(run["run_id"], node["id"])] = cell
                children.append(cell)
        self.grid.layout = w.Layout(grid_template_columns=f"{LABEL_WIDTH} repeat({max(len(runs), 1)}, {CELL})",
                                    grid_gap="0px", align_items="center")
        self.grid.children = children

    def cell(self, run_id: str, task_id: str) -> w.Button:
        """The button of ``task_id`` (or of the folded node holding it) in run ``run_id``."""
        return self.cells[(run_id, self.model.node_of(task_id))]

    def _on_click(self, run_id: str, node_id: str | None) -> Any:
        def click(_button: Any) -> None:
            try:
                self.select(run_id, node_id)
            except Exception as exc:
                self.message.value = f"<span style='color:#b30000'>selecting failed: {escape(str(exc))}</span>"

        return click

    def select(self, run_id: str, node_id: str | None) -> None:
        """Show run ``run_id`` in the attached graph and select the task (or folded node) there."""
        self.message.value = f"<small>{escape(run_id)}{' · ' + escape(node_id) if node_id else ''}</small>"
        if self.graph is None:
            return
        self.graph.pick_run(run_id)  # a run chosen by hand: the graph stays on it
        if node_id is not None:
            self.graph.select(self.model.node(node_id)["members"][0])
