"""The DAG graph view's model: which elements to draw and where. No widget here.

A browser graph widget degrades badly with size (every element is a message, elements are silently
lost past a few hundred, client-side layout takes seconds), so this module decides what a view draws
before anything is sent: :class:`GraphModel` folds a big DAG into at most ``max_elements`` nodes and
edges (task groups first, then look-alike siblings, chains, stages) and lays the result out in
Python (:mod:`nbflow.jupyter.layout`). Looks come from :mod:`nbflow.jupyter.styles`, and state
changes reach views through :class:`~nbflow.jupyter.batching.StateBatcher`; both are re-exported
here, where the views have always found them.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from nbflow.errors import InvalidRequestError, TaskNotFoundError
from nbflow.mapping import split_key
from nbflow.jupyter.batching import StateBatcher
from nbflow.jupyter.layout import X_SPACING, Y_SPACING, layered_layout, longest_path_layers
from nbflow.jupyter.styles import (
    _RANK,
    DEFAULT_SIZE,
    KIND_BADGES,
    KIND_SHAPES,
    KIND_SIZES,
    LEGEND,
    NO_STATUS,
    SEVERITY,
    STATE_STYLES,
    kind_shape,
    node_size,
    state_key,
    style_for,
)

if TYPE_CHECKING:
    from nbflow.dag import DAG

__all__ = [
    "DEFAULT_SIZE", "KIND_BADGES", "KIND_SHAPES", "KIND_SIZES", "LEGEND", "MAX_ELEMENTS", "MAX_ROW", "NO_STATUS",
    "OPENED_PARTS", "SEVERITY", "STATE_STYLES", "X_SPACING", "Y_SPACING", "GraphModel", "StateBatcher",
    "kind_shape", "layered_layout", "longest_path_layers", "node_size", "state_key", "style_for",
]

log = logging.getLogger(__name__)

#: How many nodes and edges a view draws at most, folding the rest. ipycytoscape itself starts to
#: lose elements at a few hundred; a graph stays readable in a notebook cell well below that.
MAX_ELEMENTS = 200

#: Nodes per row before a layer wraps, in a notebook cell's view.
MAX_ROW = 5

#: An opened node too big to show task by task shows at most this many parts: two rows of a
#: notebook cell's view, so that opening a node grows the drawing by a little, not by a page, and
#: every part's label reads whole; each part opens in turn.
OPENED_PARTS = 2 * MAX_ROW




# -- the model ------------------------------------------------------------------------------------


class _Definition:
    """What the model needs of a DAG, read from a ``DAG`` or from its stored ``describe()`` dict."""

    def __init__(self, source: DAG | Mapping[str, Any]) -> None:
        self.tasks: list[str] = []           # topological order
        self.kind: dict[str, str] = {}
        self.group: dict[str, str | None] = {}   # innermost group
        self.upstream: dict[str, list[str]] = {}
        self.group_parent: dict[str, str | None] = {}
        self.group_tasks: dict[str, list[str]] = {}
        self.labels: dict[tuple[str, str], str] = {}   # (upstream, downstream) -> Label text
        self.display: dict[str, str] = {}    # task_display_name, where it is not the id
        self.mapped: set[str] = set()        # tasks made with expand(): one node, its instances counted
        if isinstance(source, Mapping):
            self.dag_id = str(source.get("dag_id", ""))
            for info in source.get("tasks", []):
                tid = str(info["task_id"])
                self.tasks.append(tid)
                self.kind[tid] = str(info.get("kind") or "custom")
                self.group[tid] = info.get("group")
                self.upstream[tid] = list(info.get("upstream", []))
                if info.get("display_name"):
                    self.display[tid] = str(info["display_name"])
                if info.get("mapped"):
                    self.mapped.add(tid)
            groups = {gid: list(g.get("tasks", [])) for gid, g in (source.get("groups") or {}).items()}
            for gid, tids in groups.items():
                self.group_tasks[gid] = tids
                self.group_parent[gid] = self._infer_parent(gid, tids, groups)
            for edge in source.get("edge_labels") or []:
                self.labels[(str(edge["upstream"]), str(edge["downstream"]))] = str(edge["label"])
        else:
            self.dag_id = source.dag_id
            for tid in source.topological_order():
                task = source.task_dict[tid]
                self.tasks.append(tid)
                self.kind[tid] = task.kind
                self.group[tid] = task.group_id
                self.upstream[tid] = sorted(task.upstream_task_ids)
                self.display[tid] = getattr(task, "task_display_name", "")
                if getattr(task, "is_mapped", False):
                    self.mapped.add(tid)
            for gid, group in source.task_groups.items():
                self.group_tasks[gid] = list(group.task_ids)
                self.group_parent[gid] = group.parent.group_id if group.parent is not None else None
            for (up, down), info in getattr(source, "edge_info", {}).items():
                if "label" in info:
                    self.labels[(up, down)] = info["label"]
        self.order = {tid: i for i, tid in enumerate(self.tasks)}
        known = self.order
        self.edges = [(u, t) for t in self.tasks for u in self.upstream[t] if u in known]
        self.downstream: dict[str, list[str]] = {t: [] for t in self.tasks}
        for u, t in self.edges:
            self.downstream[u].append(t)
        # outermost first, so that the first collapsed one found is the one that shows
        self.chain: dict[str, list[str]] = {}
        for gid in self.group_tasks:
            path, g = [], gid
            while g is not None and g not in path:
                path.append(g)
                g = self.group_parent.get(g)
            self.chain[gid] = path[::-1]

    @staticmethod
    def _infer_parent(gid: str, tids: list[str], groups: dict[str, list[str]]) -> str | None:
        # A stored definition lists each group's tasks (nested ones included) but not its parent:
        # the parent is the smallest other group holding all of them, preferring the id prefix.
        mine = set(tids)
        holders = [g for g, other in groups.items() if g != gid and mine <= set(other)
                   and (len(other) > len(mine) or gid.startswith(g + "."))]
        if not holders:
            return None
        return min(holders, key=lambda g: (not gid.startswith(g + "."), len(groups[g]), -len(g)))


def _group_node(gid: str) -> str:
    return f"group:{gid}"


def _short(name: str, parent: str | None) -> str:
    return name[len(parent) + 1:] if parent and name.startswith(parent + ".") else name


_TRAILING = re.compile(r"[\d_.\-\s]+$")


def _fold_label(labels: list[str]) -> str:
    """``extract_0 .. extract_499`` -> ``extract``: their common start without a trailing counter."""
    first, last = min(labels), max(labels)
    k = 0
    while k < min(len(first), len(last)) and first[k] == last[k]:
        k += 1
    base = _TRAILING.sub("", first[:k])
    return base or labels[0]


def _range_label(first: str, last: str) -> str:
    """``load_000`` .. ``load_009`` -> ``load_000–009``: a part of an opened node named by its first
    and last task, their shared start written once, so that the label stays short enough to read."""
    k = 0
    while k < min(len(first), len(last)) and first[k] == last[k]:
        k += 1
    while k and first[k - 1].isdigit():  # never split a counter: 10–19, not 1 0–9
        k -= 1
    if k < 2:
        return f"{first} … {last}"
    return f"{first}–{last[k:]}"


class GraphModel:
    """The elements of one DAG's graph view, folded to fit and laid out.

    ``nodes`` are dicts with ``id``, ``label``, ``kind``, ``parent`` (the id of the open group box
    holding it, or ``None``), ``members`` (the task ids the node stands for: one for a plain task,
    none for an open group box), ``position`` (x, y), ``is_group``, ``is_aggregate`` and
    ``is_compound`` (an open group box drawn around its members). Open boxes come first, outer
    before inner. ``edges`` are dicts with ``id``, ``source``, ``target``, ``count`` (how many
    task-to-task edges the drawn edge stands for) and, when all of those carry the same ``Label``,
    ``label`` (its words).
    """

    def __init__(self, nodes: list[dict[str, Any]], edges: list[dict[str, Any]], node_of: dict[str, str],
                 *, dag_id: str = "", group_tasks: Mapping[str, list[str]] | None = None,
                 task_groups: Mapping[str, str | None] | None = None) -> None:
        self.nodes = nodes
        self.edges = edges
        self.dag_id = dag_id
        self._node_of = node_of
        self._by_id = {node["id"]: node for node in nodes}
        self._group_tasks = dict(group_tasks or {})
        self._task_groups = dict(task_groups or {})
        #: mapped tasks drawn as a node of their own: those nodes count their instances' states
        self._mapped = {node["members"][0] for node in nodes if node.get("is_mapped")}

    @property
    def element_count(self) -> int:
        return len(self.nodes) + len(self.edges)

    def node(self, node_id: str) -> dict[str, Any]:
        try:
            return self._by_id[node_id]
        except KeyError:
            raise InvalidRequestError(f"the graph draws no node {node_id!r}: pass the id of a drawn node "
                                      "(a task id, group:<group id> or a folded node's agg: id)", self.dag_id) from None

    def node_of(self, task_id: str) -> str:
        """The id of the visible node that stands for ``task_id`` (never an open group box); a
        mapped task's instance (``task[2]``) is drawn by its task's node."""
        try:
            return self._node_of[task_id]
        except KeyError:
            base, index = split_key(task_id)
            if index >= 0 and base in self._node_of:
                return self._node_of[base]
            raise TaskNotFoundError(self.dag_id, task_id) from None

    def tasks(self) -> list[str]:
        """Every task the model draws (in a node of its own or folded), in the DAG's order."""
        return list(self._node_of)

    def group_of(self, task_id: str) -> str | None:
        """The innermost task group of ``task_id`` (None outside any group)."""
        return self._task_groups.get(task_id)

    def group_tasks(self, group_id: str) -> list[str]:
        """The tasks of an open group box (nested ones included); empty for a closed group."""
        return list(self._group_tasks.get(group_id, []))

    def _tasks_of(self, node: Mapping[str, Any]) -> list[str]:
        if node.get("is_compound"):
            return self._group_tasks.get(node["id"].removeprefix("group:"), [])
        return list(node["members"])

    def state_counts(self, task_states: Mapping[str, Any]) -> dict[str, dict[str, int]]:
        """For each node, how many of its tasks are in each state (a missing task counts as
        ``no_status``); open group boxes count every task inside them, and a mapped task's node
        its instances (``task[0]``, ``task[1]``, ... among ``task_states``) once it has some."""
        instances = _instances_by_task(task_states) if self._mapped else {}
        return {node["id"]: self._tally(node, task_states, instances) for node in self.nodes}

    def _tally(self, node: Mapping[str, Any], task_states: Mapping[str, Any],
               instances: Mapping[str, list[Any]] | None = None) -> dict[str, int]:
        tally: dict[str, int] = {}
        for tid in self._tasks_of(node):
            if tid in self._mapped:
                found = (instances.get(tid) if instances is not None
                         else [v for k, v in task_states.items() if split_key(k)[0] == tid and k != tid])
                if found:
                    for state in found:
                        key = state_key(state)
                        tally[key] = tally.get(key, 0) + 1
                    continue
            key = state_key(task_states.get(tid))
            tally[key] = tally.get(key, 0) + 1
        return tally

    def node_style(self, node: str | Mapping[str, Any], task_states: Mapping[str, Any]) -> dict[str, str]:
        """The look of one node: a plain task takes its state's style; a folded node takes the
        colour of its worst state and a label with counts, ``extract ×500 (480✓ 20▶)``."""
        if isinstance(node, str):
            node = self._by_id[node]
        tally = self._tally(node, task_states)
        worst = min(tally, key=_RANK.__getitem__) if tally else NO_STATUS
        mapped = node.get("is_mapped") and task_states.get(node["members"][0]) is not None
        if mapped:  # a mapped task takes its own state; its instances show as counts
            worst = state_key(task_states.get(node["members"][0]))
        style = style_for(worst)
        style["state"] = worst
        label = node["label"]
        if mapped and sum(tally.values()) and set(tally) - {NO_STATUS}:
            label = label.removesuffix(" [ ]") + f" [{sum(tally.values())}]"
        if (node["is_aggregate"] or node["is_group"] or mapped) and set(tally) - {NO_STATUS}:
            label += " (" + " ".join(f"{tally[s]}{STATE_STYLES[s]['symbol']}" for s, _ in LEGEND if s in tally) + ")"
        style["label"] = label
        return style

    def keep_places(self, before: GraphModel, opened: str) -> bool:
        """Lay this model out as ``before`` was, with node ``opened`` of ``before`` opened in place:
        what it opened into goes right under the row it was in, every node above it or in its row
        keeps its place, and the rows below move down by the room it takes. So opening a node never
        reshuffles the drawing around it, the drawing grows by the opened node's box only, and what
        the user looked at stays where it was.

        Returns False, changing nothing, when more than that node changed between the two models
        (the rest of the DAG folded differently): then the fresh layout is the honest one."""
        old = {n["id"]: n for n in before.nodes if not n["is_compound"]}
        new = {n["id"]: n for n in self.nodes if not n["is_compound"]}
        if opened not in old or opened in new:
            return False
        kept = set(old) - {opened}
        grown = [nid for nid in new if nid not in old]
        if not grown or kept - set(new) or set(new) - kept - set(grown):
            return False
        xs = [new[n]["position"][0] for n in grown]
        ys = [new[n]["position"][1] for n in grown]
        ox, oy = old[opened]["position"]
        width, height = node_size("custom")
        pad = 40.0 if any(new[n]["parent"] for n in grown) else 0.0  # an open box's padding and label
        gap = Y_SPACING * 0.55  # as between the rows of a wrapped layer
        span_x, span_y = max(xs) - min(xs), max(ys) - min(ys)
        # centred under the opened node, but inside the drawing's width when it fits there
        left = min(n["position"][0] for n in old.values())
        right = max(n["position"][0] for n in old.values())
        half = span_x / 2
        cx = min(max(ox, left + half), right - half) if span_x <= right - left else (left + right) / 2
        dx = cx - (min(xs) + max(xs)) / 2
        dy = oy + gap + pad - min(ys)
        for nid in grown:
            x, y = new[nid]["position"]
            new[nid]["position"] = (x + dx, y + dy)
        grew = span_y + height + 2 * pad + gap
        row = Y_SPACING * 0.25
        for nid in kept:
            x, y = old[nid]["position"]
            new[nid]["position"] = (x, y + grew if y > oy + row else y)
        self._place_boxes()
        return True

    def _place_boxes(self) -> None:
        """Each open group box in the middle of the nodes it holds (cytoscape sizes it to them)."""
        spread: dict[str, list[tuple[float, float]]] = {}
        for node in self.nodes:
            if node["is_compound"]:
                continue
            parent = node["parent"]
            while parent is not None:
                spread.setdefault(parent, []).append(node["position"])
                parent = self._by_id[parent]["parent"] if parent in self._by_id else None
        for node in self.nodes:
            if node["is_compound"] and node["id"] in spread:
                xs, ys = zip(*spread[node["id"]])
                node["position"] = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)

    def to_elements(self) -> list[dict[str, Any]]:
        """Cytoscape.js element dicts with preset positions, to hand to a view in one call."""
        out: list[dict[str, Any]] = []
        for node in self.nodes:
            data = {k: v for k, v in node.items() if k not in ("position", "members")}
            data["size"] = len(node["members"])
            data["shape"] = kind_shape(node["kind"])
            if data["parent"] is None:
                del data["parent"]
            x, y = node["position"]
            out.append({"group": "nodes", "data": data, "position": {"x": x, "y": y}})
        out.extend({"group": "edges", "data": dict(edge)} for edge in self.edges)
        return out

    # -- building ---------------------------------------------------------------------------------

    @classmethod
    def from_dag(
        cls,
        dag: DAG | Mapping[str, Any],
        *,
        max_elements: int = MAX_ELEMENTS,
        collapsed: Iterable[str] = frozenset(),
        expanded: Iterable[str] = frozenset(),
        opened: Iterable[Iterable[str]] = (),
        focus: str | None = None,
        focus_hops: int = 2,
        max_row: int = MAX_ROW,
    ) -> GraphModel:
        """Fold ``dag`` (a ``DAG`` or its ``describe()`` dict) until its nodes and edges number at
        most ``max_elements``, then lay it out.

        Folding goes (1) task groups, outermost and largest first, each into one node; (2) sibling
        tasks (or collapsed groups) with the same upstream and downstream nodes into one ``name ×N``
        node, then straight chains of tasks into one node, repeated while that helps; (3) for DAGs
        without such regularity, tasks of one layer sharing a name stem, whole layers, then bands
        of layers. It stops as soon as the graph fits.

        ``collapsed`` names groups the user closed, ``expanded`` the groups and folded nodes the
        user opened (``group:<id>``, a bare group id, or a folded node's ``agg:`` id); ``expanded``
        wins. ``opened`` lists task sets the user opened directly (the members of a folded node).
        An opened set is never folded with anything else; if its tasks do not fit one by one they
        are shown in consecutive parts (``agg:<first>~<last>``), each of which opens in turn.
        ``focus`` shows a task with its upstream and downstream within ``focus_hops`` edges, each
        task inside its open group boxes, and folds everything else into "upstream", "downstream"
        and "other" nodes. A layer of more than ``max_row`` nodes wraps onto several rows (what a
        notebook cell's narrow view needs; a full-page view of a whole DAG wants a wider row).
        """
        d = _Definition(dag)
        expanded = set(expanded)
        folded_ids = {e for e in expanded if e.startswith("agg:")}
        sets = [[t for t in members if t in d.kind] for members in opened]
        if folded_ids:
            # An aggregate id names the tasks it held in the view it was clicked in: that view.
            before = cls.from_dag(dag, max_elements=max_elements, collapsed=collapsed,
                                  expanded=expanded - folded_ids, opened=sets, focus=focus, focus_hops=focus_hops,
                                  max_row=max_row)
            sets += [list(before.node(a)["members"]) for a in sorted(folded_ids) if a in before._by_id]
        sets = [sorted(set(s), key=d.order.__getitem__) for s in sets if s]
        protected = {t for s in sets for t in s}
        groups_opened = {e.removeprefix("group:") for e in expanded - folded_ids}
        closed = {c.removeprefix("group:") for c in collapsed} - groups_opened
        closed &= d.group_tasks.keys()
        if focus is not None:
            if focus not in d.kind:
                raise TaskNotFoundError(d.dag_id, focus, d.tasks)
            node_of, boxes = cls._focus(d, focus, focus_hops)
            keep = {focus}
        else:
            node_of, boxes = cls._collapse(d, closed, groups_opened, max_elements)
            keep = set()
        # Opened sets first take a share of the room, the rest folds to fit beside them, and then
        # the opened sets spread into whatever room is left.
        share = max(1, max_elements // (6 * len(sets))) if sets else 0
        for tasks in sets:
            cls._chunk(d, node_of, boxes, tasks, max_elements, most=share)
        cls._fold(d, node_of, boxes, groups_opened, keep | protected, max_elements)
        for tasks in sorted(sets, key=len, reverse=True):
            cls._chunk(d, node_of, boxes, tasks, max_elements, most=OPENED_PARTS)
        return cls._build(d, node_of, boxes, max_row)

    @classmethod
    def _chunk(cls, d: _Definition, node_of: dict[str, str], boxes: set[str], tasks: list[str], limit: int,
               most: int | None = None) -> None:
        """Show an opened set of tasks in as many consecutive parts as fit (one by one if they do),
        at most ``most`` parts."""
        for tid in tasks:  # start again from the tasks themselves
            node_of[tid] = tid

        def split(parts: int) -> dict[str, str]:
            size, extra = divmod(len(tasks), parts)
            renamed: dict[str, str] = {}
            at = 0
            for k in range(parts):
                part = tasks[at:at + size + (1 if k < extra else 0)]
                at += len(part)
                if len(part) > 1:
                    renamed.update(dict.fromkeys(part, f"agg:{part[0]}~{part[-1]}"))
            return {**node_of, **renamed}

        if most is not None and most >= OPENED_PARTS and cls._count(d, split(len(tasks)), boxes) <= limit:
            node_of.update(split(len(tasks)))  # the tasks fit one by one: no parts needed
            return
        top = min(len(tasks), most or len(tasks))
        if cls._count(d, split(top), boxes) <= limit:
            node_of.update(split(top))
            return
        lo, hi = 1, top
        while lo < hi:  # the most parts that still fit
            mid = (lo + hi + 1) // 2
            if cls._count(d, split(mid), boxes) <= limit:
                lo = mid
            else:
                hi = mid - 1
        node_of.update(split(lo))

    @staticmethod
    def _visible(d: _Definition, closed: set[str]) -> tuple[dict[str, str], set[str]]:
        node_of: dict[str, str] = {}
        for tid in d.tasks:
            g = d.group[tid]
            node_of[tid] = tid
            for gid in d.chain.get(g, ()) if g else ():
                if gid in closed:
                    node_of[tid] = _group_node(gid)
                    break
        boxes = {gid for gid, tids in d.group_tasks.items() if tids
                 and not any(g in closed for g in d.chain[gid])}
        return node_of, boxes

    @staticmethod
    def _count(d: _Definition, node_of: dict[str, str], boxes: set[str]) -> int:
        edges = {(a, b) for a, b in ((node_of[u], node_of[t]) for u, t in d.edges) if a != b}
        return len(set(node_of.values())) + len(boxes) + len(edges)

    @classmethod
    def _collapse(cls, d: _Definition, closed: set[str], opened: set[str],
                  limit: int) -> tuple[dict[str, str], set[str]]:
        closed = set(closed)
        node_of, boxes = cls._visible(d, closed)
        depth = 0
        while cls._count(d, node_of, boxes) > limit:
            level = [g for g in d.group_tasks if len(d.chain[g]) == depth + 1 and g in boxes and g not in opened]
            if not level and not any(len(d.chain[g]) > depth + 1 for g in boxes):
                break
            level.sort(key=lambda g: -len(d.group_tasks[g]))
            # Collapsing more never adds elements, so the fewest groups that fit is a binary search.
            lo, hi = 1, len(level)
            while lo < hi:
                mid = (lo + hi) // 2
                if cls._count(d, *cls._visible(d, closed | set(level[:mid]))) <= limit:
                    hi = mid
                else:
                    lo = mid + 1
            closed |= set(level[:hi])
            node_of, boxes = cls._visible(d, closed)
            depth += 1
        return node_of, boxes

    @staticmethod
    def _focus(d: _Definition, focus: str, hops: int) -> tuple[dict[str, str], set[str]]:
        def reach(links: dict[str, list[str]]) -> dict[str, int]:
            """Edges from ``focus`` to every task reachable along ``links``."""
            seen, frontier, dist = {focus: 0}, [focus], 0
            while frontier:
                dist += 1
                nxt = []
                for t in frontier:
                    for n in links[t]:
                        if n not in seen:
                            seen[n] = dist
                            nxt.append(n)
                frontier = nxt
            return seen

        up, down = reach(d.upstream), reach(d.downstream)
        node_of: dict[str, str] = {}
        for tid in d.tasks:
            if up.get(tid, hops + 1) <= hops or down.get(tid, hops + 1) <= hops:
                node_of[tid] = tid
            elif tid in up:
                node_of[tid] = "focus:upstream"
            elif tid in down:
                node_of[tid] = "focus:downstream"
            else:
                node_of[tid] = "focus:other"
        shown = {node_of[t] for t in d.tasks if node_of[t] == t}
        boxes = {g for t in shown if d.group[t] for g in d.chain.get(d.group[t], ())}
        return node_of, boxes

    @classmethod
    def _fold(cls, d: _Definition, node_of: dict[str, str], boxes: set[str], opened: set[str],
              keep: set[str], limit: int) -> None:
        """Fold until the graph fits, gentlest rules first: look-alike siblings, then straight chains,
        a few rounds (a folded chain can make its siblings alike); then, for DAGs with no such
        regularity, tasks of one layer sharing a name stem, whole layers, and at last bands of
        consecutive layers. Each step takes the fewest, biggest folds that fit, so structure is
        lost only as far as the limit demands."""
        for _ in range(3):
            before = len(set(node_of.values()))
            for finder in (cls._sibling_folds, cls._chain_folds):
                if not cls._fold_step(d, node_of, boxes, opened, keep, limit, finder):
                    return
            if len(set(node_of.values())) == before:
                break  # a round that folded nothing: another would not either
        for finder in (cls._stem_folds, cls._layer_folds):
            if not cls._fold_step(d, node_of, boxes, opened, keep, limit, finder):
                return
        bands = max(2, limit // 3)
        while bands >= 1:  # the most bands that fit; none if even one band per box does not
            trial = dict(node_of)
            cls._fold_step(d, trial, boxes, opened, keep, limit,
                           lambda d_, n_, u_, b_, k=bands: cls._band_folds(d_, n_, u_, b_, k))
            if cls._count(d, trial, boxes) <= limit:
                node_of.update(trial)
                return
            bands //= 2

    @classmethod
    def _fold_step(cls, d: _Definition, node_of: dict[str, str], boxes: set[str], opened: set[str],
                   keep: set[str], limit: int, finder: Callable[..., list[list[str]]]) -> bool:
        """Apply the fewest of ``finder``'s folds that make the graph fit (all of them if none do);
        False once the graph fits and folding is over."""
        if cls._count(d, node_of, boxes) <= limit:
            return False
        members: dict[str, list[str]] = {}
        for tid in d.tasks:
            members.setdefault(node_of[tid], []).append(tid)
        units = {u: m for u, m in members.items() if not u.startswith("focus:") and not keep.intersection(m)}
        folds = [f for f in finder(d, node_of, units, boxes)
                 if f"agg:{min((members[u][0] for u in f), key=d.order.__getitem__)}" not in opened]
        folds.sort(key=lambda f: -sum(len(members[u]) for u in f))
        # Folding more never adds elements, so the fewest folds that fit is a binary search.
        lo, hi = 1, len(folds)
        while lo < hi:
            mid = (lo + hi) // 2
            if cls._count(d, cls._merged(d, node_of, members, folds[:mid]), boxes) <= limit:
                hi = mid
            else:
                lo = mid + 1
        node_of.update(cls._merged(d, node_of, members, folds[:hi]))
        return cls._count(d, node_of, boxes) > limit

    @staticmethod
    def _box(d: _Definition, tids: list[str], boxes: set[str]) -> str | None:
        """The innermost open group box a unit is drawn in (a collapsed group sits in its parent's)."""
        group = d.group[tids[0]]
        while group is not None and group not in boxes:
            group = d.group_parent.get(group)
        return group

    @staticmethod
    def _merged(d: _Definition, node_of: dict[str, str], members: dict[str, list[str]],
                folds: list[list[str]]) -> dict[str, str]:
        """``node_of`` with each fold's units made one ``agg:<first task>`` node."""
        renamed: dict[str, str] = {}
        for fold in folds:
            first = min((members[u][0] for u in fold), key=d.order.__getitem__)
            renamed.update(dict.fromkeys(fold, f"agg:{first}"))
        return {tid: renamed.get(unit, unit) for tid, unit in node_of.items()}

    @staticmethod
    def _neighbours(d: _Definition, node_of: dict[str, str]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        preds: dict[str, set[str]] = {}
        succs: dict[str, set[str]] = {}
        for u, t in d.edges:
            a, b = node_of[u], node_of[t]
            if a != b:
                succs.setdefault(a, set()).add(b)
                preds.setdefault(b, set()).add(a)
        return preds, succs

    @classmethod
    def _sibling_folds(cls, d: _Definition, node_of: dict[str, str], units: dict[str, list[str]],
                       boxes: set[str]) -> list[list[str]]:
        """Units in the same group box with exactly the same upstream and downstream nodes."""
        preds, succs = cls._neighbours(d, node_of)
        classes: dict[tuple[Any, ...], list[str]] = {}
        for unit, tids in units.items():
            key = (cls._box(d, tids, boxes), frozenset(preds.get(unit, ())), frozenset(succs.get(unit, ())))
            classes.setdefault(key, []).append(unit)
        return [c for c in classes.values() if len(c) > 1]

    @classmethod
    def _chain_folds(cls, d: _Definition, node_of: dict[str, str], units: dict[str, list[str]],
                     boxes: set[str]) -> list[list[str]]:
        """Maximal paths in one group box where each step is the only way out of one node and the
        only way into the next: a pipeline drawn as one node loses no branching."""
        preds, succs = cls._neighbours(d, node_of)

        def link(unit: str) -> str | None:
            out = succs.get(unit, ())
            if len(out) != 1:
                return None
            (nxt,) = out
            if nxt in units and preds.get(nxt) == {unit} and cls._box(d, units[nxt], boxes) == cls._box(d, units[unit], boxes):
                return nxt
            return None

        nexts = {u: n for u in units if (n := link(u)) is not None}
        starts = set(units) - set(nexts.values())
        chains = []
        for unit in starts:
            chain = [unit]
            while chain[-1] in nexts and len(chain) <= len(units):
                chain.append(nexts[chain[-1]])
            # A long chain keeps its ends in sight (where the pipeline starts and ends); folding the
            # ends of a short one too is what makes it worth folding at all.
            if len(chain) >= 4:
                chains.append(chain[1:-1])
            elif len(chain) > 1:
                chains.append(chain)
        return chains

    @classmethod
    def _unit_layers(cls, d: _Definition, node_of: dict[str, str], units: dict[str, list[str]]) -> dict[str, int]:
        """Each unit's layer in the folded graph: its longest path from a root."""
        _, succs = cls._neighbours(d, node_of)
        names = list(dict.fromkeys(node_of[t] for t in d.tasks))
        layers = longest_path_layers(names, [(a, b) for a, outs in succs.items() for b in outs])
        return {unit: layers[unit] for unit in units}

    @classmethod
    def _stem_folds(cls, d: _Definition, node_of: dict[str, str], units: dict[str, list[str]],
                    boxes: set[str]) -> list[list[str]]:
        """Units of one layer and one box whose names differ only by a trailing counter
        (``load_3``, ``load_17``): most likely one kind of work, repeated."""
        layers = cls._unit_layers(d, node_of, units)
        classes: dict[tuple[Any, ...], list[str]] = {}
        for unit, tids in units.items():
            name = unit.removeprefix("group:") if unit.startswith("group:") else tids[0]
            stem = _TRAILING.sub("", name.rsplit(".", 1)[-1])
            if stem:
                classes.setdefault((cls._box(d, tids, boxes), layers[unit], stem), []).append(unit)
        return [c for c in classes.values() if len(c) > 1]

    @classmethod
    def _layer_folds(cls, d: _Definition, node_of: dict[str, str], units: dict[str, list[str]],
                     boxes: set[str]) -> list[list[str]]:
        """All units of one layer in one box: the DAG drawn as its stages."""
        layers = cls._unit_layers(d, node_of, units)
        classes: dict[tuple[Any, ...], list[str]] = {}
        for unit, tids in units.items():
            classes.setdefault((cls._box(d, tids, boxes), layers[unit]), []).append(unit)
        return [c for c in classes.values() if len(c) > 1]

    @classmethod
    def _band_folds(cls, d: _Definition, node_of: dict[str, str], units: dict[str, list[str]],
                    boxes: set[str], bands: int) -> list[list[str]]:
        """Consecutive layers in ``bands`` bands: for DAGs too deep even when drawn by layer."""
        layers = cls._unit_layers(d, node_of, units)
        depth = max(layers.values(), default=0) + 1
        size = -(-depth // max(1, bands))
        classes: dict[tuple[Any, ...], list[str]] = {}
        for unit, tids in units.items():
            classes.setdefault((cls._box(d, tids, boxes), layers[unit] // size), []).append(unit)
        return [c for c in classes.values() if len(c) > 1]

    @classmethod
    def _build(cls, d: _Definition, node_of: dict[str, str], boxes: set[str], max_row: int = 5) -> GraphModel:
        members: dict[str, list[str]] = {}
        for tid in d.tasks:
            members.setdefault(node_of[tid], []).append(tid)
        innermost_box = {}
        for gid in d.group_tasks:
            chain = [g for g in d.chain[gid] if g in boxes]
            innermost_box[gid] = chain[-1] if chain else None

        def box_of(group: str | None) -> str | None:
            return innermost_box.get(group) if group else None

        leaves: list[dict[str, Any]] = []
        for nid, tids in members.items():
            first = tids[0]
            if nid.startswith(("agg:", "focus:")):
                folded = nid.startswith("agg:")
                parent = box_of(d.group[first]) if folded else None
                kinds = {d.kind[t] for t in tids}
                if folded and "~" in nid:
                    label = f"{_range_label(_short(tids[0], parent), _short(tids[-1], parent))} ×{len(tids)}"
                elif folded:
                    label = f"{_fold_label([_short(t, parent) for t in tids])} ×{len(tids)}"
                else:
                    label = f"+{len(tids)} {nid.removeprefix('focus:')}"
                kind = kinds.pop() if len(kinds) == 1 else "mixed"
                leaves.append(_node(nid, label, kind, parent, tids, is_aggregate=True))
            elif nid.startswith("group:"):
                gid = nid.removeprefix("group:")
                parent = box_of(d.group_parent.get(gid))
                label = f"{_short(gid, d.group_parent.get(gid))} ×{len(tids)}"
                leaves.append(_node(nid, label, "group", parent, tids, is_group=True))
            else:
                parent = box_of(d.group[first])
                label = d.display.get(first) or _short(first, d.group[first])
                if first in d.mapped:  # as Airflow marks a mapped task: "name [ ]", counted once it runs
                    label += " [ ]"
                leaves.append(_node(nid, label, d.kind[first], parent, tids))
                leaves[-1]["is_mapped"] = first in d.mapped
        for node in leaves:
            if node["parent"] is not None:
                node["parent"] = _group_node(node["parent"])

        edge_count: dict[tuple[str, str], int] = {}
        edge_labels: dict[tuple[str, str], set[str | None]] = {}
        for u, t in d.edges:
            a, b = node_of[u], node_of[t]
            if a != b:
                edge_count[(a, b)] = edge_count.get((a, b), 0) + 1
                edge_labels.setdefault((a, b), set()).add(d.labels.get((u, t)))
        edges = [{"id": f"{a}->{b}", "source": a, "target": b, "count": c} for (a, b), c in edge_count.items()]
        for edge in edges:
            # a drawn edge carries a Label's words when every edge it stands for has those same words
            words = edge_labels[(edge["source"], edge["target"])]
            if len(words) == 1 and None not in words:
                edge["label"] = words.pop()

        def top_box(node: dict[str, Any]) -> str | None:
            parent = node["parent"]
            return _group_node(d.chain[parent.removeprefix("group:")][0]) if parent else None

        positions = layered_layout([n["id"] for n in leaves], list(edge_count), max_row=max_row,
                                   clusters={n["id"]: b for n in leaves if (b := top_box(n))})
        for node in leaves:
            node["position"] = positions[node["id"]]

        compounds: list[dict[str, Any]] = []
        spread: dict[str, list[tuple[float, float]]] = {}
        for node in leaves:
            parent = node["parent"]
            while parent is not None:
                spread.setdefault(parent, []).append(node["position"])
                gid = parent.removeprefix("group:")
                up = box_of(d.group_parent.get(gid))
                parent = _group_node(up) if up else None
        for gid in sorted(boxes, key=lambda g: (len(d.chain[g]), d.order.get(d.group_tasks[g][0], 0))):
            nid = _group_node(gid)
            if nid not in spread:
                continue
            xs, ys = zip(*spread[nid])
            parent = box_of(d.group_parent.get(gid))
            box = _node(nid, _short(gid, d.group_parent.get(gid)), "group",
                        _group_node(parent) if parent else None, [], is_group=True)
            box["is_compound"] = True
            box["position"] = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)
            compounds.append(box)
        return cls(compounds + leaves, edges, node_of, dag_id=d.dag_id,
                   group_tasks={gid: d.group_tasks[gid] for gid in boxes}, task_groups=d.group)


def _node(nid: str, label: str, kind: str, parent: str | None, members: list[str], *,
          is_group: bool = False, is_aggregate: bool = False) -> dict[str, Any]:
    return {"id": nid, "label": label, "kind": kind, "parent": parent, "members": members,
            "position": (0.0, 0.0), "is_group": is_group, "is_aggregate": is_aggregate,
            "is_compound": False}


def _instances_by_task(task_states: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The states of mapped tasks' instances among ``task_states``, by task."""
    found: dict[str, list[Any]] = {}
    for key, state in task_states.items():
        if key.endswith("]"):
            base, index = split_key(key)
            if index >= 0:
                found.setdefault(base, []).append(state)
    return found
