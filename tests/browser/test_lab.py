"""nbflow's graph in a real JupyterLab, read back from the live cytoscape instances on the page.

Assertions use cytoscape's own model (node count, ``data('state')``, computed background colour),
never pixels. Each test leaves a screenshot under ``tests/browser/screenshots/``.
"""

from __future__ import annotations

from typing import Any

import pytest

from nbflow.jupyter.graph import OPENED_PARTS

from .conftest import LabPage, fan_source, rgb

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# A DAG of four tasks: extract -> (double, count) -> report.
DAG_CELLS = [
    "from nbflow import DAG, task",
    """\
with DAG("browser_graph", schedule=None) as d:
    @task
    def extract():
        return [1, 2, 3]

    @task
    def double(rows):
        return [r * 2 for r in rows]

    @task
    def count(rows):
        return len(rows)

    @task
    def report(doubled, n):
        return f"{n} rows, total {sum(doubled)}"

    rows = extract()
    report(double(rows), count(rows))
assert sorted(d.task_dict) == ["count", "double", "extract", "report"]""",
    "d",
    'run = d.test()\nassert run.state == "success", run.task_states',
    "d",
]
TASKS = ["count", "double", "extract", "report"]
BEFORE_RUN_CELL = 2  # the first `d`
AFTER_RUN_CELL = 4  # the `d` after the run
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _in_cell(graphs: list[dict[str, Any]], cell: int) -> list[dict[str, Any]]:
    return [g for g in graphs if g["cell"] == cell]


def _run_dag_notebook(lab_page: LabPage) -> list[dict[str, Any]]:
    """Run the DAG notebook; return the cytoscape instances once the after-run graph is all success."""
    lab_page.run_notebook(DAG_CELLS)
    return lab_page.wait_for_cytoscapes(
        lambda graphs: any(
            len(g["nodes"]) == len(TASKS) and all(n["state"] == "success" for n in g["nodes"])
            for g in _in_cell(graphs, AFTER_RUN_CELL)
        ),
        f"a graph of {len(TASKS)} successful tasks under cell {AFTER_RUN_CELL}",
    )


def test_plain_cytoscape_widget_renders(lab_page: LabPage) -> None:
    """The stack itself (Lab, widgets manager, ipycytoscape, Chromium) works, without nbflow."""
    lab_page.run_notebook([
        "import ipycytoscape",
        """\
w = ipycytoscape.CytoscapeWidget()
w.graph.add_graph_from_json({
    "nodes": [{"data": {"id": n}} for n in ("a", "b", "c")],
    "edges": [{"data": {"source": "a", "target": "b"}}, {"data": {"source": "b", "target": "c"}}],
}, directed=True)
w""",
    ])
    graphs = lab_page.wait_for_cytoscapes(
        lambda graphs: len(graphs) == 1 and len(graphs[0]["nodes"]) == 3, "one cytoscape graph of 3 nodes",
    )
    assert graphs[0]["cell"] == 1
    assert sorted(n["id"] for n in graphs[0]["nodes"]) == ["a", "b", "c"]
    assert graphs[0]["edges"] == 2


def test_dag_displays_as_graph_with_run_states(lab_page: LabPage) -> None:
    from nbflow.jupyter.graph import style_for

    graphs = _run_dag_notebook(lab_page)
    success = rgb(style_for("success")["background"])
    for cell in (BEFORE_RUN_CELL, AFTER_RUN_CELL):
        shown = _in_cell(graphs, cell)
        assert len(shown) == 1, f"cell {cell} (`d`) should show one graph: {graphs}"
        assert sorted(n["id"] for n in shown[0]["nodes"]) == TASKS and shown[0]["edges"] == 4
    # the graph shown before the run followed it: it is green too, without being displayed again
    lab_page.wait_for_cytoscapes(
        lambda found: all(n["state"] == "success" and rgb(n["background"]) == success
                          for g in _in_cell(found, BEFORE_RUN_CELL) for n in g["nodes"]),
        f"the graph under cell {BEFORE_RUN_CELL} to turn green as the run succeeded",
    )
    for node in _in_cell(graphs, AFTER_RUN_CELL)[0]["nodes"]:
        assert node["state"] == "success", node
        assert rgb(node["background"]) == success, node
    # fitted to its view once the output area settled: nothing drawn outside it
    def fitted() -> bool:
        fit = lab_page.graph_fit(AFTER_RUN_CELL)
        return bool(fit) and abs(fit["cyWidth"] - fit["width"]) < 2 and fit["x1"] >= 0 and fit["y1"] >= 0 \
            and fit["x2"] <= fit["width"] + 1 and fit["y2"] <= fit["height"] + 1

    lab_page.wait_for(fitted, "the graph to fit its view", timeout=10,
                      details=lambda: str(lab_page.graph_fit(AFTER_RUN_CELL)))
    lab_page.scroll_to_cell(AFTER_RUN_CELL)
    lab_page.screenshot("after-run")


