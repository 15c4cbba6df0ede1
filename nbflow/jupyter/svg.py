"""A DAG's graph as one self-contained SVG string, for where no kernel is live.

A saved notebook shown by nbconvert or GitHub keeps outputs but runs no widget, so a DAG's picture
there must be plain markup: the same folded, laid-out :class:`~nbflow.jupyter.graph.GraphModel` the
live view uses, drawn with shapes per operator kind, state colours from the one style mapping, group
boxes and a legend. No scripts, no external fonts or files; every piece of text is escaped.
"""

from __future__ import annotations

import math
import re
from html import escape
from typing import Any, Mapping

from nbflow.jupyter.graph import LEGEND, GraphModel, kind_shape, node_size, style_for
from nbflow.jupyter.layout import route_edges

MARGIN = 20.0
FONT_SIZE = 12
CHAR_WIDTH = 6.6          # an average sans-serif glyph at FONT_SIZE, to fit labels in their shapes
BOX_PAD = 10.0
BOX_LABEL = 14.0          # room above a group box's members for its name
TITLE_HEIGHT = 28.0
LEGEND_ROW = 20.0
EDGE_COLOUR = "#666666"

# Characters XML 1.0 does not allow at all, even escaped.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _esc(text: Any) -> str:
    return escape(_INVALID_XML.sub("\ufffd", str(text)), quote=True)


def _fit(label: str, width: float) -> str:
    room = max(3, int((width - 10) / CHAR_WIDTH))
    return label if len(label) <= room else label[: room - 1] + "…"


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _shape(shape: str, cx: float, cy: float, w: float, h: float, paint: str) -> str:
    x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2

    def polygon(points: list[tuple[float, float]]) -> str:
        return f'<polygon points="{" ".join(f"{_num(x)},{_num(y)}" for x, y in points)}" {paint}/>'

    if shape == "ellipse":
        return f'<ellipse cx="{_num(cx)}" cy="{_num(cy)}" rx="{_num(w / 2)}" ry="{_num(h / 2)}" {paint}/>'
    if shape == "diamond":
        return polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)])
    if shape == "rhomboid":
        k = h / 3
        return polygon([(x0 + k, y0), (x1, y0), (x1 - k, y1), (x0, y1)])
    if shape == "octagon":
        k = min(w, h) * 0.3
        return polygon([(x0 + k, y0), (x1 - k, y0), (x1, y0 + k), (x1, y1 - k), (x1 - k, y1), (x0 + k, y1),
                        (x0, y1 - k), (x0, y0 + k)])
    radius = {"round-rectangle": "8", "barrel": f'{_num(w * 0.12)}" ry="{_num(h * 0.4)}'}.get(shape, "0")
    return f'<rect x="{_num(x0)}" y="{_num(y0)}" width="{_num(w)}" height="{_num(h)}" rx="{radius}" {paint}/>'


