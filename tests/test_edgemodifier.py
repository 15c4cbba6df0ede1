"""``Label`` on edges: kept on the DAG, in ``describe()`` and on the graph's edges; runs unchanged."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from nbflow import DAG, Label, TaskGroup, dag, task
from nbflow.errors import DependencyError
from nbflow.jupyter.graph import GraphModel
from nbflow.jupyter.cyto import cytoscape_style
from nbflow.jupyter.svg import render_svg
from nbflow.operators import BranchPythonOperator, EmptyOperator


def test_labelled_edges_run_like_plain_ones_and_are_described(nbflow_home: Path) -> None:
    with DAG("labelled", timezone="UTC") as d:
        check = BranchPythonOperator(task_id="check", python_callable=lambda: "load")
        load = EmptyOperator(task_id="load")
        quarantine = EmptyOperator(task_id="quarantine")
        report = EmptyOperator(task_id="report", trigger_rule="none_failed")
        check >> Label("when valid") >> load
        check >> Label("when broken") >> quarantine
        [load, quarantine] >> Label("either way") >> report
    assert check.downstream_task_ids == {"load", "quarantine"}
    assert report.upstream_task_ids == {"load", "quarantine"}
    assert d.get_edge_info("check", "load") == {"label": "when valid"}
    assert d.get_edge_info("load", "report") == {"label": "either way"}
    assert d.describe()["edge_labels"] == [
        {"upstream": "check", "downstream": "load", "label": "when valid"},
        {"upstream": "check", "downstream": "quarantine", "label": "when broken"},
        {"upstream": "load", "downstream": "report", "label": "either way"},
        {"upstream": "quarantine", "downstream": "report", "label": "either way"},
    ]
    run = d.test()
    assert run.task_states == {"check": "success", "load": "success", "quarantine": "skipped", "report": "success"}


def test_a_label_before_a_list_set_downstream_and_taskflow_outputs(nbflow_home: Path) -> None:
    @task
    def extract() -> int:
        return 4

    @task
    def square(x: int) -> int:
        return x * x

    @task
    def halve(x: int) -> float:
        return x / 2

    @dag(timezone="UTC")
    def fan() -> None:
        rows = extract()
        squared, halved = square(rows), halve(rows)
        rows >> Label("both") >> [squared, halved]
        after = EmptyOperator(task_id="after")
        squared.operator.set_downstream(after, edge_modifier=Label("then"))
        after << Label("and") << halved  # << reads right to left: halved >> Label("and") >> after

    d = fan()
    assert d.get_edge_info("extract", "square") == d.get_edge_info("extract", "halve") == {"label": "both"}
    assert d.get_edge_info("square", "after") == {"label": "then"}
    assert d.get_edge_info("halve", "after") == {"label": "and"}
    assert d.get_edge_info("extract", "after") == {}
    assert d.get_task("after").upstream_task_ids == {"square", "halve"}
    run = d.test()
    assert run.state == "success" and run.outputs["square"] == 16 and run.outputs["halve"] == 2.0


def test_labels_to_and_from_task_groups_go_to_their_first_and_last_tasks() -> None:
    with DAG("group_labels", timezone="UTC") as d:
        start = EmptyOperator(task_id="start")
        with TaskGroup("work") as work:
            EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
        end = EmptyOperator(task_id="end")
        start >> Label("go") >> work >> Label("done") >> end
    assert d.get_edge_info("start", "work.a") == {"label": "go"}
    assert d.get_edge_info("work.b", "end") == {"label": "done"}
    assert d.get_edge_info("work.a", "work.b") == {}


def test_the_graph_draws_labels_on_its_edges_from_the_dag_and_from_the_stored_definition(nbflow_home: Path) -> None:
    from nbflow.jupyter.widgets import DagGraph

    with DAG("drawn_labels", timezone="UTC") as d:
        a, b, c = (EmptyOperator(task_id=t) for t in "abc")
        a >> Label("when valid") >> b
        a >> c
    for source in (d, pickle.loads(pickle.dumps(d)).describe()):
        edges = {(e["source"], e["target"]): e for e in GraphModel.from_dag(source).edges}
        assert edges[("a", "b")]["label"] == "when valid" and "label" not in edges[("a", "c")]
    graph = DagGraph(d, load=False, live=False)
    data = {(e.data["source"], e.data["target"]): e.data for e in graph.cytoscape.graph.edges}
    assert data[("a", "b")]["label"] == "when valid" and "label" not in data[("a", "c")]
    sheet = {rule["selector"]: rule["style"] for rule in cytoscape_style()}
    assert sheet["edge[label]"]["label"] == "data(label)"
    assert ">when valid</text>" in render_svg(GraphModel.from_dag(d))


def test_a_folded_edge_keeps_a_label_only_when_all_its_edges_share_it() -> None:
    with DAG("folded_labels", timezone="UTC") as d:
        start = EmptyOperator(task_id="start")
        with TaskGroup("same"):
            same = [EmptyOperator(task_id=f"s{i}") for i in range(3)]
        with TaskGroup("mixed"):
            mixed = [EmptyOperator(task_id=f"m{i}") for i in range(3)]
        start >> Label("fan out") >> same
        start >> Label("one") >> mixed[0]
        start >> mixed[1:]
    model = GraphModel.from_dag(d, max_elements=6)
    edges = {(e["source"], e["target"]): e for e in model.edges}
    assert edges[("start", "group:same")]["label"] == "fan out" and edges[("start", "group:same")]["count"] == 3
    assert "label" not in edges[("start", "group:mixed")]


def test_what_cannot_be_on_an_edge_is_refused() -> None:
    with pytest.raises(DependencyError, match="non-empty string"):
        Label("")
    with DAG("bad_labels", timezone="UTC"):
        a = EmptyOperator(task_id="a")
        with pytest.raises(DependencyError, match=r"cannot put 'b' \(str\) after Label\('x'\)"):
            a >> Label("x") >> "b"
        with pytest.raises(DependencyError, match=r"cannot put 3 \(int\) before Label\('y'\)"):
            [3] >> Label("y")
        with pytest.raises(DependencyError, match="edge_modifier='z' is not a Label"):
            a.set_downstream(EmptyOperator(task_id="b"), edge_modifier="z")