def test_clicking_a_node_shows_its_details(lab_page: LabPage) -> None:
    _run_dag_notebook(lab_page)
    before = lab_page.cell_text(AFTER_RUN_CELL)

    lab_page.click_node(AFTER_RUN_CELL, "report")

    def details_shown() -> bool:
        text = lab_page.cell_text(AFTER_RUN_CELL)
        return "3 rows, total 12" in text and "1 of 1" in text

    lab_page.wait_for(
        details_shown, "the details panel of task 'report'", timeout=15,
        details=lambda: f"output text before the click:\n{before}\nafter:\n{lab_page.cell_text(AFTER_RUN_CELL)}",
    )
    text = lab_page.cell_text(AFTER_RUN_CELL)
    assert "state\tsuccess" in text.replace(" ", "\t") or "success" in text
    assert "UTC" in text  # times name their zone
    lab_page.screenshot("details")


LIVE_CELLS = [
    "import os, threading, time\nfrom nbflow import DAG, task",
    """\
with DAG("browser_live", schedule=None) as live:
    @task
    def wait_for_gate():
        while not os.path.exists("gate"):
            time.sleep(0.05)
        return 1

    @task
    def after(x):
        return x + 1

    after(wait_for_gate())""",
    "live",
    "runner = threading.Thread(target=live.test, daemon=True)\nrunner.start()",
]


def test_a_graph_under_a_cell_changes_while_its_run_goes(lab_page: LabPage) -> None:
    from nbflow.jupyter.graph import style_for

    lab_page.run_notebook(LIVE_CELLS)

    def states(found: list[dict[str, Any]]) -> dict[str, str]:
        graphs = _in_cell(found, 2)
        return {n["id"]: n["state"] for n in graphs[0]["nodes"]} if graphs else {}

    running = lab_page.wait_for_cytoscapes(
        lambda found: states(found).get("wait_for_gate") == "running", "the first task to show running")
    node = next(n for n in _in_cell(running, 2)[0]["nodes"] if n["id"] == "wait_for_gate")
    assert rgb(node["background"]) == rgb(style_for("running")["background"])
    assert states(running)["after"] in ("none", "no_status")
    lab_page.scroll_to_cell(2)
    lab_page.screenshot("running")
    (lab_page.lab.root_dir / "gate").write_text("go")
    lab_page.wait_for_cytoscapes(
        lambda found: set(states(found).values()) == {"success"}, "both tasks to turn green", timeout=30)


BIG_CELLS = [
    "from nbflow import DAG, TaskGroup\nfrom nbflow.operators import EmptyOperator",
    """\
with DAG("browser_big", schedule=None) as big:
    first = EmptyOperator(task_id="first")
    for g in range(8):
        with TaskGroup(f"region{g}") as group:
            for i in range(250):
                EmptyOperator(task_id=f"shard_{i}")
        first >> group
assert len(big.task_dict) == 2001""",
    "import time\nstarted = time.perf_counter()\nbig",
    "run = big.test(executor='inline')\nassert run.state == 'success'",
]


def model_after_opening(region: str) -> Any:
    """What the view should draw once ``region`` of the notebook's big DAG is opened, computed here
    with the same code the kernel runs."""
    from nbflow.jupyter.graph import GraphModel

    namespace: dict[str, Any] = {}
    exec(BIG_CELLS[0] + "\n" + BIG_CELLS[1], namespace)
    dag = namespace["big"]
    own = [t for t, task in dag.task_dict.items() if task.group_id == region]
    return GraphModel.from_dag(dag, expanded={region}, opened=[own])


