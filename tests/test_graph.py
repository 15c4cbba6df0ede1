"""The graph view's model: styles, layout, folding big DAGs, state batching and the static SVG."""

from __future__ import annotations

import importlib
import pkgutil
import random
import threading
import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest

import nbflow.operators
import nbflow.sensors
from nbflow import DAG, TaskGroup, TaskState
from nbflow.errors import TaskNotFoundError
from nbflow.jupyter.graph import (
    KIND_BADGES,
    KIND_SHAPES,
    LEGEND,
    NO_STATUS,
    OPENED_PARTS,
    STATE_STYLES,
    GraphModel,
    StateBatcher,
    layered_layout,
    style_for,
)
from nbflow.jupyter.svg import render_svg
from nbflow.operators import BashOperator, EmptyOperator, PythonOperator
from nbflow.operators.base import BaseOperator

SVG = "{http://www.w3.org/2000/svg}"


def _noop() -> None:
    return None


def chain_dag(n: int, dag_id: str = "chain") -> DAG:
    with DAG(dag_id) as dag:
        tasks = [EmptyOperator(task_id=f"step_{i}") for i in range(n)]
        for a, b in zip(tasks, tasks[1:]):
            a >> b
    return dag


def fan_dag(width: int, dag_id: str = "fan") -> DAG:
    with DAG(dag_id) as dag:
        start, end = EmptyOperator(task_id="start"), EmptyOperator(task_id="end")
        for i in range(width):
            task = PythonOperator(task_id=f"extract_{i}", python_callable=_noop)
            start >> task >> end
    return dag


def grouped_dag(groups: int = 4, size: int = 30, dag_id: str = "grouped") -> DAG:
    """``groups`` task groups in a row, each a chain of ``size`` tasks."""
    with DAG(dag_id) as dag:
        previous: Any = EmptyOperator(task_id="begin")
        for g in range(groups):
            with TaskGroup(f"g{g}") as group:
                tasks = [BashOperator(task_id=f"t{i}", bash_command="true") for i in range(size)]
                for a, b in zip(tasks, tasks[1:]):
                    a >> b
            previous >> group
            previous = group
    return dag


def nested_dag() -> DAG:
    with DAG("nested") as dag:
        start = EmptyOperator(task_id="start")
        with TaskGroup("outer") as outer:
            with TaskGroup("inner"):
                pulls = [PythonOperator(task_id=f"pull_{i}", python_callable=_noop) for i in range(40)]
            check = EmptyOperator(task_id="check")
            pulls >> check
        with TaskGroup("side"):
            a, b = EmptyOperator(task_id="a"), EmptyOperator(task_id="b")
            a >> b
        start >> outer
        start >> a
    return dag


def assert_every_task_once(model: GraphModel, dag: DAG) -> None:
    """Nothing lost: every task in exactly one drawn node, and ``node_of`` names that node."""
    ids = [node["id"] for node in model.nodes]
    assert len(ids) == len(set(ids))
    seen: dict[str, str] = {}
    for node in model.nodes:
        if node["is_compound"]:
            assert node["members"] == []
            continue
        for tid in node["members"]:
            assert tid not in seen, f"{tid} is in {seen[tid]} and {node['id']}"
            seen[tid] = node["id"]
    assert set(seen) == set(dag.task_ids)
    for tid in dag.task_ids:
        assert model.node_of(tid) == seen[tid]
    for edge in model.edges:
        assert edge["source"] in ids and edge["target"] in ids and edge["source"] != edge["target"]
    for node in model.nodes:
        assert node["parent"] is None or model.node(node["parent"])["is_compound"]


# -- styles ---------------------------------------------------------------------------------------


