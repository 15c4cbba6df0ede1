"""The notebook widgets, in process: ipywidgets needs no front end (without a kernel its comms send
nothing), so each test builds the real widgets, drives them as a click would, and reads their state.
Message counts come from a comm that counts what it would send."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nbflow import DAG, TaskGroup
from nbflow.errors import InvalidRequestError
from nbflow.jupyter.graph import NO_STATUS, OPENED_PARTS, GraphModel, style_for
from nbflow.jupyter.cyto import cytoscape_style
from nbflow.jupyter.graph_widget import DagGraph
from nbflow.operators import BashOperator, EmptyOperator, PythonOperator
from nbflow.engine.runs import run_dag
from nbflow.store import Store

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def messages(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the comm messages widgets send (``comm_open`` per widget, ``comm_msg`` per update)."""
    import comm
    from comm.base_comm import BaseComm

    counts: Counter[str] = Counter()

    class Counting(BaseComm):
        def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                        **keys: Any) -> None:
            counts[msg_type] += 1

    monkeypatch.setattr(comm, "create_comm", lambda **kwargs: Counting(**kwargs))
    return counts


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def grouped_dag(dag_id: str = "grouped") -> DAG:
    with DAG(dag_id, timezone="UTC") as d:
        start = EmptyOperator(task_id="start")
        with TaskGroup("load") as load:
            a = PythonOperator(task_id="a", python_callable=lambda: 1)
            b = BashOperator(task_id="b", bash_command="echo b")
            a >> b
        end = EmptyOperator(task_id="end")
        start >> load >> end
    return d


def fan_dag(dag_id: str = "fan", width: int = 30) -> DAG:
    with DAG(dag_id, timezone="UTC") as d:
        start = EmptyOperator(task_id="start")
        end = EmptyOperator(task_id="end")
        for i in range(width):
            start >> EmptyOperator(task_id=f"part_{i}") >> end
    return d


def node_ids(graph: DagGraph) -> list[str]:
    return [node.data["id"] for node in graph.cytoscape.graph.nodes]


# -- building --------------------------------------------------------------------------------------


def test_one_cytoscape_node_per_model_node_and_the_edges_in_one_build(nbflow_home: Path, messages: Counter[str]) -> None:
    d = grouped_dag()
    model = GraphModel.from_dag(d, max_elements=400)
    messages.clear()
    graph = DagGraph(d, load=False)
    elements = len(model.nodes) + len(model.edges)
    assert sorted(node_ids(graph)) == sorted(n["id"] for n in model.nodes)
    assert len(node_ids(graph)) == len(set(node_ids(graph)))
    edges = sorted((e.data["source"], e.data["target"]) for e in graph.cytoscape.graph.edges)
    assert edges == sorted((e["source"], e["target"]) for e in model.edges)
    # compound box for the open group, its members inside it, positions from the model, preset layout
    assert graph.node_data("group:load")["is_compound"] is True
    assert graph.node_data("load.a")["parent"] == "group:load"
    drawn = {n.data["id"]: n.position for n in graph.cytoscape.graph.nodes}
    assert all(drawn[n["id"]] == {"x": n["position"][0], "y": n["position"][1]} for n in model.nodes)
    assert graph.cytoscape.cytoscape_layout["name"] == "preset"
    # one build: each element goes out with its comm_open, the graph's lists in a single update
    graph_updates = messages["comm_msg"]
    assert messages["comm_open"] >= elements
    assert graph_updates <= 12, f"{graph_updates} updates for {elements} elements: not one build"


def test_the_stylesheet_maps_every_state_and_kind_and_draws_arrows() -> None:
    sheet = {rule["selector"]: rule["style"] for rule in cytoscape_style()}
    for state in ("success", "failed", "running", "upstream_failed", NO_STATUS):
        assert sheet[f'node[state = "{state}"]']["background-color"] == style_for(state)["background"]
    assert sheet['node[kind = "bash"]']["shape"] and sheet['node[kind = "notebook"]']["shape"]
    assert sheet["edge"]["target-arrow-shape"] == "triangle"
    assert "node[?is_compound]" in sheet


def test_set_states_reaches_node_data_after_flush_with_aggregate_counts(nbflow_home: Path, messages: Counter[str]) -> None:
    d = fan_dag(width=30)
    graph = DagGraph(d, max_elements=20, load=False)
    aggregate = graph.model.node_of("part_0")
    assert aggregate.startswith("agg:") and graph.model.node(aggregate)["is_aggregate"]
    messages.clear()
    states = {"start": "success", **{f"part_{i}": "success" for i in range(20)},
              **{f"part_{i}": "running" for i in range(20, 30)}}
    graph.set_states(states)
    graph.flush()
    assert graph.node_data("start")["state"] == "success"
    data = graph.node_data(aggregate)
    assert data["state"] == "running"  # the worst state shows
    assert data["counts"] == {"success": 20, "running": 10}
    assert "×30" in data["label"] and "20✓" in data["label"] and "10▶" in data["label"]
    assert graph.node_data("end")["state"] == NO_STATUS
    # 31 task changes, two drawn nodes changed: two messages, not 31
    assert messages["comm_msg"] <= 2 + 2, dict(messages)
    messages.clear()
    graph.set_states({"start": "success"})  # no change: nothing is sent
    graph.flush()
    assert messages["comm_msg"] == 0


