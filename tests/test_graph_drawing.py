"""What the notebook graph draws must not mislead: a group's colour is its worst state, no node
sits in a group's box it is not in, and no edge passes over a node it does not connect."""

from __future__ import annotations

import re
from typing import Any

from nbflow import DAG, TaskGroup, task
from nbflow.jupyter.bends import edge_bends
from nbflow.jupyter.graph import STATE_STYLES, GraphModel, node_size
from nbflow.jupyter.layout import BOX_PADDING, clear_boxes, layered_layout, route_edges


def etl_dag() -> DAG:
    """The shape of a 10-task ETL: a long edge past a stage, and a group beside other tasks."""
    with DAG("etl_drawing", schedule=None) as dag:
        @task
        def extract() -> int:
            return 1

        @task
        def clean(x: int) -> int:
            return x

        @task
        def load_warehouse(x: int) -> int:
            return x

        @task
        def totals_by_region(x: int) -> int:
            return x

        @task
        def daily_report(a: int, b: int) -> int:
            return a + b

        @task
        def rows(x: int) -> int:
            return x

        @task
        def nulls(x: int) -> int:
            return x

        @task
        def dupes(x: int) -> int:
            return x

        raw = extract()
        cleaned = clean(raw)
        totals = totals_by_region(cleaned)
        loaded = load_warehouse(totals)
        daily_report(totals, loaded)
        with TaskGroup("checks"):
            rows(raw), nulls(raw), dupes(cleaned)
    return dag