def test_style_for_covers_every_task_state_and_no_status() -> None:
    for state in TaskState:
        style = style_for(state)
        assert style == STATE_STYLES[state.value] == style_for(state.value)
        assert {"background", "border", "text", "label", "symbol"} <= set(style)
    assert style_for(None) == STATE_STYLES[NO_STATUS]
    assert style_for("not-a-state") == STATE_STYLES[NO_STATUS]
    assert set(STATE_STYLES) == {s.value for s in TaskState} | {NO_STATUS}
    assert [s for s, _ in LEGEND] and {s for s, _ in LEGEND} == set(STATE_STYLES)
    # close to the colours Airflow users know
    assert style_for("success")["background"] == "#008000"
    assert style_for("failed")["background"] == "#ff0000"
    assert style_for("up_for_retry")["background"] == "#ffd700"
    assert style_for("none")["background"] == "#ffffff"
    outcomes = ["success", "failed", "running", "queued", "up_for_retry", "upstream_failed", "skipped",
                "up_for_reschedule", "scheduled"]
    assert len({style_for(s)["background"] for s in outcomes}) == len(outcomes)


def test_every_operator_kind_has_a_shape_and_a_badge() -> None:
    def subclasses(cls: type) -> set[type]:
        found = set(cls.__subclasses__())
        return found.union(*(subclasses(c) for c in found)) if found else found

    for package in (nbflow.operators, nbflow.sensors):  # import every operator class there is
        for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
    kinds = {cls.kind for cls in subclasses(BaseOperator)} | {BaseOperator.kind}
    assert {"python", "bash", "empty", "branch", "short_circuit", "notebook", "sensor", "custom"} <= kinds
    assert kinds <= set(KIND_SHAPES) and kinds <= set(KIND_BADGES)
    assert KIND_SHAPES["branch"] == KIND_SHAPES["short_circuit"] == "diamond"
    assert KIND_SHAPES["python"] == "round-rectangle" and KIND_SHAPES["bash"] == "rectangle"


# -- layout ---------------------------------------------------------------------------------------


def test_layered_layout_puts_every_node_below_its_parents() -> None:
    # how fast it is for big DAGs is measured in benchmarks/graph.py, not here
    rng = random.Random(7)
    nodes = [f"n{i}" for i in range(10_000)]
    edges = [(f"n{rng.randrange(i)}", f"n{i}") for i in range(1, 10_000) for _ in range(2)]
    positions = layered_layout(nodes, edges)
    assert set(positions) == set(nodes)
    assert all(positions[t][1] > positions[s][1] for s, t in edges)
    assert len(set(positions.values())) == len(nodes)


def test_layered_layout_orders_a_layer_by_its_parents() -> None:
    # given in the crossing order, the children swap to sit under their own parents
    positions = layered_layout(["a", "b", "under_b", "under_a"], [("a", "under_a"), ("b", "under_b")])
    assert (positions["a"][0] < positions["b"][0]) == (positions["under_a"][0] < positions["under_b"][0])
    assert positions["a"][1] == positions["b"][1] < positions["under_a"][1] == positions["under_b"][1]


def test_layered_layout_survives_a_cycle_and_unknown_nodes() -> None:
    positions = layered_layout(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "b"), ("a", "zzz")])
    assert set(positions) == {"a", "b", "c"} and positions["b"][1] > positions["a"][1]


# -- folding --------------------------------------------------------------------------------------


def test_a_small_dag_keeps_one_node_per_task() -> None:
    dag = chain_dag(5)
    model = GraphModel.from_dag(dag)
    assert [n["id"] for n in model.nodes] == dag.task_ids
    assert all(n["members"] == [n["id"]] and not n["is_aggregate"] and not n["is_group"] for n in model.nodes)
    assert [(e["source"], e["target"], e["count"]) for e in model.edges] == [
        (f"step_{i}", f"step_{i + 1}", 1) for i in range(4)]
    assert model.node("step_0")["kind"] == "empty" and model.node("step_0")["label"] == "step_0"
    assert_every_task_once(model, dag)


def test_groups_stay_open_boxes_when_the_dag_fits() -> None:
    dag = grouped_dag(groups=2, size=3)
    model = GraphModel.from_dag(dag)
    box = model.node("group:g0")
    assert box["is_compound"] and box["is_group"] and box["members"] == []
    assert model.node("g0.t1")["parent"] == "group:g0" and model.node("g0.t1")["label"] == "t1"
    assert model.element_count == len(model.nodes) + len(model.edges)


