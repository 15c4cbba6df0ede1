"""Where a drawn graph's edges bend, and how big its nodes are drawn, without any widget.

The notebook widget (``cyto.py``), the static SVG picture and the JupyterLab DAG view (through the
server's ``GET dags/{dag}/graph``) draw the same folded model; an edge whose straight line would pass
over a node it does not connect reads as a dependency that does not exist, so each of them bends it
round with the same points, computed here from the same node sizes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from nbflow.jupyter.graph import DEFAULT_SIZE, GraphModel, node_size
from nbflow.jupyter.layout import route_edges

#: a folded node's height: room for its label on two lines
FOLDED_HEIGHT = 46.0
#: an open group's box: its padding around its nodes, and its name above it (pixels at zoom 1)
BOX_PADDING, LABEL_HEIGHT, LABEL_CHAR_WIDTH = 12.0, 18.0, 7.5


def drawn_size(node: Mapping[str, Any]) -> tuple[float, float]:
    """(width, height) of a node as the view draws it."""
    width, height = node_size(node["kind"])
    if node["is_aggregate"] or (node["is_group"] and not node["is_compound"]):
        # many tasks in one node: full size whatever their kind, two lines for its name and states
        width, height = max(width, DEFAULT_SIZE[0]), max(height, FOLDED_HEIGHT)
    return width, height


def edge_bends(model: GraphModel) -> dict[str, dict[str, Any]]:
    """For each edge that would cross a node it does not connect, the ``data`` that bends it round
    (cytoscape's segments, as weights along the line between the node centres and distances from
    it), by edge id."""
    leaves = [n for n in model.nodes if not n.get("is_compound")]
    positions: dict[str, tuple[float, float]] = {n["id"]: tuple(n["position"]) for n in leaves}  # type: ignore[misc]
    sizes = {n["id"]: drawn_size(n) for n in leaves}
    # an open group's name, above its box, is in the way too: an edge crossing it would hide it
    inside: dict[str, list[str]] = {}
    for node in leaves:
        parent = node["parent"]
        while parent is not None:
            inside.setdefault(parent, []).append(node["id"])
            parent = model.node(parent)["parent"]
    for box, members in inside.items():
        xs = [positions[m][0] for m in members]
        top = min(positions[m][1] - sizes[m][1] / 2 for m in members) - BOX_PADDING
        label = model.node(box)["label"]
        positions[f"label:{box}"] = ((min(xs) + max(xs)) / 2, top - LABEL_HEIGHT / 2)
        # room for the counts the name gets while a run goes ("checks (1✓ 2▶)")
        sizes[f"label:{box}"] = ((len(label) + 12) * LABEL_CHAR_WIDTH, LABEL_HEIGHT)
    routes = route_edges(positions, sizes, [(e["source"], e["target"]) for e in model.edges])
    out: dict[str, dict[str, Any]] = {}
    for edge in model.edges:
        points = routes.get((edge["source"], edge["target"]))
        if not points:
            continue
        (sx, sy), (tx, ty) = positions[edge["source"]], positions[edge["target"]]
        dx, dy = tx - sx, ty - sy
        length2 = dx * dx + dy * dy
        length = math.sqrt(length2)
        weights, distances = [], []
        for px, py in points:
            weights.append((px - sx) * dx / length2 + (py - sy) * dy / length2)
            # cytoscape measures a distance along the normal (-dy, dx) of the source-to-target line
            distances.append(((px - sx) * -dy + (py - sy) * dx) / length)
        out[edge["id"]] = {"bends": len(points), "bend_weights": " ".join(f"{v:.4f}" for v in weights),
                           "bend_distances": " ".join(f"{v:.2f}" for v in distances)}
    return out
