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
        for chunk in chunks:
            middle = (len(chunk) - 1) / 2
            for k, i in enumerate(chunk):
                out[names[i]] = ((k - middle) * x_spacing, y)
            y += sub
        y += y_spacing - sub
    return out
