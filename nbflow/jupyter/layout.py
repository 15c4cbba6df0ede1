"""A top-to-bottom layered layout, computed in Python so that no browser ever lays a DAG out.

Client-side layouts are slow on big graphs (dagre takes seconds at a few thousand nodes); this one
is linear in nodes and edges apart from a sort per layer and sweep, and its positions go to the
browser with the elements (cytoscape's ``preset`` layout).
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, Mapping

X_SPACING = 180.0
Y_SPACING = 100.0
#: extra room above a wrapped sub-row where another group's box starts (its name sits above it)
LABEL_ROOM = 35.0


def _adjacency(names: list[str], edges: Iterable[tuple[str, str]]) -> tuple[list[list[int]], list[list[int]]]:
    index = {name: i for i, name in enumerate(names)}
    parents: list[list[int]] = [[] for _ in names]
    children: list[list[int]] = [[] for _ in names]
    for source, target in edges:
        s, t = index.get(source), index.get(target)
        if s is None or t is None or s == t:
            continue
        children[s].append(t)
        parents[t].append(s)
    return parents, children


def _layers(parents: list[list[int]], children: list[list[int]]) -> list[int]:
    """Longest path from a root, per node; a cycle is broken at the first node still waiting."""
    n = len(parents)
    layer = [0] * n
    waiting = [len(p) for p in parents]
    done = [False] * n
    ready = deque(i for i in range(n) if waiting[i] == 0)
    placed = 0
    forced = 0
    while placed < n:
        if not ready:
            while done[forced]:
                forced += 1
            ready.append(forced)
        i = ready.popleft()
        if done[i]:
            continue
        done[i] = True
        placed += 1
        for c in children[i]:
            if not done[c]:
                if layer[c] <= layer[i]:
                    layer[c] = layer[i] + 1
                waiting[c] -= 1
                if waiting[c] == 0:
                    ready.append(c)
    return layer


def longest_path_layers(nodes: list[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """The layer of each node: its longest path from a root (edges to unknown nodes ignored)."""
    names = list(dict.fromkeys(nodes))
    return dict(zip(names, _layers(*_adjacency(names, edges))))


def layered_layout(
    nodes: list[str],
    edges: Iterable[tuple[str, str]],
    *,
    x_spacing: float = X_SPACING,
    y_spacing: float = Y_SPACING,
    clusters: Mapping[str, str] | None = None,
    max_row: int = 5,
) -> dict[str, tuple[float, float]]:
    """Top-to-bottom positions: the layer of a node is its longest path from a root, and within a
    layer nodes are ordered by the mean position of their neighbours (down, up, down) so that few
    edges cross. Nodes sharing a ``clusters`` value are kept next to each other in each layer, so
    that a group's box does not swallow unrelated nodes. A layer of more than ``max_row`` nodes
    wraps onto several rows.

    Linear in nodes and edges apart from one sort per layer and sweep. A cycle (folding can make
    one: a collapsed group both upstream and downstream of a task) is broken at the first node in
    ``nodes`` order that is still waiting; edges to unknown nodes are ignored.
    """
    names = list(dict.fromkeys(nodes))
    n = len(names)
    parents, children = _adjacency(names, edges)
    layer = _layers(parents, children)

    layers: list[list[int]] = [[] for _ in range(max(layer, default=-1) + 1)]
    for i in range(n):
        layers[layer[i]].append(i)
    pos = [0.0] * n

    def place(row: list[int]) -> None:
        middle = (len(row) - 1) / 2
        for k, i in enumerate(row):
            pos[i] = k - middle

    for row in layers:
        place(row)
    cluster_of = [clusters.get(name) if clusters else None for name in names]

    def sweep(rows: Iterable[list[int]], neighbours: list[list[int]]) -> None:
        for row in rows:
            key = {}
            for i in row:
                near = neighbours[i]
                key[i] = sum(pos[j] for j in near) / len(near) if near else pos[i]
            cluster_key: dict[str, list[float]] = {}
            for i in row:
                if cluster_of[i] is not None:
                    cluster_key.setdefault(cluster_of[i], []).append(key[i])
            mean = {c: sum(v) / len(v) for c, v in cluster_key.items()}
            row.sort(key=lambda i: (mean[cluster_of[i]] if cluster_of[i] is not None else key[i],
                                    cluster_of[i] or "", key[i], pos[i]))
            place(row)

    sweep(layers[1:], parents)
    sweep(reversed(layers[:-1]), children)
    sweep(layers[1:], parents)
    # A layer wider than max_row wraps onto sub-rows, closer together than layers are, so that a
    # wide stage does not shrink the whole drawing to fit the view's width.
    out: dict[str, tuple[float, float]] = {}
    y = 0.0
    sub = y_spacing * 0.55
    for row in layers:
        # each group's share of the layer wraps on rows of its own, so that its box holds only it
        runs: list[list[int]] = []
        for i in row:
            if runs and cluster_of[runs[-1][-1]] == cluster_of[i]:
                runs[-1].append(i)
            else:
                runs.append([i])
        chunks = [run[k:k + max_row] for run in runs for k in range(0, len(run), max_row)] if len(row) > max_row else [row]
        for index, chunk in enumerate(chunks):
            if index and cluster_of[chunk[0]] != cluster_of[chunks[index - 1][0]]:
                # a group's box (and its name above it) starts on this sub-row: room for it, so that
                # the name is not drawn under the nodes of the sub-row above nor the boxes overlap
                y += LABEL_ROOM
            middle = (len(chunk) - 1) / 2
            for k, i in enumerate(chunk):
                out[names[i]] = ((k - middle) * x_spacing, y)
            y += sub
        y += y_spacing - sub
    if clusters:
        clear_boxes(out, {name: clusters.get(name) for name in names})
    return out


#: the widest node a view draws, the padding of a group's box around its nodes, and the room kept
#: free between a box and a node outside it (layout units, as the views draw them)
NODE_WIDTH = 150.0
BOX_PADDING = 12.0
BOX_GAP = 10.0


def clear_boxes(positions: dict[str, tuple[float, float]], cluster_of: Mapping[str, str | None], *,
                node_width: float = NODE_WIDTH, padding: float = BOX_PADDING, gap: float = BOX_GAP,
                rounds: int = 60) -> int:
    """Move nodes sideways, in place, until none lies inside the box of a group it is not in.

    A group's box spans its nodes in every row it has some; a node of another row sitting in that
    span would read as one of its tasks. Such a node moves out on the nearer side (on the far side
    of the group's own nodes in its row, if it has some), taking the rest of its row on that side
    along so that the row keeps its order and spacing. Returns how many moves were made."""
    half = node_width / 2
    moves = 0
    for _ in range(rounds):
        boxes: dict[str, list[float]] = {}
        for name, (x, y) in positions.items():
            group = cluster_of.get(name)
            if group is None:
                continue
            box = boxes.setdefault(group, [x, x, y, y])
            box[0], box[1], box[2], box[3] = min(box[0], x), max(box[1], x), min(box[2], y), max(box[3], y)
        moved = False
        for group, (x0, x1, y0, y1) in sorted(boxes.items()):
            left, right = x0 - half - padding, x1 + half + padding
            for name, (x, y) in sorted(positions.items()):
                if cluster_of.get(name) == group or not y0 <= y <= y1:
                    continue
                if x + half + gap <= left or x - half - gap >= right:
                    continue
                row = {n: p[0] for n, p in positions.items() if p[1] == y}
                own = [p for n, p in row.items() if cluster_of.get(n) == group]
                middle = sum(own) / len(own) if own else (left + right) / 2
                if x < middle:
                    shift = left - (x + half + gap)
                    along = [n for n, px in row.items() if px <= x]
                else:
                    shift = right - (x - half - gap)
                    along = [n for n, px in row.items() if px >= x]
                for n in along:
                    positions[n] = (positions[n][0] + shift, y)
                moves += 1
                moved = True
                break
            if moved:
                break
        if not moved:
            break
    return moves


def _blocked(x: float, spans: list[tuple[float, float]]) -> bool:
    return any(a < x < b for a, b in spans)


def _nearest_free(x: float, spans: list[tuple[float, float]]) -> float:
    """The x nearest to ``x`` outside every span (spans are open intervals)."""
    if not _blocked(x, spans):
        return x
    candidates = [edge for span in spans for edge in span if not _blocked(edge, spans)]
    return min(candidates, key=lambda c: (abs(c - x), c))


def route_edges(positions: Mapping[str, tuple[float, float]], sizes: Mapping[str, tuple[float, float]],
                edges: Iterable[tuple[str, str]], *, margin: float = 10.0) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Bend points for the edges whose straight line would cross a node they do not connect.

    A straight edge from a task to one several rows down passes over the nodes between and reads
    as a dependency on them. Going down from its source, such an edge crosses each row of nodes in
    a free gap nearest to its straight course, vertically through the row's band, so it never
    touches a node; an edge that crosses nothing gets no bend points (it stays straight)."""
    rows: dict[float, list[tuple[float, float, float]]] = {}
    for name, (x, y) in positions.items():
        width, height = sizes[name]
        rows.setdefault(y, []).append((x - width / 2 - margin, x + width / 2 + margin, height))
    row_ys = sorted(rows)
    routes: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for source, target in edges:
        if source not in positions or target not in positions:
            continue
        (sx, sy), (tx, ty) = positions[source], positions[target]
        if ty <= sy:
            continue
        between = [y for y in row_ys if sy < y < ty]
        if not between:
            continue
        points: list[tuple[float, float]] = []
        cx, cy = sx, sy
        crossed = False
        for y in between:
            spans = [(a, b) for a, b, _ in rows[y]]
            band = max(h for _, _, h in rows[y]) / 2 + margin
            course = cx + (tx - cx) * (y - cy) / (ty - cy)
            # where the straight course enters and leaves the row's band: all of it must be free
            top = cx + (tx - cx) * (y - band - cy) / (ty - cy)
            bottom = cx + (tx - cx) * (y + band - cy) / (ty - cy)
            low, high = min(top, bottom), max(top, bottom)
            if not any(high > a and low < b for a, b in spans):
                continue
            free = _nearest_free(course, spans)
            points += [(free, y - band), (free, y + band)]
            cx, cy = free, y + band
            crossed = True
        if crossed:
            routes[(source, target)] = points
    return routes