def test_a_2000_task_dag_builds_with_at_most_max_elements(nbflow_home: Path, messages: Counter[str]) -> None:
    with DAG("huge", timezone="UTC") as d:
        first = EmptyOperator(task_id="first")
        for g in range(40):
            with TaskGroup(f"g{g}"):
                chain = [EmptyOperator(task_id=f"t{i}") for i in range(50)]
                for up, down in zip(chain, chain[1:]):
                    up >> down
            first >> chain[0]
    assert len(d.task_dict) == 2001
    for limit in (400, 60):
        messages.clear()
        graph = DagGraph(d, max_elements=limit, load=False)
        drawn = len(graph.cytoscape.graph.nodes) + len(graph.cytoscape.graph.edges)
        assert 0 < drawn <= limit
        assert messages["comm_open"] < limit + 60  # the elements and a few dozen toolbar widgets
    graph.set_states({tid: "success" for tid in d.task_dict})
    graph.flush()
    assert {graph.node_data(n)["state"] for n in node_ids(graph)} == {"success"}


def regions_dag(regions: int = 8, shards: int = 250) -> DAG:
    with DAG("regions", timezone="UTC") as d:
        first = EmptyOperator(task_id="first")
        for g in range(regions):
            with TaskGroup(f"region{g}") as region:
                for i in range(shards):
                    EmptyOperator(task_id=f"shard_{i}")
            first >> region
    return d


def test_a_double_click_opens_a_folded_group_and_close_folds_it_again(nbflow_home: Path,
                                                                       messages: Counter[str]) -> None:
    d = regions_dag()
    graph = DagGraph(d, load=False, live=False)
    assert node_ids(graph) == ["first", *(f"group:region{g}" for g in range(8))]
    graph.set_states({t: "success" for t in d.task_dict})
    graph.flush()
    messages.clear()
    click(graph, "group:region3")
    assert graph.selected_node == "group:region3" and graph.selected_task is None
    click(graph, "group:region3")  # the second click of a double click
    assert "opened region3" in graph.status
    drawn = node_ids(graph)
    # the box and its shards in ten parts, beside the first task and the seven other regions
    assert "group:region3" in drawn and len(drawn) == 9 + OPENED_PARTS and "region3.shard_7" not in drawn
    assert graph.model.node("group:region3")["is_compound"]
    part = graph.model.node_of("region3.shard_7")
    assert part.startswith("agg:region3.shard_0~") and graph.model.node(part)["parent"] == "group:region3"
    assert len(drawn) + len(graph.cytoscape.graph.edges) <= graph.max_elements
    # the states came along: every drawn node is green, no state was lost in the redraw
    assert {graph.node_data(n)["state"] for n in drawn if not graph.node_data(n).get("is_compound")} == {"success"}
    # redrawing costs the new elements and closes the old ones, nothing per task
    assert messages["comm_open"] < 3 * graph.max_elements
    graph.expand(part)  # a part opens into its tasks
    assert graph.model.node_of("region3.shard_7") == "region3.shard_7"
    graph.collapse("region3.shard_7")  # close: the part folds again
    assert graph.model.node_of("region3.shard_7").startswith("agg:")
    graph.collapse("group:region3")  # close the box: back to one node
    assert graph.model.node_of("region3.shard_7") == "group:region3"
    with pytest.raises(InvalidRequestError, match="DAG 'regions'.*single task"):
        graph.expand("first")
    with pytest.raises(InvalidRequestError, match="draws no node 'group:nope'"):
        graph.expand("group:nope")
    click(graph, "group:nope")  # a click on something gone: an error line, not a traceback
    assert "draws no node" in graph.details.body.value


def partitions_dag(groups: int = 20, tasks: int = 100) -> DAG:
    """start -> 20 groups of 100 look-alike tasks -> end: the 2,002-task fan-out of a data scientist."""
    with DAG("partitions", timezone="UTC") as d:
        start, end = EmptyOperator(task_id="start"), EmptyOperator(task_id="end")
        for g in range(groups):
            with TaskGroup(f"partition_{g:02d}") as group:
                for i in range(tasks):
                    PythonOperator(task_id=f"load_{i:03d}", python_callable=print)
            start >> group >> end
    return d