def test_a_2000_task_dag_shows_folded_and_a_double_click_opens_a_fold(lab_page: LabPage) -> None:
    from nbflow.jupyter.graph import style_for

    path = lab_page.write_notebook(BIG_CELLS)
    lab_page.open_notebook(path)
    lab_page.run_all(timeout=120)
    success = rgb(style_for("success")["background"])
    graphs = lab_page.wait_for_cytoscapes(
        lambda found: any(g["nodes"] and all(n["state"] == "success" for n in g["nodes"]) for g in _in_cell(found, 2)),
        "the big graph, all green after the run", timeout=60,
    )
    graph = _in_cell(graphs, 2)[0]
    # 2,001 tasks arrive as 9 nodes (the first task, each region folded) and 8 edges
    regions = [f"group:region{g}" for g in range(8)]
    assert sorted(n["id"] for n in graph["nodes"]) == sorted(["first", *regions]) and graph["edges"] == 8, graph
    assert all(rgb(n["background"]) == success for n in graph["nodes"])
    assert {n["label"] for n in graph["nodes"] if n["id"] != "first"} == {f"region{g} ×250 (250✓)" for g in range(8)}
    lab_page.click_node(2, "group:region3", double=True)
    # opened: region3's box holding its 250 shards in parts, beside the first task and the other regions
    expected = model_after_opening("region3")
    opened = lab_page.wait_for_cytoscapes(
        lambda found: any(len(g["nodes"]) == len(expected.nodes) for g in _in_cell(found, 2)),
        f"{len(expected.nodes)} nodes after opening region3", timeout=30,
    )
    graph = _in_cell(opened, 2)[0]
    assert sorted(n["id"] for n in graph["nodes"]) == sorted(n["id"] for n in expected.nodes)
    assert graph["edges"] == len(expected.edges)
    parts = [n for n in graph["nodes"] if n["id"].startswith("agg:region3.shard_")]
    assert len(parts) == OPENED_PARTS
    assert all(n["state"] == "success" for n in graph["nodes"]), "the opened nodes keep the run's states"
    lab_page.scroll_to_cell(2)
    lab_page.screenshot("opened")


FAN_CELLS = [
    "from nbflow import DAG, TaskGroup\nfrom nbflow.operators import EmptyOperator",
    fan_source("browser_fan", "fan") + "\nassert len(fan.task_dict) == 2002",
    "fan",
    "run = fan.test(executor='inline')\nassert run.state == 'success'",
]

#: Each node of the graph under a cell as the user sees it: the label cytoscape draws (after
#: wrapping, or cutting with an ellipsis) and whether it lies inside the view.
_DRAWN_JS = """
([panelJs, path, cell]) => {
    const panel = eval('(' + panelJs + ')')(path);
    const area = panel.content.widgets[cell].node;
    const container = Array.from(area.querySelectorAll('div'))
        .find(el => el._cyreg && el._cyreg.cy && !el._cyreg.cy.destroyed());
    if (!container) return null;
    const cy = container._cyreg.cy;
    cy.nodes().forEach(n => n.boundingBox({includeLabels: true}));  // makes cytoscape wrap the labels
    const rect = container.getBoundingClientRect();
    return cy.nodes().map(n => {
        const p = n.renderedPosition();
        const r = n._private.rscratch;
        return {id: n.id(), label: n.data('label'), parent: n.data('parent') || null,
                drawn: r.labelWrapCachedText === undefined ? null : String(r.labelWrapCachedText),
                inView: p.x >= 0 && p.y >= 0 && p.x <= rect.width && p.y <= rect.height};
    });
}
"""


def _drawn(lab_page: LabPage, cell: int) -> list[dict[str, Any]] | None:
    from .conftest import _PANEL_JS

    return lab_page.page.evaluate(_DRAWN_JS, [_PANEL_JS, lab_page.path, cell])


def _whole(node: dict[str, Any]) -> bool:
    """The label is drawn whole: wrapped on lines maybe, never cut short with an ellipsis."""
    drawn = (node["drawn"] or "").replace("\n", " ").replace("\u200b", "")
    return " ".join(drawn.split()) == " ".join(node["label"].split())


