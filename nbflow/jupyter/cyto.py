"""From a :class:`~nbflow.jupyter.graph.GraphModel` to ipycytoscape elements, at the least cost.

Cost model (measured with ipycytoscape 1.3, counting the comm messages a kernel sends):

* ipycytoscape makes every node and every edge its own widget, so drawing N elements costs at least
  N ``comm_open`` messages; nothing can batch those. ``Graph.add_graph_from_json`` costs about 3.5
  messages per element on top (each attribute is set after the element's comm is open, and the
  graph's adjacency dict is re-sent after every node). Here each element is created with its data,
  position and classes in its constructor (they go out with its ``comm_open``) and the lists are
  handed to the graph inside one ``hold_sync``: N + 3 messages for a whole build.
* Redrawing after the view changes (a group opened, a folded node expanded) empties the graph in
  one message, closes the old elements and builds the new ones as above (see :meth:`Elements.sync`
  for why nothing is kept).
* A state change is a change of one element's ``data``: one message per changed element, because
  ipycytoscape has no message that updates several. :class:`Elements` sends nothing for an element
  whose data did not change; the caller coalesces changes (see ``StateBatcher``).
* Layout is ``preset`` with positions computed in Python; the browser never runs dagre.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

import ipycytoscape
import ipywidgets as w

from nbflow.jupyter.bends import drawn_size, edge_bends
from nbflow.jupyter.graph import KIND_SHAPES, LEGEND, NO_STATUS, GraphModel, style_for

GRAPH_HEIGHT = "440px"
#: the view's height follows the drawing's shape within these bounds (pixels); its width is what
#: the output area gives, about this much beside the details panel
MIN_HEIGHT, MAX_HEIGHT, TYPICAL_WIDTH = 260, 720, 620
#: fitting a small DAG never blows its nodes up past this
MAX_ZOOM = 1.5
SELECTED = "nbflow-selected"
#: the class of the cytoscape view's element (see labextension/src/graphfit.ts)
GRAPH_CLASS = "nbflow-graph"


def cytoscape_style() -> list[dict[str, Any]]:
    """The stylesheet: shapes by ``data.kind``, colours by ``data.state`` (from ``style_for``),
    open group boxes as compound nodes, arrows on every edge."""
    base = style_for(NO_STATUS)
    sheet: list[dict[str, Any]] = [
        {"selector": "node", "style": {
            "label": "data(label)", "width": "data(width)", "height": "data(height)",
            "text-valign": "center", "text-halign": "center", "text-max-width": "140px",
            # a long label wraps at its spaces, never cut: "partition_00 ×100 (100✓)"
            "text-wrap": "wrap", "line-height": 1.1,
            "font-size": 13, "border-width": 2, "background-color": base["background"],
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
        {"selector": f"node.{SELECTED}", "style": {
            "overlay-color": "#1e6fd9", "overlay-opacity": 0.3, "overlay-padding": 6, "border-color": "#1e6fd9"}},
        {"selector": f"node.{SELECTED}[?is_compound]", "style": {
            "overlay-opacity": 0, "border-color": "#1e6fd9", "border-width": 3, "border-style": "solid"}},
        {"selector": "edge", "style": {
            "curve-style": "bezier", "width": 1.5, "line-color": "#9a9a9a", "target-arrow-color": "#9a9a9a",
            "target-arrow-shape": "triangle", "arrow-scale": 1.1}},
        # an edge that would cross other nodes bends around them (see layout.route_edges)
        {"selector": "edge[bends]", "style": {
            "curve-style": "segments", "edge-distances": "node-position", "segment-weights": "data(bend_weights)",
            "segment-distances": "data(bend_distances)"}},
        {"selector": "edge[count > 1]", "style": {"label": "data(count)", "font-size": 9, "width": 3,
                                                 "text-background-color": "#ffffff", "text-background-opacity": 1}},
        # after the count, so that a Label's words win on an edge that stands for several
        {"selector": "edge[label]", "style": {"label": "data(label)", "font-size": 10, "color": "#555555",
                                             "text-background-color": "#ffffff", "text-background-opacity": 1,
                                             "text-background-padding": "2px"}},
    ]
    return sheet


def node_data(model: GraphModel, node: Mapping[str, Any], look: Mapping[str, str],
              counts: Mapping[str, int] | None) -> dict[str, Any]:
    """The ``data`` of one drawn node: the model's fields, its size, and its current look."""
    data = {k: v for k, v in node.items() if k not in ("position", "members")}
    data["size"] = len(node["members"])
    if data["parent"] is None:
        del data["parent"]
    width, height = drawn_size(node)
    data.update(width=width, height=height, state=look["state"], label=look["label"])
    if counts is not None:
        data["counts"] = dict(counts)
    return data


def fitting_height(model: GraphModel) -> int:
    """A view height (pixels) that shows the drawing at a readable size: tall drawings get a taller
    view, flat ones a shorter one."""
    if not model.nodes:
        return MIN_HEIGHT
    xs = [n["position"][0] for n in model.nodes]
    ys = [n["position"][1] for n in model.nodes]
    width = max(xs) - min(xs) + 200.0
    height = max(ys) - min(ys) + 100.0
    zoom = min(MAX_ZOOM, TYPICAL_WIDTH / width)
    return int(max(MIN_HEIGHT, min(MAX_HEIGHT, height * zoom + 60)))