def test_opening_a_group_grows_it_in_place_and_keeps_every_other_node_where_it_was(nbflow_home: Path) -> None:
    d = partitions_dag()
    graph = DagGraph(d, load=False, live=False)
    before = {n["id"]: n["position"] for n in graph.model.nodes}
    assert set(before) == {"start", "end", *(f"group:partition_{g:02d}" for g in range(20))}
    graph.expand("group:partition_07")
    model = graph.model
    parts = [n for n in model.nodes if n["parent"] == "group:partition_07"]
    # 100 tasks in ten parts of ten, each named by its first and last task, short enough to read
    assert [p["label"] for p in parts] == [f"load_0{k}0–0{k}9 ×10" for k in range(10)]
    assert len(parts) == OPENED_PARTS
    after = {n["id"]: n["position"] for n in model.nodes}
    box = model.node("group:partition_07")
    xs, ys = [p["position"][0] for p in parts], [p["position"][1] for p in parts]
    # `start` and the groups above or in the opened group's row stay where they were, the parts go
    # right under that row, everything below moves down by the same amount, `end` stays below all
    ox, oy = before["group:partition_07"]
    assert after["start"] == before["start"]
    shift = {round(after[n][1] - before[n][1], 3) for n in before if before[n][1] > oy + 30}
    assert len(shift) == 1 and shift.pop() > 0
    assert after["end"][1] > max(ys) > min(ys) > oy
    assert all(after[n] == before[n] for n in before if before[n][1] <= oy + 30 and n != "group:partition_07")
    lows = [before[n][1] for n in before if before[n][1] > oy + 30]
    assert min(after[n][1] for n in before if before[n][1] > oy + 30) > max(ys) + 40 and lows
    # the drawing grows down only: no wider than before
    width = lambda pos: max(x for x, _ in pos.values()) - min(x for x, _ in pos.values())  # noqa: E731
    assert width(after) <= width(before)
    assert min(xs) <= box["position"][0] <= max(xs)
    # the layout is the one from_dag gives for the same choices when the view is not kept
    fresh = graph.unfolding.model()
    assert sorted(n["id"] for n in fresh.nodes) == sorted(after)


def test_a_selected_groups_details_follow_the_states_of_its_tasks(nbflow_home: Path) -> None:
    d = regions_dag(regions=2, shards=100)
    graph = DagGraph(d, load=False, live=False, max_elements=20)
    click(graph, "group:region1")
    assert graph.selected_node == "group:region1" and graph.selected_task is None
    assert "100" in graph.details.body.value and "success" not in graph.details.body.value
    graph.set_states({f"region1.shard_{i}": "success" for i in range(100)})
    graph.flush()
    text = graph.details.body.value
    assert "success" in text and "no status" not in text, text


def test_focus_shows_a_task_and_its_neighbours_and_whole_dag_undoes_it(nbflow_home: Path) -> None:
    with DAG("long", timezone="UTC") as d:
        steps = [EmptyOperator(task_id=f"step_{i}") for i in range(60)]
        for a, b in zip(steps, steps[1:]):
            a >> b
    graph = DagGraph(d, load=False, live=False, max_elements=40)
    assert graph.model.node_of("step_30").startswith("agg:")  # the middle of the chain is folded
    graph.select("step_0")
    graph.focus("step_30")
    drawn = node_ids(graph)
    assert {"step_28", "step_29", "step_30", "step_31", "step_32"} <= set(drawn)
    assert "focus:upstream" in drawn and "focus:downstream" in drawn
    graph.toolbar.whole_button.click()
    assert graph.focused is None and graph.model.node_of("step_30").startswith("agg:")


# -- live ------------------------------------------------------------------------------------------


def test_a_run_in_this_process_shows_live_even_when_its_task_runs_inline(nbflow_home: Path) -> None:
    from nbflow.jupyter.live import hub

    gate = threading.Event()

    def slow() -> int:
        assert gate.wait(20)
        return 7

    with DAG("live", timezone="UTC") as d:
        PythonOperator(task_id="slow", python_callable=slow) >> EmptyOperator(task_id="after")
    graph = DagGraph(d)
    assert graph.run_id is None and graph.following
    # inline: the task blocks the thread that would write the store, so only the notices can tell
    runner = threading.Thread(target=lambda: run_dag(d, executor="inline"))
    runner.start()
    try:
        def shows_running() -> bool:
            graph.flush()
            return graph.run_id is not None and graph.node_data("slow")["state"] == "running"

        wait_until(shows_running)
        assert graph.node_data("after")["state"] in ("none", NO_STATUS)
        # the store has not heard of it yet, and polling it (every second) must not undo what the
        # run said: while its driver lives, the notices win
        assert stored_states("live", graph.run_id)["slow"] != "running"
        polls = hub().polls
        wait_until(lambda: hub().polls >= polls + 3)
        graph.flush()
        assert graph.node_data("slow")["state"] == "running"
        graph.show_run(graph.run_id)  # loading the run from the store again keeps what the run said
        assert graph.node_data("slow")["state"] == "running"
    finally:
        gate.set()
        runner.join(30)

    def shows_success() -> bool:
        graph.flush()
        return graph.states == {"slow": "success", "after": "success"}

    wait_until(shows_success)
    assert graph.node_data("after")["state"] == "success"
    assert [value for _, value in graph.toolbar.runs.options] == [graph.run_id]
    assert "success" in graph.toolbar.runs.options[0][0]


DAG_FILE = """\
import os, time
from nbflow import DAG, task

with DAG("elsewhere", schedule=None, timezone="UTC") as d:
    @task
    def wait_for_gate():
        deadline = time.monotonic() + 30
        while not os.path.exists(os.environ["GATE_FILE"]):
            assert time.monotonic() < deadline, "no gate"
            time.sleep(0.02)
        return 1

    @task
    def after(x):
        return x + 1

    after(wait_for_gate())
"""