def test_groups_collapse_above_the_limit_and_expanded_reopens_one() -> None:
    dag = grouped_dag(groups=4, size=30)
    assert len(dag.task_ids) == 121
    model = GraphModel.from_dag(dag, max_elements=100)
    assert model.element_count <= 100
    collapsed = [n for n in model.nodes if n["is_group"] and not n["is_compound"]]
    assert collapsed and all(len(n["members"]) == 30 for n in collapsed)
    assert model.node_of("g0.t5") == "group:g0"
    assert not any(n["is_aggregate"] for n in model.nodes)  # groups were enough
    assert_every_task_once(model, dag)

    opened = GraphModel.from_dag(dag, max_elements=100, expanded={"group:g0"})
    assert opened.node("group:g0")["is_compound"]
    assert opened.node_of("g0.t5") == "g0.t5" and opened.node("g0.t5")["parent"] == "group:g0"
    assert opened.node_of("g1.t5") == "group:g1"
    assert_every_task_once(opened, dag)
    # an edge into a collapsed group is merged with a count
    into = [e for e in opened.edges if e["target"] == "group:g1"]
    assert into == [{"id": "g0.t29->group:g1", "source": "g0.t29", "target": "group:g1", "count": 1}]


def test_the_biggest_group_collapses_first() -> None:
    with DAG("sizes") as dag:
        with TaskGroup("small") as small:
            tasks = [EmptyOperator(task_id=f"s{i}") for i in range(5)]
            for a, b in zip(tasks, tasks[1:]):
                a >> b
        with TaskGroup("big") as big:
            tasks = [EmptyOperator(task_id=f"b{i}") for i in range(60)]
            for a, b in zip(tasks, tasks[1:]):
                a >> b
        small >> big
    model = GraphModel.from_dag(dag, max_elements=40)
    assert model.node("group:big")["is_group"] and not model.node("group:big")["is_compound"]
    assert model.node("group:small")["is_compound"] and model.node_of("small.s0") == "small.s0"
    assert_every_task_once(model, dag)


def test_collapsed_closes_a_group_even_when_it_fits() -> None:
    dag = nested_dag()
    model = GraphModel.from_dag(dag, collapsed={"outer.inner"})
    inner = model.node("group:outer.inner")
    assert inner["is_group"] and not inner["is_compound"] and len(inner["members"]) == 40
    assert inner["parent"] == "group:outer" and inner["label"] == "inner ×40"
    assert model.node("group:outer")["is_compound"]
    assert [e["count"] for e in model.edges if e["source"] == "group:outer.inner"] == [40]
    assert_every_task_once(model, dag)
    assert GraphModel.from_dag(dag, collapsed={"outer.inner"}, expanded={"outer.inner"}).node_of(
        "outer.inner.pull_0") == "outer.inner.pull_0"


def test_a_fan_out_folds_into_one_aggregate_with_merged_edges() -> None:
    dag = fan_dag(2000)
    model = GraphModel.from_dag(dag)
    assert len(model.nodes) == 3 and model.element_count <= 400
    aggregate = model.node(model.node_of("extract_7"))
    assert aggregate["is_aggregate"] and len(aggregate["members"]) == 2000
    assert aggregate["label"] == "extract ×2000" and aggregate["kind"] == "python"
    assert {(e["source"], e["target"], e["count"]) for e in model.edges} == {
        ("start", aggregate["id"], 2000), (aggregate["id"], "end", 2000)}
    assert_every_task_once(model, dag)
    # the user opens it: 2,000 tasks do not fit one by one, so they come back in consecutive
    # parts, as many as fit; opening a part shows its tasks
    opened = GraphModel.from_dag(dag, expanded={aggregate["id"]})
    assert opened.element_count <= 200 and len(opened.nodes) == 2 + OPENED_PARTS
    assert_every_task_once(opened, dag)
    part = opened.node(opened.node_of("extract_7"))
    assert part["id"].startswith("agg:extract_0~") and part["label"] == "extract_0–199 ×200"
    assert part["members"] == [f"extract_{i}" for i in range(len(part["members"]))]
    members, steps = part["members"], 0
    while True:  # each open shows smaller parts, until the tasks show one by one
        inside = GraphModel.from_dag(dag, opened=[members])
        assert inside.element_count <= 200 and inside.node_of("extract_1999").startswith("agg:")
        first = inside.node(inside.node_of(members[0]))
        if first["id"] == members[0]:
            break
        assert len(first["members"]) < len(members)
        members, steps = first["members"], steps + 1
        assert steps < 4
    assert [inside.node_of(t) for t in members] == members and len(members) > 1


