"""``dags``: the list, one DAG, pausing, next run times, the graph laid out, the grid of runs.

The store answers for every DAG; the DAG object (loaded from its file by the catalog) adds what only
it knows: the schedule as written and when it runs next. A DAG whose file cannot be loaded (defined
in a kernel, or its file is broken) is still shown from its stored definition.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from nbflow.errors import DagNotFoundError, InvalidRequestError, NbflowError
from nbflow.jupyter.server import serialize as out
from nbflow.jupyter.server.base import NbflowHandler
from nbflow.store import queries
from nbflow.timetables import MAX_NEXT_RUNS

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.jupyter.server.services import Services

#: the style keys of a state that the API hands out (see nbflow.jupyter.graph.STATE_STYLES)
STYLE_KEYS = ("background", "border", "text", "label", "symbol")


def find_row(services: Services, dag_id: str) -> dict[str, Any]:
    """The store's row of ``dag_id``; the folder is read again first if the store does not know it
    (a file added a moment ago)."""
    store = services.store
    row = store.get_dag(dag_id)
    if row is None:
        services.catalog.scan()
        row = store.get_dag(dag_id)
    if row is None:
        raise DagNotFoundError(dag_id, [r["dag_id"] for r in store.list_dags()])
    return row


def zone_of(dag: DAG | None, row: dict[str, Any]) -> tzinfo:
    from nbflow.timetables import resolve_timezone

    if dag is not None:
        return dag.timezone
    try:
        return resolve_timezone(row.get("timezone") or "UTC")
    except NbflowError:
        return resolve_timezone("UTC")


def upcoming(dag: DAG | None, row: dict[str, Any], n: int) -> list[datetime]:
    """The next ``n`` scheduled times (:func:`nbflow.store.queries.next_run_times`, which the
    notebook dashboard asks too)."""
    return queries.next_run_times(row, n, dag)


def summary(services: Services, row: dict[str, Any], dag: DAG | None,
            overview: queries.DagOverview | None = None) -> dict[str, Any]:
    overview = overview or queries.dag_overview(services.store, row, out.RECENT_RUNS)
    following = upcoming(dag, row, 1)
    return out.dag_summary(overview.row, dag, overview.recent_runs, overview.counts,
                           following[0] if following else None)


def list_dags(services: Services) -> dict[str, Any]:
    catalog = services.catalog
    catalog.scan()
    found = queries.dags_overview(services.store, out.RECENT_RUNS)
    dags = [summary(services, o.row, catalog.get(o.row), o) for o in found.dags]
    return {"dags": dags, "import_errors": [out.import_error(e) for e in found.import_errors]}


def dag_detail(services: Services, dag_id: str) -> dict[str, Any]:
    row = find_row(services, dag_id)
    dag = services.catalog.get(row)
    result = summary(services, row, dag)
    definition = dag.describe() if dag is not None else row.get("definition") or {}
    result["tasks"] = out.tasks_of(definition)
    result["params"] = out.params_of(definition)  # what the Lab's trigger form asks for
    assets = queries.dag_assets(services.store, dag_id, definition)  # what it updates and what it runs on
    for item in assets["consumes"]:
        item["last_event_at"] = out.iso(item["last_event_at"])
    result["assets"] = assets
    result["next_runs"], result["next_runs_local"] = out.times(upcoming(dag, row, 5), zone_of(dag, row))
    return result


def set_paused(services: Services, dag_id: str, paused: bool) -> dict[str, Any]:
    from nbflow.engine import controls

    row = find_row(services, dag_id)
    (controls.pause if paused else controls.unpause)(dag_id, store=services.store)
    row = find_row(services, dag_id)
    return summary(services, row, services.catalog.get(row))


def next_times(services: Services, dag_id: str, n: int) -> dict[str, Any]:
    from nbflow.timetables import timezone_name

    row = find_row(services, dag_id)
    dag = services.catalog.get(row)
    zone = zone_of(dag, row)
    utc, local = out.times(upcoming(dag, row, n), zone)
    return {"timezone": timezone_name(zone), "next_runs": utc, "next_runs_local": local}


#: a DAG view in a Lab tab draws at most this many nodes and edges, folded as in a notebook (a few
#: hundred stay readable on a page; thousands are a smear of dots), and wraps a layer at this many
#: nodes a row, as a notebook cell does, so that the folded graph fitted to the tab reads without zooming
LAB_ELEMENTS = 300
LAB_ROW = 5


def graph(services: Services, dag_id: str, opens: list[str] | None = None) -> dict[str, Any]:
    """The graph folded and laid out here, with the model the notebook draws
    (:class:`~nbflow.jupyter.graph.GraphModel`), after opening the nodes ``opens`` one after the
    other (:meth:`~nbflow.jupyter.unfolding.Unfolding.replay`): a browser view only draws, and opens
    a folded node by asking again with its id added."""
    from nbflow.jupyter.bends import drawn_size, edge_bends
    from nbflow.jupyter.graph import SEVERITY, STATE_STYLES, kind_shape
    from nbflow.jupyter.unfolding import Unfolding

    row = find_row(services, dag_id)
    dag = services.catalog.get(row)
    unfolding = Unfolding(dag if dag is not None else row.get("definition") or {"dag_id": dag_id},
                          max_elements=LAB_ELEMENTS, max_row=LAB_ROW)
    model = unfolding.replay(opens or [])
    nodes = []
    for node in model.nodes:
        width, height = drawn_size(node)  # as the notebook draws it: the edges' bends go round these
        x, y = node["position"]
        folded = bool(node["is_aggregate"] or (node["is_group"] and not node["is_compound"]))
        nodes.append({"id": node["id"], "label": node["label"], "kind": node["kind"], "shape": kind_shape(node["kind"]),
                      "parent": node["parent"], "x": x, "y": y, "width": width, "height": height,
                      "is_group": bool(node["is_compound"]), "is_folded": folded,
                      "size": len(model.group_tasks(node["id"].removeprefix("group:"))) if node["is_compound"]
                      else len(node["members"])})
    # an edge whose straight line would pass over a node it does not connect bends round it, at the
    # same points as in the notebook (cytoscape's segments: weights along it, distances from it)
    bends = edge_bends(model)
    edges = [{"id": e["id"], "source": e["source"], "target": e["target"], "count": e["count"],
              **({"label": e["label"]} if e.get("label") else {}), **bends.get(e["id"], {})} for e in model.edges]
    styles = {state: {key: style[key] for key in STYLE_KEYS} for state, style in STATE_STYLES.items()}
    node_of = {task: model.node_of(task) for task in model.tasks()}
    return {"dag_id": dag_id, "nodes": nodes, "edges": edges, "styles": styles, "node_of": node_of,
            "severity": list(SEVERITY), "opened": list(opens or [])}


def grid(services: Services, dag_id: str, limit: int) -> dict[str, Any]:
    row = find_row(services, dag_id)
    dag = services.catalog.get(row)
    definition = dag.describe() if dag is not None else row.get("definition") or {}
    found = queries.runs_grid(services.store, dag_id, limit)
    tasks = out.tasks_of(definition)
    # a task's outermost group: the grid folds a group's rows under one row of its own
    groups = {t["task_id"]: str(t["group"]).split(".", 1)[0] for t in tasks if t.get("group")}
    return {"runs": [out.run_summary(r) for r in found.runs], "tasks": [t["task_id"] for t in tasks],
            "groups": groups, "states": found.states, "counts": found.counts}


# -- handlers ---------------------------------------------------------------------------------------


class DagsHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.services.call(list_dags, self.services))


class DagHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self, dag_id: str) -> None:
        self.reply(await self.services.call(dag_detail, self.services, dag_id))

    @web.authenticated
    @authorized
    async def patch(self, dag_id: str) -> None:
        body = self.json_body()
        paused = body.get("is_paused")
        if not isinstance(paused, bool):
            raise InvalidRequestError('send {"is_paused": true} or {"is_paused": false}', dag_id)
        self.reply(await self.services.call(set_paused, self.services, dag_id, paused))


class NextRunsHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self, dag_id: str) -> None:
        n = self.int_argument("n", 5, low=1, high=MAX_NEXT_RUNS)
        self.reply(await self.services.call(next_times, self.services, dag_id, n))


class GraphHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self, dag_id: str) -> None:
        opens = self.get_arguments("open")  # the folded nodes the view opened, in order
        self.reply(await self.services.call(graph, self.services, dag_id, opens))


class GridHandler(NbflowHandler):
    @web.authenticated
    @authorized
    async def get(self, dag_id: str) -> None:
        limit = self.int_argument("limit", 25, low=1, high=1000)
        self.reply(await self.services.call(grid, self.services, dag_id, limit))