def test_a_selected_group_counts_live_and_opening_one_keeps_the_drawing_in_place(lab_page: LabPage) -> None:
    path = lab_page.write_notebook(FAN_CELLS)
    lab_page.open_notebook(path)
    lab_page.run_cells(0, 2, timeout=120)
    groups = [f"group:partition_{g:02d}" for g in range(20)]
    lab_page.wait_for_cytoscapes(
        lambda found: any(sorted(n["id"] for n in g["nodes"]) == sorted(["start", "end", *groups])
                          for g in _in_cell(found, 2)), "the fan-out folded into its 20 groups", timeout=60)
    # a group selected before the run: its details count its 100 tasks, and follow them as they run
    lab_page.click_node(2, "group:partition_03")
    lab_page.wait_for(lambda: "partition_03" in lab_page.cell_text(2) and "100 tasks" in lab_page.cell_text(2),
                      "the group's details", timeout=15, details=lambda: lab_page.cell_text(2))
    assert "success 100" not in " ".join(lab_page.cell_text(2).split())
    lab_page.run_cells(3, 3, timeout=180)
    lab_page.wait_for(lambda: "success 100" in " ".join(lab_page.cell_text(2).split()),
                      "the selected group's details to count 100 successes", timeout=30,
                      details=lambda: lab_page.cell_text(2)[:1500])
    drawn = _drawn(lab_page, 2)
    assert all(_whole(n) for n in drawn), [(n["label"], n["drawn"]) for n in drawn if not _whole(n)]
    lab_page.scroll_to_cell(2)
    lab_page.screenshot("folded")
    before = {n["id"]: n for n in drawn}
    # open a group: its 100 tasks in ten parts with whole labels, the rest in place, `end` in view
    lab_page.click_node(2, "group:partition_07", double=True)
    lab_page.wait_for(lambda: len(_drawn(lab_page, 2) or []) == 22 + 10, "partition_07 to open into ten parts",
                      timeout=30, details=lambda: str([n["id"] for n in _drawn(lab_page, 2) or []]))
    lab_page.page.wait_for_timeout(2000)  # the view fits itself again over the next seconds
    drawn = _drawn(lab_page, 2)
    parts = [n for n in drawn if n["parent"] == "group:partition_07"]
    assert [p["label"] for p in parts] == [f"load_0{k}0–0{k}9 ×10 (10✓)" for k in range(10)]
    assert all(_whole(n) for n in drawn), [(n["label"], n["drawn"]) for n in drawn if not _whole(n)]
    shown = {n["id"]: n for n in drawn}
    assert shown["end"]["inView"] and shown["start"]["inView"], shown["end"]
    assert all(shown[i]["inView"] for i in before if i in shown), [i for i in before if i in shown and not shown[i]["inView"]]
    lab_page.scroll_to_cell(2)
    lab_page.screenshot("opened")


DASHBOARD_CELLS = [
    "%load_ext nbflow",
    """\
%%dag browser_board --schedule "0 6 * * *" --timezone Europe/Paris --start 2024-01-01 --tags demo
from nbflow import task

@task
def one():
    return 1

one()""",
    "browser_board.test()",
    "%nbflow dashboard",
]


def test_the_dashboard_lists_dags_and_opens_a_graph(lab_page: LabPage) -> None:
    path = lab_page.write_notebook(DASHBOARD_CELLS)
    lab_page.open_notebook(path)
    lab_page.run_all(timeout=90)

    def listed() -> bool:
        text = lab_page.cell_text(3)
        return "browser_board" in text and "demo" in text

    lab_page.wait_for(listed, "the dashboard to list browser_board", timeout=20,
                      details=lambda: lab_page.cell_text(3))
    text = lab_page.cell_text(3)
    assert "demo" in text and "success" in text
    assert "at 06:00 every day (Europe/Paris)" in text  # the schedule in words
    lab_page.page.locator(".jp-Cell").nth(3).get_by_role("button", name="browser_board").click()
    lab_page.wait_for_cytoscapes(
        lambda found: any(g["nodes"] and g["nodes"][0]["id"] == "one" for g in _in_cell(found, 3)),
        "the DAG's graph under the dashboard", timeout=20,
    )
    def centred() -> bool:  # fitted to its view, though it was shown inside the dashboard
        fit = lab_page.graph_fit(3)
        return bool(fit) and abs((fit["x1"] + fit["x2"]) / 2 - fit["width"] / 2) < fit["width"] * 0.05

    lab_page.wait_for(centred, "the graph under the dashboard to be fitted", timeout=10,
                      details=lambda: str(lab_page.graph_fit(3)))
    lab_page.scroll_to_cell(3)
    lab_page.screenshot("dashboard")