def test_only_the_folds_needed_are_made_biggest_first() -> None:
    with DAG("two_fans") as dag:
        start, middle, end = (EmptyOperator(task_id=x) for x in ("start", "middle", "end"))
        for i in range(500):
            start >> EmptyOperator(task_id=f"many_{i}") >> middle
        for i in range(3):
            middle >> EmptyOperator(task_id=f"few_{i}") >> end
    model = GraphModel.from_dag(dag)
    assert len(model.node(model.node_of("many_1"))["members"]) == 500
    assert [model.node_of(f"few_{i}") for i in range(3)] == ["few_0", "few_1", "few_2"]
    assert_every_task_once(model, dag)


def test_a_long_chain_folds_its_middle_and_keeps_its_ends() -> None:
    dag = chain_dag(2000)
    model = GraphModel.from_dag(dag)
    assert [n["label"] for n in model.nodes] == ["step_0", "step ×1998", "step_1999"]
    assert_every_task_once(model, dag)


def test_focus_keeps_the_neighbourhood_and_folds_the_rest() -> None:
    with DAG("focus") as dag:
        steps = [EmptyOperator(task_id=f"s{i}") for i in range(10)]
        for a, b in zip(steps, steps[1:]):
            a >> b
        lonely = EmptyOperator(task_id="lonely")
        side = EmptyOperator(task_id="side")
        steps[4] >> side
    model = GraphModel.from_dag(dag, focus="s5")
    shown = {n["id"] for n in model.nodes if not n["is_aggregate"]}
    assert shown == {"s3", "s4", "s5", "s6", "s7"}
    assert model.node("focus:upstream")["members"] == ["s0", "s1", "s2"]
    assert model.node("focus:downstream")["members"] == ["s8", "s9"]
    assert set(model.node("focus:other")["members"]) == {lonely.task_id, side.task_id}
    assert model.node("focus:upstream")["label"] == "+3 upstream"
    assert ("focus:upstream", "s3") in {(e["source"], e["target"]) for e in model.edges}
    assert_every_task_once(model, dag)
    with pytest.raises(TaskNotFoundError):
        GraphModel.from_dag(dag, focus="nope")
    with pytest.raises(TaskNotFoundError):
        model.node_of("nope")


def test_focus_on_a_huge_fan_still_fits_but_keeps_the_focus_task() -> None:
    dag = fan_dag(2000)
    model = GraphModel.from_dag(dag, focus="start")
    assert model.element_count <= 400 and model.node_of("start") == "start"
    assert len(model.node(model.node_of("extract_3"))["members"]) == 2000
    assert_every_task_once(model, dag)


def _wide(n: int) -> DAG:
    return fan_dag(n, dag_id=f"wide_{n}")


@pytest.mark.parametrize(("build", "limit"), [
    (lambda: chain_dag(50), 400), (lambda: chain_dag(3000), 400), (lambda: fan_dag(300), 400),
    (lambda: _wide(10_000), 400), (nested_dag, 400), (nested_dag, 12), (nested_dag, 5),
    (lambda: grouped_dag(6, 40), 60),
], ids=["chain", "long-chain", "fan", "wide-10000", "nested", "nested-tight", "nested-tiny", "groups"])
def test_node_of_covers_every_task_exactly_once(build: Any, limit: int) -> None:
    dag = build()
    model = GraphModel.from_dag(dag, max_elements=limit)
    assert_every_task_once(model, dag)
    if len(dag.task_ids) > 1000:
        assert model.element_count <= limit