def render_svg(model: GraphModel, task_states: Mapping[str, Any] | None = None, *,
               title: str | None = None) -> str:
    """The model as an SVG document sized to its layout; nodes take their state colours from
    ``task_states`` (task id -> state), or the "no status" look without it."""
    states = task_states or {}
    leaves = [n for n in model.nodes if not n.get("is_compound")]
    compounds = {n["id"]: n for n in model.nodes if n.get("is_compound")}
    size = {n["id"]: node_size(n["kind"]) for n in leaves}

    # Group boxes, innermost first, each around its members and inner boxes.
    bounds: dict[str, list[float]] = {}
    for node in leaves:
        x, y = node["position"]
        w, h = size[node["id"]]
        bounds[node["id"]] = [x - w / 2, y - h / 2, x + w / 2, y + h / 2]

    def depth(nid: str) -> int:
        d, parent = 0, compounds[nid]["parent"]
        while parent in compounds:
            d, parent = d + 1, compounds[parent]["parent"]
        return d

    children: dict[str, list[str]] = {}
    for node in model.nodes:
        if node["parent"] in compounds:
            children.setdefault(node["parent"], []).append(node["id"])
    for nid in sorted(compounds, key=depth, reverse=True):
        inner = [bounds[c] for c in children.get(nid, ()) if c in bounds]
        if inner:
            bounds[nid] = [min(b[0] for b in inner) - BOX_PAD, min(b[1] for b in inner) - BOX_PAD - BOX_LABEL,
                           max(b[2] for b in inner) + BOX_PAD, max(b[3] for b in inner) + BOX_PAD]

    all_bounds = list(bounds.values()) or [[0.0, 0.0, 0.0, 0.0]]
    min_x, min_y = min(b[0] for b in all_bounds), min(b[1] for b in all_bounds)
    max_x, max_y = max(b[2] for b in all_bounds), max(b[3] for b in all_bounds)
    top = MARGIN + (TITLE_HEIGHT if title else 0.0)
    dx, dy = MARGIN - min_x, top - min_y
    width = max(max_x - min_x + 2 * MARGIN, 420.0)

    legend: list[str] = []
    lx, ly = MARGIN, max_y + dy + MARGIN
    for state, style in LEGEND:
        text = style["label"]
        item = 18 + len(text) * CHAR_WIDTH + 14
        if lx + item > width - MARGIN and lx > MARGIN:
            lx, ly = MARGIN, ly + LEGEND_ROW
        legend.append(
            f'<g class="legend-item" data-state="{_esc(state)}"><rect x="{_num(lx)}" y="{_num(ly)}" width="12" '
            f'height="12" fill="{_esc(style["background"])}" stroke="{_esc(style["border"])}"/>'
            f'<text x="{_num(lx + 17)}" y="{_num(ly + 10)}">{_esc(text)}</text></g>')
        lx += item
    height = ly + LEGEND_ROW + MARGIN - 6

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{math.ceil(width)}" height="{math.ceil(height)}" '
        f'viewBox="0 0 {math.ceil(width)} {math.ceil(height)}" font-family="sans-serif" font-size="{FONT_SIZE}">',
        '<defs><marker id="nbflow-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{EDGE_COLOUR}"/>'
        '</marker></defs>',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
    ]
    if title:
        out.append(f'<text class="title" x="{_num(MARGIN)}" y="{_num(MARGIN + 14)}" font-size="15" '
                   f'font-weight="bold">{_esc(title)}</text>')

    for nid in sorted((c for c in compounds if c in bounds), key=depth):
        x0, y0, x1, y1 = bounds[nid]
        label = compounds[nid]["label"]
        out.append(
            f'<g class="group" data-id="{_esc(nid)}"><rect x="{_num(x0 + dx)}" y="{_num(y0 + dy)}" '
            f'width="{_num(x1 - x0)}" height="{_num(y1 - y0)}" rx="6" fill="#f4f6fb" fill-opacity="0.6" '
            f'stroke="#8a94ad" stroke-dasharray="4 3"/><text x="{_num(x0 + dx + 6)}" y="{_num(y0 + dy + 14)}" '
            f'fill="#4a5470">{_esc(_fit(label, x1 - x0))}</text></g>')

    # an edge whose straight line would cross a node it does not connect bends round it, as on screen
    bends = route_edges({n["id"]: tuple(n["position"]) for n in leaves}, {n["id"]: size[n["id"]] for n in leaves},
                        [(e["source"], e["target"]) for e in model.edges])
    for edge in model.edges:
        if edge["source"] not in bounds or edge["target"] not in bounds:
            continue
        (sx, sy), (tx, ty) = model.node(edge["source"])["position"], model.node(edge["target"])["position"]
        sh, th = size[edge["source"]][1] / 2, size[edge["target"]][1] / 2
        if ty >= sy:
            y_from, y_to = sy + sh, ty - th
        else:
            y_from, y_to = sy - sh, ty + th
        count = int(edge.get("count", 1))
        stroke = 1.2 + min(3.0, math.log10(count)) if count > 1 else 1.2
        points = bends.get((edge["source"], edge["target"]))
        if points:
            path = [(sx, y_from), *points, (tx, y_to)]
            line = (f'<polyline points="{" ".join(f"{_num(x + dx)},{_num(y + dy)}" for x, y in path)}" fill="none" '
                    f'stroke="{EDGE_COLOUR}" stroke-width="{_num(stroke)}" marker-end="url(#nbflow-arrow)"/>')
        else:
            line = (f'<line x1="{_num(sx + dx)}" y1="{_num(y_from + dy)}" x2="{_num(tx + dx)}" y2="{_num(y_to + dy)}" '
                    f'stroke="{EDGE_COLOUR}" stroke-width="{_num(stroke)}" marker-end="url(#nbflow-arrow)"/>')
        words = edge.get("label")
        if words or count > 1:
            text = _esc(_fit(words, 160)) if words else f"×{count}"
            line += (f'<text x="{_num((sx + tx) / 2 + dx + 4)}" y="{_num((y_from + y_to) / 2 + dy)}" '
                     f'font-size="10" fill="{EDGE_COLOUR}">{text}</text>')
        out.append(f'<g class="edge" data-source="{_esc(edge["source"])}" data-target="{_esc(edge["target"])}">'
                   f'{line}</g>')

    for node in leaves:
        x, y = node["position"]
        x, y = x + dx, y + dy
        w, h = size[node["id"]]
        style = model.node_style(node, states) if task_states else dict(style_for(None), label=node["label"])
        paint = (f'fill="{_esc(style["background"])}" stroke="{_esc(style["border"])}" '
                 f'stroke-width="{2 if node["is_group"] or node["is_aggregate"] else 1.5}"'
                 + (' stroke-dasharray="6 3"' if node["is_group"] else ""))
        shape = kind_shape(node["kind"])
        parts = [f'<g class="node" data-id="{_esc(node["id"])}" data-state="{_esc(style.get("state", ""))}">',
                 f'<title>{_esc(style["label"])} ({len(node["members"])} task'
                 f'{"" if len(node["members"]) == 1 else "s"})</title>']
        if node["is_aggregate"]:
            parts.append(_shape(shape, x + 4, y + 4, w, h, paint))  # a stack: many tasks in one
        parts.append(_shape(shape, x, y, w, h, paint))
        parts.append(f'<text x="{_num(x)}" y="{_num(y + 4)}" text-anchor="middle" fill="{_esc(style["text"])}">'
                     f'{_esc(_fit(style["label"], w))}</text></g>')
        out.append("".join(parts))

    out.extend(legend)
    out.append("</svg>")
    return "\n".join(out)