def _segments_cross(p: tuple[float, float], q: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    """Does segment p-q pass through the rectangle (x0, y0, x1, y1)? (Liang-Barsky clipping.)"""
    x0, y0, x1, y1 = box
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for edge_p, edge_q in ((-dx, p[0] - x0), (dx, x1 - p[0]), (-dy, p[1] - y0), (dy, y1 - p[1])):
        if edge_p == 0:
            if edge_q < 0:
                return False
            continue
        t = edge_q / edge_p
        if edge_p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return True


def _crossings(model: GraphModel, routes: dict[tuple[str, str], list[tuple[float, float]]]) -> list[tuple[str, str]]:
    leaves = {n["id"]: n for n in model.nodes if not n["is_compound"]}
    found = []
    for edge in model.edges:
        s, t = edge["source"], edge["target"]
        path = [leaves[s]["position"], *routes.get((s, t), []), leaves[t]["position"]]
        for nid, node in leaves.items():
            if nid in (s, t):
                continue
            w, h = node_size(node["kind"])
            x, y = node["position"]
            box = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
            if any(_segments_cross(a, b, box) for a, b in zip(path, path[1:])):
                found.append((f"{s}->{t}", nid))
    return found


def test_a_straight_edge_past_a_node_bends_round_it() -> None:
    model = GraphModel.from_dag(etl_dag())
    leaves = [n for n in model.nodes if not n["is_compound"]]
    positions = {n["id"]: n["position"] for n in leaves}
    sizes = {n["id"]: node_size(n["kind"]) for n in leaves}
    straight = _crossings(model, {})
    assert ("totals_by_region->daily_report", "load_warehouse") in straight  # the drawing the issue saw
    routes = route_edges(positions, sizes, [(e["source"], e["target"]) for e in model.edges])
    assert _crossings(model, routes) == []
    assert set(routes) == {tuple(c[0].split("->")) for c in straight}  # only crossing edges bend
    bends = edge_bends(model)
    # on screen the group's name above its box is in the way too: extract's edge into the box bends round it
    assert set(bends) == {c[0] for c in straight} | {"extract->checks.nulls"}
    one = bends["totals_by_region->daily_report"]
    assert one["bends"] == 2 and len(one["bend_weights"].split()) == 2 == len(one["bend_distances"].split())


def test_route_edges_on_a_chain_with_a_shortcut() -> None:
    positions = {"a": (0.0, 0.0), "b": (0.0, 100.0), "c": (0.0, 200.0)}
    sizes = {name: (150.0, 40.0) for name in positions}
    routes = route_edges(positions, sizes, [("a", "b"), ("b", "c"), ("a", "c")])
    assert list(routes) == [("a", "c")]
    (x1, y1), (x2, y2) = routes[("a", "c")]
    assert x1 == x2 and abs(x1) >= 75 and y1 < 80 and y2 > 120


def test_no_node_sits_in_the_box_of_a_group_it_is_not_in() -> None:
    # a group spanning rows 1-3, and a task in row 2 that the centred rows put inside its span
    nodes = ["top", "g.a", "g.b", "g.c", "g.d", "other", "g.e"]
    edges = [("top", "g.a"), ("top", "g.b"), ("g.a", "g.c"), ("g.b", "g.d"), ("top", "other"),
             ("g.c", "g.e"), ("g.d", "g.e")]
    clusters = {n: "g" for n in nodes if n.startswith("g.")}
    positions = layered_layout(nodes, edges, clusters=clusters)
    xs = [positions[n][0] for n in clusters]
    left, right = min(xs) - 75 - BOX_PADDING, max(xs) + 75 + BOX_PADDING
    ys = [positions[n][1] for n in clusters]
    for name in ("top", "other"):
        x, y = positions[name]
        if min(ys) <= y <= max(ys):
            assert x + 75 <= left or x - 75 >= right, (name, positions)


def test_clear_boxes_moves_a_node_out_with_its_row() -> None:
    positions = {"g1": (0.0, 0.0), "g2": (0.0, 200.0), "x": (0.0, 100.0), "y": (180.0, 100.0)}
    moves = clear_boxes(positions, {"g1": "g", "g2": "g", "x": None, "y": None})
    assert moves >= 1
    assert abs(positions["x"][0]) >= 75 + 75 + BOX_PADDING
    # the row keeps its order and spacing
    assert positions["y"][0] - positions["x"][0] == 180.0


def test_a_group_with_one_task_of_three_finished_is_not_green() -> None:
    dag = etl_dag()
    model = GraphModel.from_dag(dag, collapsed={"checks"})
    states: dict[str, Any] = {"checks.rows": "success", "checks.nulls": "none", "checks.dupes": "none"}
    style = model.node_style("group:checks", states)
    assert style["state"] == "none" and style["background"] != STATE_STYLES["success"]["background"]
    states["checks.nulls"] = "running"
    assert model.node_style("group:checks", states)["state"] == "running"
    states.update({"checks.nulls": "success", "checks.dupes": "success"})
    assert model.node_style("group:checks", states)["state"] == "success"
    states["checks.dupes"] = "skipped"  # a branch not taken: the group still finished well
    assert model.node_style("group:checks", states)["state"] == "success"
    states["checks.rows"] = "failed"
    assert model.node_style("group:checks", states)["state"] == "failed"


def test_the_static_picture_bends_the_same_edges() -> None:
    from nbflow.jupyter.svg import render_svg

    svg = render_svg(GraphModel.from_dag(etl_dag()))
    bent = re.search(r'<g class="edge" data-source="totals_by_region" data-target="daily_report"><polyline '
                     r'points="([^"]+)"', svg)
    assert bent is not None, svg
    assert len(bent.group(1).split()) == 4  # from the source, round load_warehouse (2 points), to the target
    assert '<g class="edge" data-source="extract" data-target="clean"><line ' in svg


def test_a_box_starting_on_a_wrapped_row_has_room_for_its_name() -> None:
    # one layer of 6 tasks of group a and 3 of group b: a's wrap onto two sub-rows, then b's start
    nodes = ["root", *[f"a.{i}" for i in range(6)], *[f"b.{i}" for i in range(3)]]
    edges = [("root", n) for n in nodes[1:]]
    clusters = {n: n.split(".")[0] for n in nodes[1:]}
    positions = layered_layout(nodes, edges, clusters=clusters, max_row=5)
    a_bottom = max(positions[f"a.{i}"][1] for i in range(6))
    b_top = min(positions[f"b.{i}"][1] for i in range(3))
    # b's box top (its row - 20 - padding) and its name (about 18 px above) clear a's box bottom
    assert (b_top - 20 - BOX_PADDING - 18) - (a_bottom + 20 + BOX_PADDING) >= 0, positions