def test_a_stored_definition_gives_the_same_graph_as_the_dag() -> None:
    dag = nested_dag()
    for options in ({}, {"max_elements": 12}, {"collapsed": {"outer"}}):
        live, stored = GraphModel.from_dag(dag, **options), GraphModel.from_dag(dag.describe(), **options)
        assert live.nodes == stored.nodes and live.edges == stored.edges


# -- state ----------------------------------------------------------------------------------------


def test_aggregate_style_shows_the_worst_state_and_counts() -> None:
    model = GraphModel.from_dag(fan_dag(500))
    agg = model.node_of("extract_0")
    states: dict[str, Any] = {f"extract_{i}": "success" for i in range(480)}
    states.update({f"extract_{i}": TaskState.RUNNING for i in range(480, 500)})
    style = model.node_style(agg, states)
    assert style["label"] == "extract ×500 (480✓ 20▶)"
    assert style["background"] == STATE_STYLES["running"]["background"] and style["state"] == "running"
    assert model.state_counts(states)[agg] == {"success": 480, "running": 20}
    states["extract_3"] = "failed"
    assert model.node_style(agg, states)["background"] == STATE_STYLES["failed"]["background"]
    assert model.node_style(agg, {})["label"] == "extract ×500"
    assert model.node_style(agg, {})["state"] == NO_STATUS
    plain = model.node_style("start", {"start": "up_for_retry"})
    assert plain["background"] == STATE_STYLES["up_for_retry"]["background"] and plain["label"] == "start"
    assert model.state_counts({})["start"] == {NO_STATUS: 1}


def test_a_collapsed_group_style_counts_its_tasks() -> None:
    dag = grouped_dag(groups=2, size=4)
    model = GraphModel.from_dag(dag, collapsed={"g1"})
    states = {f"g1.t{i}": "success" for i in range(3)} | {"g1.t3": "upstream_failed"}
    style = model.node_style("group:g1", states)
    assert style["state"] == "upstream_failed" and style["label"] == "g1 ×4 (3✓ 1⚠)"
    # an open box counts everything inside it
    assert model.state_counts({"g0.t0": "queued"})["group:g0"] == {"queued": 1, NO_STATUS: 3}


