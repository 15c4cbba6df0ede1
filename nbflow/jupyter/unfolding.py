"""What the user opened and closed in a folded graph: one state, shared by every view.

:class:`~nbflow.jupyter.graph.GraphModel` folds a DAG to fit; a view lets the user open a collapsed
group or a folded node and close it again. :class:`Unfolding` keeps those choices and turns them
into the next model, laid out so that opening a node grows it in place
(:meth:`GraphModel.keep_places`). The notebook widget keeps one for its life; the JupyterLab view
sends the server the node ids it opened, in order, and the server replays them here
(:meth:`Unfolding.replay`), so both views fold and open a DAG the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

from nbflow.errors import InvalidRequestError
from nbflow.jupyter.graph import MAX_ELEMENTS, MAX_ROW, GraphModel

if TYPE_CHECKING:
    from nbflow.dag import DAG

#: a view opens at most this many nodes one after the other (each is a fold and a layout)
MAX_OPENS = 50
#: in :meth:`Unfolding.replay`, the mark of a step that closes a node rather than opens it
CLOSE = "!"


class Unfolding:
    """The groups and folded nodes a user opened or closed in one view of one DAG."""

    def __init__(self, dag: DAG | Mapping[str, Any], *, max_elements: int = MAX_ELEMENTS,
                 max_row: int = MAX_ROW) -> None:
        self.dag = dag
        self.max_elements = max_elements
        self.max_row = max_row
        self.collapsed: set[str] = set()
        self.expanded: set[str] = set()
        self.opened: list[list[str]] = []
        self.focused: str | None = None
        self._before_open: dict[tuple[str, ...], list[list[str]]] = {}

    @property
    def dag_id(self) -> str:
        dag = self.dag
        return str(dag.get("dag_id", "")) if isinstance(dag, Mapping) else dag.dag_id

    def model(self) -> GraphModel:
        """The DAG folded and laid out with the current choices."""
        return GraphModel.from_dag(self.dag, max_elements=self.max_elements, collapsed=self.collapsed,
                                   expanded=self.expanded, opened=self.opened, focus=self.focused,
                                   max_row=self.max_row)

    def open(self, model: GraphModel, node_id: str) -> GraphModel:
        """Open a collapsed group or a folded node of ``model`` (the model drawn now); returns the
        next model, with every node outside the opened one where it was."""
        node = model.node(node_id)
        if node["is_group"] and not node["is_compound"]:
            gid = node["id"].removeprefix("group:")
            self.collapsed.discard(gid)
            self.expanded.add(gid)
            own = [t for t in node["members"] if model.group_of(t) == gid]
            if own:  # its own tasks are what the user wants to see: keep them apart from the folding
                self._before_open[tuple(own)] = [list(s) for s in self.opened]
                self.opened = [s for s in self.opened if not set(own) <= set(s)] + [own]
        elif node["is_aggregate"] and not node["id"].startswith("focus:"):
            members = list(node["members"])
            inside = set(members)
            sets: list[list[str]] = []
            for opened in self.opened:
                if inside <= set(opened):  # a part of an opened set: the rest of it stays open around it
                    sets += [[t for t in opened[:opened.index(members[0])] if t not in inside],
                             [t for t in opened[opened.index(members[0]):] if t not in inside]]
                else:
                    sets.append(opened)
            self._before_open[tuple(members)] = [list(s) for s in self.opened]
            self.opened = [s for s in sets if s] + [members]
        elif node["id"].startswith("focus:"):
            self.focused = None
            return self.model()
        else:
            raise InvalidRequestError(f"{node['label']} is a single task: there is nothing inside it to show",
                                      self.dag_id)
        after = self.model()
        after.keep_places(model, node_id)
        return after

    def close(self, model: GraphModel, node_id: str) -> GraphModel:
        """Close the group holding a node of ``model`` (or the group box itself), or fold an opened
        node again; returns the next model."""
        node = model.node(node_id)
        tasks = set(node["members"])
        holder = next((s for s in self.opened if tasks and tasks <= set(s)), None)
        if holder is not None:  # undo the open that made it: what was open before comes back
            before = self._before_open.pop(tuple(holder), None)
            self.opened = before if before is not None else [s for s in self.opened if s is not holder]
        elif node["is_compound"] or node["parent"] is not None:
            gid = (node["id"] if node["is_compound"] else node["parent"]).removeprefix("group:")
            self.expanded.discard(gid)
            self.collapsed.add(gid)
            inside = set(model.group_tasks(gid))
            self.opened = [s for s in self.opened if not set(s) <= inside]
        else:
            raise InvalidRequestError(f"{node['label']} is in no group and was not opened: there is nothing to close",
                                      self.dag_id)
        return self.model()

    def reset(self) -> GraphModel:
        """The whole DAG again, folded only as its size demands."""
        self.collapsed.clear()
        self.expanded.clear()
        self.opened.clear()
        self._before_open.clear()
        self.focused = None
        return self.model()

    def replay(self, opens: Iterable[str]) -> GraphModel:
        """The model after opening ``opens`` one after the other from the folded DAG, as a view
        that remembers only the ids it clicked asks for it; an id written ``!id`` closes that group
        (or folds that opened node) again (node ids never start with ``!``). An id the model no
        longer draws (the DAG changed since) is refused with the id named."""
        opens = list(opens)
        if len(opens) > MAX_OPENS:
            raise InvalidRequestError(f"{len(opens)} nodes opened at once: open at most {MAX_OPENS}, "
                                      "or fold the graph again and open fewer", self.dag_id)
        model = self.reset()
        for node_id in opens:
            if node_id.startswith(CLOSE):
                model = self.close(model, node_id[len(CLOSE):])
            else:
                model = self.open(model, node_id)
        return model