def legend_html() -> str:
    items = "".join(
        f"<span style='display:inline-block;margin:0 8px 2px 0'><span style='display:inline-block;width:11px;"
        f"height:11px;vertical-align:middle;background:{look['background']};border:1px solid {look['border']}'>"
        f"</span> {escape(look['label'])}</span>"
        for _, look in LEGEND
    )
    return f"<div class='nbflow-legend' style='font-size:11px'>{items}</div>"


class Elements:
    """The cytoscape widget of a graph view and its element widgets, kept in step with a model."""

    def __init__(self, layout: w.Layout | None = None) -> None:
        self.view = ipycytoscape.CytoscapeWidget(
            cytoscape_layout={"name": "preset", "fit": True, "padding": 24},
            cytoscape_style=cytoscape_style(), auto_unselectify=False, min_zoom=0.05, max_zoom=MAX_ZOOM,
            layout=layout or w.Layout(width="64%", height=GRAPH_HEIGHT),
            # nbflow's JupyterLab extension fits a view with this class whenever the view gets a size
            _dom_classes=(GRAPH_CLASS,),
        )
        self.nodes: dict[str, ipycytoscape.Node] = {}
        self.edges: dict[str, ipycytoscape.Edge] = {}
        self.height = int(GRAPH_HEIGHT.removesuffix("px"))
        self._nudge = False

    def sync(self, model: GraphModel, states: Mapping[str, Any]) -> None:
        """Draw ``model`` with the looks of ``states``, replacing whatever was drawn.

        The browser side of ipycytoscape cannot take a changed list of elements in one step: it
        re-adds the elements after the first difference before it has removed the old ones, and
        loses the ones whose ids are drawn both times. So a redraw first empties the graph (one
        message, handled completely before the next one), then adds fresh elements."""
        graph = self.view.graph
        old = [*self.nodes.values(), *self.edges.values()]
        if old:
            with graph.hold_sync():
                graph.nodes = []
                graph.edges = []
                graph._adj = {}
            for element in old:
                element.close()
        counts = model.state_counts(states)
        nodes: dict[str, ipycytoscape.Node] = {}
        for node in model.nodes:
            look = model.node_style(node, states)
            folded = node["is_aggregate"] or node["is_group"]
            x, y = node["position"]
            nodes[node["id"]] = ipycytoscape.Node(
                data=node_data(model, node, look, counts[node["id"]] if folded else None),
                position={"x": x, "y": y}, grabbable=True)
        bends = edge_bends(model)
        edges = {edge["id"]: ipycytoscape.Edge(data={**edge, **bends.get(edge["id"], {})}, classes="directed")
                 for edge in model.edges}
        # ipycytoscape's own bookkeeping of which edges exist (the browser does not read it)
        adjacency: dict[str, dict[str, int]] = {nid: {} for nid in nodes}
        for edge in model.edges:
            adjacency[edge["source"]][edge["target"]] = 1
        self.height = fitting_height(model)
        with graph.hold_sync():
            graph.nodes = list(nodes.values())
            graph.edges = list(edges.values())
            graph._adj = adjacency
        self.nodes, self.edges = nodes, edges
        self.view.layout.height = f"{self.height}px"

    def update(self, model: GraphModel, node_ids: Iterable[str], states: Mapping[str, Any]) -> int:
        """Give the nodes ``node_ids`` the looks of ``states``; returns how many elements changed."""
        counts = None
        sent = 0
        for node_id in node_ids:
            element = self.nodes.get(node_id)
            if element is None:
                continue
            node = model.node(node_id)
            look = model.node_style(node, states)
            data = dict(element.data)
            data["state"] = look["state"]
            data["label"] = look["label"]
            if node["is_aggregate"] or node["is_group"]:
                counts = counts if counts is not None else model.state_counts(states)
                data["counts"] = counts[node_id]
            if data != element.data:
                element.data = data  # one message for this element
                sent += 1
        return sent

    def select(self, node_id: str | None) -> None:
        """Mark one node as selected (ipycytoscape's own ``selected`` does not reach the view)."""
        for nid, element in self.nodes.items():
            classes = SELECTED if nid == node_id else ""
            if element.classes != classes:
                element.classes = classes

    def fit(self) -> None:
        """Fit the graph to the view as the browser lays it out now.

        ipycytoscape measures its container once, when it first draws, often before the output
        area has its final width, and fits the graph to that. A change of the widget's height is
        the one thing that makes it measure again and fit (``resize`` then ``fit`` in the
        browser), so the height moves by a pixel each time."""
        self._nudge = not self._nudge
        self.view.layout.height = f"{self.height + (1 if self._nudge else 0)}px"

    def close(self) -> None:
        for element in [*self.nodes.values(), *self.edges.values()]:
            element.close()
        self.nodes, self.edges = {}, {}
        self.view.graph.close()
        self.view.close()