def test_state_batcher_coalesces_many_threads_into_few_batches() -> None:
    batches: list[dict[str, str]] = []
    sent_at: list[float] = []

    def deliver(batch: dict[str, str]) -> None:
        sent_at.append(time.monotonic())
        batches.append(batch)

    batcher = StateBatcher(deliver, rate=4)
    cycle = ["scheduled", "queued", "running", "up_for_retry", "success", "failed", "none"]

    def change(worker: int, i: int) -> tuple[str, str]:
        # each task goes through every state of the cycle; each thread owns its tasks, so the
        # last state pushed for a task is known
        return f"w{worker}_t{i % 50}", cycle[(i // 50 + worker) % len(cycle)]

    def pusher(worker: int) -> None:
        for i in range(2500):
            batcher.push(*change(worker, i))
            if i % 250 == 249:
                time.sleep(0.1)  # the changes keep coming for about a second

    last = dict(change(worker, i) for worker in range(4) for i in range(2500))
    assert len(last) == 200 and len(set(last.values())) > 1
    threads = [threading.Thread(target=pusher, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    final: dict[str, str] = {}
    for batch in batches:
        final.update(batch)
    assert final == last  # the latest state of every task arrived, nothing was dropped
    # 10,000 pushes went out as a few batches, never two within a quarter of a second of each
    # other (close() delivers what is left at once, so the last one may come sooner)
    assert len(batches) < 100, f"{len(batches)} batches for 10,000 changes"
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:-1])]
    assert len(gaps) >= 2 and all(gap >= 0.25 - 0.02 for gap in gaps), gaps
    batcher.push("late", "failed")  # after close: ignored, the view is gone
    assert all("late" not in b for b in batches)


def test_state_batcher_keeps_to_its_rate_and_survives_a_failing_callback() -> None:
    times: list[float] = []
    seen: list[dict[str, str]] = []

    def callback(batch: dict[str, str]) -> None:
        times.append(time.monotonic())
        seen.append(batch)
        if len(seen) == 1:
            raise RuntimeError("a broken view")

    with StateBatcher(callback, rate=10) as batcher:
        deadline = time.monotonic() + 0.6
        i = 0
        while time.monotonic() < deadline:
            batcher.push(f"t{i % 3}", TaskState.RUNNING if i % 2 else "success")
            i += 1
            time.sleep(0.002)
    assert len(seen) >= 3  # the failure did not stop later batches
    gaps = [b - a for a, b in zip(times, times[1:-1])]  # the last one is close()'s own flush
    assert gaps and min(gaps) >= 0.1 * 0.9
    assert all(state in ("running", "success") for batch in seen for state in batch.values())


def test_state_batcher_flush_delivers_now() -> None:
    seen: list[dict[str, str]] = []
    batcher = StateBatcher(seen.append, rate=0.5)
    batcher.push("a", "running")
    time.sleep(0.05)  # the first change goes out at once: nothing was sent for a while
    batcher.push("a", "success")
    batcher.push("b", None)
    batcher.flush()
    assert seen[-1] == {"a": "success", "b": NO_STATUS} and len(seen) == 2
    batcher.close()
    assert len(seen) == 2
    with pytest.raises(ValueError):
        StateBatcher(seen.append, rate=0)


# -- elements and SVG ---------------------------------------------------------------------------


def test_to_elements_gives_one_cytoscape_element_each_with_positions() -> None:
    model = GraphModel.from_dag(nested_dag(), max_elements=12)
    elements = model.to_elements()
    assert len(elements) == model.element_count
    nodes = [e for e in elements if e["group"] == "nodes"]
    assert all(set(e["position"]) == {"x", "y"} and e["data"]["shape"] for e in nodes)
    assert {e["data"]["id"] for e in nodes} == {n["id"] for n in model.nodes}


def _texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(el.itertext()) for el in root.iter() if el.tag in (f"{SVG}text", f"{SVG}title")]


def test_render_svg_is_valid_xml_with_every_label_and_state_colour() -> None:
    dag = nested_dag()
    model = GraphModel.from_dag(dag, collapsed={"side"})
    svg = render_svg(model, {"start": "failed", "outer.check": "success"}, title="nested run")
    root = ET.fromstring(svg)
    texts = _texts(svg)
    assert "nested run" in texts
    for node in model.nodes:
        assert any(node["label"] in text for text in texts), node["label"]
    shapes = {g.get("data-id"): g for g in root.iter(f"{SVG}g") if g.get("class") == "node"}
    assert set(shapes) == {n["id"] for n in model.nodes if not n["is_compound"]}
    fills = {el.get("fill") for el in shapes["start"] if el.get("fill")}
    assert STATE_STYLES["failed"]["background"] in fills
    assert shapes["start"].get("data-state") == "failed"
    assert STATE_STYLES["success"]["background"] in {el.get("fill") for el in shapes["outer.check"]}
    groups = [g.get("data-id") for g in root.iter(f"{SVG}g") if g.get("class") == "group"]
    assert set(groups) == {"group:outer", "group:outer.inner"}
    assert len([g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]) == len(model.edges)
    assert len([g for g in root.iter(f"{SVG}g") if g.get("class") == "legend-item"]) == len(LEGEND)
    assert int(root.get("width")) > 0 and int(root.get("height")) > 0