def test_a_run_driven_by_another_process_reaches_the_view_through_the_store(nbflow_home: Path,
                                                                           tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from nbflow.engine.discovery import load_file
    from nbflow.jupyter.live import hub

    file = tmp_path / "elsewhere.py"
    file.write_text(DAG_FILE)
    gate = tmp_path / "gate"
    (d,), failure = load_file(file)
    assert failure is None
    graph = DagGraph(d)
    assert graph.following and graph.run_id is None
    env = {**os.environ, "GATE_FILE": str(gate)}
    output = (tmp_path / "other.out").open("wb")
    other = subprocess.Popen([sys.executable, "-m", "nbflow", "dags", "test", "elsewhere", "-f", str(file)],
                             env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        def shows_running() -> bool:
            graph.flush()
            return graph.run_id is not None and graph.node_data("wait_for_gate")["state"] == "running"

        wait_until(shows_running, timeout=30)
        polls = hub().polls
        gate.write_text("go")
        assert other.wait(30) == 0, (tmp_path / "other.out").read_text()
    finally:
        gate.write_text("go")
        if other.poll() is None:
            other.kill()
            other.wait()
        output.close()

    def shows_success() -> bool:
        graph.flush()
        return graph.states == {"wait_for_gate": "success", "after": "success"}

    wait_until(shows_success, timeout=15)
    assert hub().polls > polls  # it was the store that told


def test_picking_a_past_run_stops_following_and_follow_goes_back_to_the_newest(nbflow_home: Path) -> None:
    with DAG("pin", timezone="UTC") as d:
        PythonOperator(task_id="one", python_callable=lambda: 1)
    first = run_dag(d, executor="inline", logical_date="2024-03-01T10:00:00+00:00")
    second = run_dag(d, executor="inline", logical_date="2024-03-02T10:00:00+00:00")
    graph = DagGraph(d)
    assert graph.run_id == second.run_id and graph.following
    graph.toolbar.runs.value = first.run_id  # the user picks an older one: the view stays on it
    assert graph.run_id == first.run_id
    assert not graph.following and not graph.toolbar.follow_button.value
    third = run_dag(d, executor="inline", logical_date="2024-03-03T10:00:00+00:00")
    time.sleep(0.3)
    assert graph.run_id == first.run_id
    graph.toolbar.follow_button.value = True
    wait_until(lambda: graph.run_id == third.run_id)
    assert graph.following


def test_run_now_runs_in_a_thread_and_the_graph_follows_it(nbflow_home: Path) -> None:
    with DAG("now", timezone="UTC") as d:
        PythonOperator(task_id="one", python_callable=lambda: 1)
    graph = DagGraph(d)
    graph.toolbar.run_button.click()
    assert graph._runner is not None
    graph._runner.join(30)

    def shows_success() -> bool:
        graph.flush()
        return graph.states == {"one": "success"}

    wait_until(shows_success)
    with Store.open() as store:
        assert [r["run_type"] for r in store.list_runs("now")] == ["manual"]
    assert graph.run_id == store_run_ids("now")[0]


def store_run_ids(dag_id: str) -> list[str]:
    with Store.open() as store:
        return [r["run_id"] for r in store.list_runs(dag_id)]


# -- details ---------------------------------------------------------------------------------------


def details_dag() -> DAG:
    with DAG("details", timezone="UTC") as d:
        talk = BashOperator(task_id="talk", bash_command="for i in $(seq 1 60); do echo line-$i; done")
        big = PythonOperator(task_id="big", python_callable=lambda: list(range(1000)))
        talk >> big
    return d


def click(graph: DagGraph, node_id: str) -> None:
    """What the browser sends when a node is clicked."""
    graph.cytoscape._handle_interaction(graph.cytoscape, {"widget": "node", "event": "click",
                                                          "data": {"data": {"id": node_id}}}, [])


def test_clicking_a_node_shows_state_log_tail_and_output(nbflow_home: Path) -> None:
    d = details_dag()
    run = run_dag(d, executor="inline")
    graph = DagGraph(d)
    assert graph.run_id == run.run_id  # the latest run shows by default
    click(graph, "talk")
    html = graph.details.body.value
    assert graph.selected_task == "talk"
    assert "data-state='success'" in html and "1 of 1" in html
    log_lines = Path(graph.details.last_info["log_path"]).read_text().splitlines()
    assert len(log_lines) > 45
    tail = log_lines[-40:]
    assert all(line.rstrip() in html for line in tail if line.strip())  # the last 40 lines
    assert "line-60" in html and f"{log_lines[-41]}\n" not in html
    assert "UTC" in html  # times name their zone
    click(graph, "big")
    html = graph.details.body.value
    output = html.split("<pre class='nbflow-output'>")[1].split("</pre>")[0]
    assert output.startswith("[0, 1, 2, 3") and output.endswith("498, 499, ...]")  # the stored, cut preview
    assert "list · json · 3,891 bytes" in html


def test_the_details_show_the_peak_memory_of_a_try_run_in_a_worker_process(nbflow_home: Path) -> None:
    d = details_dag()
    run_dag(d, executor="process")
    graph = DagGraph(d)
    click(graph, "big")
    peak = graph.details.last_info["peak_rss"]
    assert peak > 4 * 2**20  # a Python interpreter's worth at least
    assert f"<th style='text-align:left;padding-right:8px'>peak memory</th><td>{peak / 2**20:.0f} MiB</td>" in graph.details.body.value


def test_a_failing_click_shows_an_error_line_and_the_view_keeps_working(nbflow_home: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    d = details_dag()
    run_dag(d, executor="inline")
    graph = DagGraph(d)
    click(graph, "no-such-node")
    assert "nbflow-error" in graph.details.body.value

    import nbflow.jupyter.details as details

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as patch:
        patch.setattr(details, "collect_task_details", broken)
        click(graph, "talk")
        assert "disk on fire" in graph.details.body.value and "nbflow-error" in graph.details.body.value
    click(graph, "talk")
    assert "line-60" in graph.details.body.value


def test_a_notebook_task_shows_its_cell_progress_and_its_report_and_notebook_inline(nbflow_home: Path,
                                                                                    tmp_path: Path) -> None:
    import nbformat
    from nbformat import v4

    from nbflow.operators import NotebookOperator

    nb = v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                  "language": "python"}})
    params = v4.new_code_cell("rows = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, v4.new_code_cell("print('rows are', rows)"), v4.new_code_cell("total = rows * 2\ntotal")]
    nbformat.write(nb, tmp_path / "report.ipynb")
    with DAG("nbdetails", timezone="UTC") as d:
        NotebookOperator(task_id="report", notebook=str(tmp_path / "report.ipynb"), parameters={"rows": 21},
                         report="html")
    run = run_dag(d, executor="inline")
    assert run.state == "success", run.errors
    graph = DagGraph(d)
    click(graph, "report")
    html = graph.details.body.value
    info = graph.details.last_info
    cells = len(nbformat.read(info["notebook"], as_version=4).cells)  # with the injected parameters
    assert info["progress"]["cell"] == info["progress"]["cells"] == cells
    assert f"cell {cells}/{cells}" in html and info["notebook"].endswith(".ipynb") and info["report"].endswith(".html")
    assert graph.details.report_button.layout.display == "" and graph.details.notebook_button.layout.display == ""
    graph.details.report_button.click()
    assert "<iframe" in graph.details.report.value and "rows are 21" in graph.details.report.value
    graph.details.notebook_button.click()
    assert "sandbox" in graph.details.report.value and "42" in graph.details.report.value


def test_clicking_a_folded_node_lists_its_tasks_and_counts(nbflow_home: Path) -> None:
    d = fan_dag(width=12)
    run_dag(d, executor="inline")
    graph = DagGraph(d, max_elements=12)
    aggregate = graph.model.node_of("part_3")
    click(graph, aggregate)
    assert graph.selected_task is None and graph.selected_node == aggregate
    html = graph.details.body.value
    assert "12 tasks" in html and "part_3" in html and "data-state='success'" in html


# -- toolbar ---------------------------------------------------------------------------------------


def stored_states(dag_id: str, run_id: str) -> dict[str, str]:
    with Store.open() as store:
        row = store.get_run(dag_id, run_id)
        return {ti["task_id"]: ti["state"] for ti in store.get_task_instances(row["id"])}


def test_toolbar_clear_and_mark_go_to_the_store(nbflow_home: Path) -> None:
    with DAG("ctl", timezone="UTC") as d:
        a = PythonOperator(task_id="a", python_callable=lambda: 1)
        b = PythonOperator(task_id="b", python_callable=lambda: 2)
        c = PythonOperator(task_id="c", python_callable=lambda: 3)
        a >> b >> c
    run = run_dag(d, executor="inline")
    graph = DagGraph(d)
    click(graph, "b")
    graph.toolbar.clear_button.click()
    assert stored_states("ctl", run.run_id) == {"a": "success", "b": "none", "c": "success"}
    graph.flush()
    assert graph.node_data("b")["state"] == "none"
    graph.toolbar.downstream.value = True
    graph.toolbar.failed_button.click()
    assert stored_states("ctl", run.run_id) == {"a": "success", "b": "failed", "c": "failed"}
    graph.toolbar.downstream.value = False
    graph.toolbar.success_button.click()
    assert stored_states("ctl", run.run_id) == {"a": "success", "b": "success", "c": "failed"}
    graph.flush()
    assert graph.node_data("b")["state"] == "success" and graph.node_data("c")["state"] == "failed"
    assert "marked 1 task(s) success" in graph.toolbar.status.value


def test_toolbar_without_a_selection_says_so_and_changes_nothing(nbflow_home: Path) -> None:
    d = details_dag()
    run = run_dag(d, executor="inline")
    graph = DagGraph(d)
    graph.toolbar.success_button.click()
    assert "select a task first" in graph.details.body.value
    assert stored_states("details", run.run_id) == {"talk": "success", "big": "success"}


def test_toolbar_pause_toggle_pauses_the_dag(nbflow_home: Path) -> None:
    d = details_dag()
    graph = DagGraph(d)  # never run: the toggle records the DAG first
    graph.toolbar.pause_toggle.value = True
    with Store.open() as store:
        assert store.get_dag("details")["is_paused"] is True
    graph.toolbar.pause_toggle.value = False
    with Store.open() as store:
        assert store.get_dag("details")["is_paused"] is False


def test_run_picker_lists_the_runs_and_loads_a_past_one(nbflow_home: Path) -> None:
    mode = ["fail"]

    def flaky() -> int:
        if mode[0] == "fail":
            raise ValueError("not today")
        return 1

    with DAG("picker", timezone="UTC") as d:
        PythonOperator(task_id="flaky", python_callable=flaky) >> EmptyOperator(task_id="after")
    first = run_dag(d, executor="inline", logical_date="2024-03-01T10:00:00+00:00")
    mode[0] = "ok"
    second = run_dag(d, executor="inline", logical_date="2024-03-02T10:00:00+00:00")
    graph = DagGraph(d)
    options = graph.toolbar.runs.options
    assert [value for _, value in options] == [second.run_id, first.run_id]
    # "manual · 1 Mar 10:00 · failed": its type, its logical date (the machine's zone is UTC here), its state
    assert options[1][0].endswith(" · 1 Mar 10:00 · failed") and "__" not in options[1][0]
    # the times for nbflow's Lab extension, which writes them in the browser's zone, the id on hover
    assert "2024-03-01T10:00:00Z" in graph.toolbar.run_times.value and first.run_id in graph.toolbar.run_times.value
    assert graph.states == {"flaky": "success", "after": "success"}
    graph.toolbar.runs.value = first.run_id
    assert graph.run_id == first.run_id
    assert graph.states == {"flaky": "failed", "after": "upstream_failed"}
    assert graph.node_data("flaky")["state"] == "failed"


# -- runs grid -------------------------------------------------------------------------------------


def test_runs_grid_has_a_cell_per_run_and_task_coloured_by_state(nbflow_home: Path) -> None:
    from nbflow.jupyter.runs_grid import RunsGrid

    mode = ["fail"]

    def flaky() -> int:
        if mode[0] == "fail":
            raise ValueError("no")
        return 1

    with DAG("grid", timezone="UTC") as d:
        PythonOperator(task_id="flaky", python_callable=flaky) >> EmptyOperator(task_id="after")
    first = run_dag(d, executor="inline", logical_date="2024-03-01")
    mode[0] = "ok"
    second = run_dag(d, executor="inline", logical_date="2024-03-02")
    graph = DagGraph(d)
    grid = RunsGrid(d, limit=25, graph=graph)
    assert len(grid.cells) == 2 * 2
    assert [r["run_id"] for r in grid.runs] == [first.run_id, second.run_id]  # oldest on the left
    assert grid.cell(first.run_id, "flaky").style.button_color == style_for("failed")["background"]
    assert grid.cell(first.run_id, "after").style.button_color == style_for("upstream_failed")["background"]
    assert grid.cell(second.run_id, "flaky").style.button_color == style_for("success")["background"]
    assert graph.run_id == second.run_id
    grid.cell(first.run_id, "after").click()
    assert graph.run_id == first.run_id and graph.selected_task == "after"
    assert graph.states["flaky"] == "failed"


def test_the_graph_toolbar_shows_the_runs_grid_below_the_graph(nbflow_home: Path) -> None:
    with DAG("gridded", timezone="UTC") as d:
        PythonOperator(task_id="a", python_callable=lambda: 1) >> EmptyOperator(task_id="b")
    first = run_dag(d, executor="inline", logical_date="2024-03-01")
    second = run_dag(d, executor="inline", logical_date="2024-03-02")
    graph = DagGraph(d)
    assert graph.grid is None
    graph.toolbar.grid_toggle.value = True
    assert graph.grid is not None and graph.grid in graph.children
    assert [r["run_id"] for r in graph.grid.runs] == [first.run_id, second.run_id]
    graph.grid.cell(first.run_id, "b").click()
    assert graph.run_id == first.run_id and graph.selected_task == "b" and not graph.following
    graph.toolbar.grid_toggle.value = False
    assert graph.grid not in graph.children


def test_runs_grid_folds_a_big_dag_into_few_rows(nbflow_home: Path) -> None:
    from nbflow.jupyter.runs_grid import RunsGrid

    d = fan_dag("widegrid", width=200)
    run = run_dag(d, executor="inline")
    grid = RunsGrid(d, max_rows=10)
    assert 0 < len(grid.rows) <= 10
    assert len(grid.cells) == len(grid.rows)
    assert grid.cell(run.run_id, "part_150").style.button_color == style_for("success")["background"]


# -- dashboard -------------------------------------------------------------------------------------


def test_dashboard_lists_dags_and_import_errors_and_toggles_pause(nbflow_home: Path) -> None:
    import nbflow
    from nbflow.jupyter.dashboard import Dashboard

    d = details_dag()
    run_dag(d, executor="inline")
    other = fan_dag("other", width=3)
    run_dag(other, executor="inline")
    with Store.open() as store:
        store.record_import_error("/dags/broken.py", "SyntaxError: invalid syntax", "Traceback: line 3")
    board = nbflow.dashboard()
    assert isinstance(board, Dashboard)
    assert sorted(board.rows) == ["details", "other"]
    row = board.rows["details"]
    assert row["last_state"] == "success" and row["failed"] == 0 and row["recent"] == ["success", "success"]
    assert "/dags/broken.py" in board.errors.value and "SyntaxError" in board.errors.value
    switch = board.toggles["other"]
    assert switch.value is True and switch.description == "active"  # a switch, on while active: no ▶
    switch.value = False
    with Store.open() as store:
        assert store.get_dag("other")["is_paused"] is True and store.get_dag("details")["is_paused"] is False
    assert switch.description == "paused"
    switch.value = True
    with Store.open() as store:
        assert store.get_dag("other")["is_paused"] is False
    board.buttons["details"].click()
    assert board.graph is not None and board.graph.dag is d and board.graph in board.graph_area.children


def test_dashboard_opens_a_dag_from_its_file(nbflow_home: Path, tmp_path: Path) -> None:
    from nbflow.engine.discovery import collect
    from nbflow.engine.sync import sync
    from nbflow.jupyter.dashboard import Dashboard

    file = tmp_path / "filed.py"
    file.write_text("from nbflow import DAG\nfrom nbflow.operators import EmptyOperator\n"
                    "with DAG('filed_dag', schedule='@daily', start_date='2024-01-01', timezone='UTC') as d:\n"
                    "    EmptyOperator(task_id='x')\n")
    bag = collect([file])
    with Store.open() as store:
        sync(bag, store)
    del bag
    board = Dashboard()
    # the DAG is not built in this process: the words come from what the store recorded
    assert board.rows["filed_dag"]["schedule"] == "at 00:00 every day (UTC)"
    assert board.rows["filed_dag"]["next_run"] is not None
    graph = board.open_dag("filed_dag")
    assert graph.dag.dag_id == "filed_dag" and node_ids(graph) == ["x"]


def test_dashboard_marks_dags_of_other_kernels_and_shows_the_sidebars_next_run(nbflow_home: Path, tmp_path: Path) -> None:
    """DAGs another kernel defined: one from a notebook (opened by loading its cells; the row names
    it) and one from an interactive session (no button: the row says where it lives). The next run
    is the one the Lab sidebar shows (rebuilt from the stored schedule), not "-"."""
    import gc

    import ipywidgets as w

    from nbflow.dag import DAG
    from nbflow.engine.sync import sync_dag
    from nbflow.jupyter.dashboard import Dashboard
    from nbflow.jupyter.server.dags import upcoming
    from nbflow.operators import EmptyOperator

    notebook = tmp_path / "sales.ipynb"
    notebook.write_text("{}")  # saved without the DAG's cell: loading it does not build the DAG
    with DAG("sales_etl", schedule="0 6 * * *", start_date="2024-01-01", timezone="Europe/Berlin") as etl:
        EmptyOperator(task_id="load")
    etl.fileloc = str(notebook)
    with DAG("scratch", schedule=None, start_date="2024-01-01") as scratch:
        EmptyOperator(task_id="x")
    scratch.fileloc = "interactive"
    with Store.open() as store:
        sync_dag(store, etl, source_kind="notebook")
        sync_dag(store, scratch, source_kind="interactive")
        row = store.get_dag("sales_etl")
    del etl, scratch
    gc.collect()  # no longer built in this process, as in another kernel
    board = Dashboard()
    shown = board.rows["sales_etl"]
    assert shown["next_run"] is not None and shown["next_run"] == upcoming(None, row, 1)[0]
    assert shown["next_run"].hour == 6 and str(shown["next_run"].tzinfo) == "Europe/Berlin"
    assert "sales_etl" in board.buttons and "scratch" not in board.buttons
    assert not board.rows["scratch"]["openable"]
    texts = [c.value for c in board.table.children if isinstance(c, w.HTML)]
    texts += [c.value for box in board.table.children if isinstance(box, w.VBox) for c in box.children
              if isinstance(c, w.HTML)]
    assert any("another kernel: sales.ipynb" in t for t in texts), texts
    assert any("scratch" in t and "another kernel" in t for t in texts), texts
    board.buttons["sales_etl"].click()  # it cannot be built here: the message says where it lives
    assert "sales.ipynb" in board.message.value and "open the graph in that notebook" in board.message.value
    assert "no DAG with id" not in board.message.value
    with pytest.raises(Exception, match="cannot be opened in this kernel: it is defined in another kernel"):
        board.open_dag("scratch")


# -- display ---------------------------------------------------------------------------------------


def test_dag_mimebundle_has_the_widget_view_and_an_svg(nbflow_home: Path) -> None:
    from ipywidgets.widgets.widget import _instances

    d = grouped_dag("shown")
    bundle = d._repr_mimebundle_()
    model_id = bundle[WIDGET_MIME]["model_id"]
    assert isinstance(_instances[model_id], DagGraph)
    assert bundle["image/svg+xml"].lstrip().startswith(("<svg", "<?xml"))
    assert "<svg" in bundle["text/html"] and "start" in bundle["image/svg+xml"]
    assert bundle["text/plain"] == repr(d)
    assert WIDGET_MIME not in d._repr_mimebundle_(include=["text/plain", "image/svg+xml"])
    import re

    def node_states(svg: str) -> list[str]:
        return re.findall(r'<g class="node" data-id="[^"]*" data-state="([^"]*)"', svg)

    assert node_states(bundle["image/svg+xml"]) and "success" not in node_states(bundle["image/svg+xml"])
    run_dag(d, executor="inline")
    after = d._repr_mimebundle_()["image/svg+xml"]  # the picture is coloured by the run the widget shows
    assert set(node_states(after)) == {"success"}


@pytest.fixture
def ip(nbflow_home: Path) -> Iterator[Any]:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython

    start_ipython()
    shell = InteractiveShell.instance()
    if "nbflow" not in shell.extension_manager.loaded:
        shell.run_line_magic("load_ext", "nbflow")
    before = set(shell.user_ns)
    try:
        yield shell
    finally:
        for name in set(shell.user_ns) - before:
            shell.user_ns.pop(name, None)


def test_dag_cell_magic_displays_the_graph_widget_with_a_picture(ip: Any) -> None:
    from IPython.utils.capture import capture_output

    with capture_output() as captured:
        result = ip.run_cell("%%dag shown_cell\nfrom nbflow.operators import EmptyOperator\nEmptyOperator(task_id='only')")
    assert result.success, result.error_in_exec
    data = captured.outputs[-1].data
    assert WIDGET_MIME in data and "image/svg+xml" in data
    formatted, _ = ip.display_formatter.format(ip.user_ns["shown_cell"])
    assert WIDGET_MIME in formatted and "<svg" in formatted["text/html"]


def test_nbflow_dashboard_magic_returns_the_dashboard(ip: Any) -> None:
    from nbflow.jupyter.dashboard import Dashboard

    assert isinstance(ip.run_line_magic("nbflow", "dashboard"), Dashboard)


def test_the_details_show_a_pickled_output_from_its_stored_preview_without_unpickling(nbflow_home: Path,
                                                                                       tmp_path: Path) -> None:
    from test_outputs import Boom

    marker = tmp_path / "PWNED"
    with DAG("hostile_details", timezone="UTC") as d:
        PythonOperator(task_id="make", python_callable=lambda: Boom(marker))
    run = run_dag(d, executor="inline")
    assert marker.exists()  # run.outputs unpickled it: the marker works
    marker.unlink()
    graph = DagGraph(d)
    click(graph, "make")
    html = graph.details.body.value
    assert not marker.exists(), "the details panel unpickled the output"
    output = html.split("<pre class='nbflow-output'>")[1].split("</pre>")[0]
    assert output.startswith("Boom(xxx") and "..." in output and len(output) <= 4096
    assert "test_outputs.Boom · pickle · " in html

    with Store.open() as store:  # as written before previews were stored
        pk = store.get_run("hostile_details", run.run_id)["id"]
        row = store.get_outputs(pk)["make"]
        store.record(pk, outputs=[{**row, "kind": None, "type_name": None, "preview": None}])
    click(graph, "make")
    html = graph.details.body.value
    assert "(no preview stored: a pickle output of" in html and "type not stored · pickle" in html
    assert not marker.exists(), "the details panel unpickled the output"


def test_a_mapped_task_is_one_node_counting_its_instances_and_its_details_list_them(nbflow_home: Path) -> None:
    from nbflow import task

    with DAG("fanned", timezone="UTC", default_args={"retries": 0}) as d:
        @task
        def numbers() -> list[int]:
            return [1, 2, 3, 4]

        @task
        def check(x: int) -> int:
            if x == 3:
                raise ValueError("three is not allowed")
            return x

        check.expand(x=numbers())
    graph = DagGraph(d)
    assert graph.node_data("check")["label"] == "check [ ]"  # before any run: marked as mapped
    run_dag(d, executor="inline")
    graph = DagGraph(d)
    graph.flush()
    data = graph.node_data("check")
    assert data["label"] == "check [4] (3✓ 1✗)" and data["state"] == "failed"
    assert sorted(graph.elements.nodes) == ["check", "numbers"]  # one node, however many instances
    click(graph, "check")
    html = graph.details.body.value
    assert "4 mapped instances" in html and "three is not allowed" in html
    rows = html.split("nbflow-instances")[1]
    assert rows.index("[2]") < rows.index("[0]")  # the failed instance first


def test_the_details_panel_names_the_assets_a_dag_connects_through(nbflow_home: Path) -> None:
    from nbflow import Asset, task
    from nbflow.engine.sync import sync_dag

    daily = Asset("s3://lake/daily.csv")
    with DAG("writer", timezone="UTC") as writer:
        @task(outlets=[daily])
        def write() -> int:
            return 1

        write()
    with DAG("reader", timezone="UTC", schedule=[daily]) as reader:
        @task
        def read() -> int:
            return 1

        read()
    with Store.open() as store:
        for dag in (writer, reader):
            sync_dag(store, dag)
    body = DagGraph(reader).details.body.value
    assert "runs on <code>s3://lake/daily.csv</code> ⟵ writer" in body
    body = DagGraph(writer).details.body.value
    assert "<code>s3://lake/daily.csv</code> updated by write ⟶ reader" in body
    assert "assets" not in DagGraph(details_dag()).details.body.value  # a DAG without assets says nothing of them


def test_the_runs_grid_says_how_a_mapped_task_s_instances_ended(nbflow_home: Path) -> None:
    from nbflow import task
    from nbflow.jupyter.runs_grid import RunsGrid

    with DAG("grid_mapped", timezone="UTC", default_args={"retries": 0}) as d:
        @task
        def check(x: int) -> int:
            if x == 2:
                raise ValueError("no")
            return x

        check.expand(x=[1, 2, 3])
    run = run_dag(d, executor="inline")
    grid = RunsGrid(d)
    tooltip = grid.cell(run.run_id, "check").tooltip
    assert tooltip.endswith("· failed · 3 instances: 1 failed, 2 success"), tooltip