def test_render_svg_escapes_ids_labels_and_title() -> None:
    definition = {
        "dag_id": "odd",
        "tasks": [
            {"task_id": "a<b&c>", "kind": "python", "group": None, "upstream": []},
            {"task_id": 'q"uote\x01', "kind": "weird-kind", "group": None, "upstream": ["a<b&c>"]},
        ],
        "groups": {},
    }
    model = GraphModel.from_dag(definition)
    svg = render_svg(model, {"a<b&c>": "running"}, title="<script>&")
    assert "<script>" not in svg and "a<b&c>" not in svg
    texts = _texts(svg)
    assert "<script>&" in texts and any("a<b&c>" in t for t in texts)
    root = ET.fromstring(svg)
    drawn = {g.get("data-id") for g in root.iter(f"{SVG}g") if g.get("class") == "node"}
    assert drawn == {"a<b&c>", 'q"uote\ufffd'}  # a control character XML cannot hold is replaced


def test_render_svg_without_states_draws_no_status() -> None:
    svg = render_svg(GraphModel.from_dag(chain_dag(2)))
    root = ET.fromstring(svg)
    node = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "node")
    assert STATE_STYLES[NO_STATUS]["background"] in {el.get("fill") for el in node}


@pytest.mark.parametrize("limit", [400, 1_000_000], ids=["folded", "every-task"])
def test_render_svg_of_2000_tasks_is_fast(limit: int) -> None:
    rng = random.Random(3)
    with DAG("big") as dag:
        tasks: list[EmptyOperator] = []
        for i in range(2000):
            task = EmptyOperator(task_id=f"t{i}")
            for parent in rng.sample(tasks[-50:], min(2, len(tasks))):
                parent >> task
            tasks.append(task)
    states = {t: rng.choice(["success", "failed", "running"]) for t in dag.task_ids}
    model = GraphModel.from_dag(dag, max_elements=limit)
    svg = render_svg(model, states)
    ET.fromstring(svg)
    assert_every_task_once(model, dag)


def random_layered_dag(tasks: int, width: int = 50, seed: int = 7) -> DAG:
    """No groups, no look-alike neighbours: each task has two random parents in the layer above."""
    rnd = random.Random(seed)
    with DAG(f"layered_{tasks}") as dag:
        previous: list[Any] = []
        for layer in range(tasks // width):
            current = [EmptyOperator(task_id=f"stage{layer}_job{j}") for j in range(width)]
            for task in current:
                for parent in rnd.sample(previous, min(2, len(previous))):
                    parent >> task
            previous = current
    return dag


@pytest.mark.parametrize("tasks", [2000, 10000])
def test_an_irregular_dag_still_folds_under_the_limit_by_stem_and_layer(tasks: int) -> None:
    dag = random_layered_dag(tasks)
    model = GraphModel.from_dag(dag, max_elements=400)
    assert 0 < model.element_count <= 400
    assert_every_task_once(model, dag)
    # the folds follow the stages: one stage per node while stages fit, else consecutive stages
    for node in model.nodes:
        stages = sorted({int(m.split("_")[0].removeprefix("stage")) for m in node["members"]})
        assert stages == list(range(stages[0], stages[-1] + 1)), node["id"]
        if tasks == 2000:
            assert len(stages) == 1, node["id"]
    layer_of = {n["id"]: n["position"][1] for n in model.nodes}
    assert all(layer_of[e["source"]] < layer_of[e["target"]] for e in model.edges)


def test_collapsed_groups_with_the_same_neighbours_fold_together() -> None:
    with DAG("many_groups") as dag:
        first = EmptyOperator(task_id="first")
        for g in range(40):
            with TaskGroup(f"g{g}") as group:
                steps = [EmptyOperator(task_id=f"t{i}") for i in range(50)]
                for a, b in zip(steps, steps[1:]):
                    a >> b
            first >> group
    model = GraphModel.from_dag(dag, max_elements=60)
    assert model.element_count <= 60
    assert_every_task_once(model, dag)
    folded = model.node(model.node_of("g7.t3"))
    assert folded["is_aggregate"] and len(folded["members"]) == 2000
    assert model.node_of("first") == "first"
