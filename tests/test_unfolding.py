"""Opening and closing folded nodes, shared by the notebook widget and the JupyterLab view."""

from __future__ import annotations

import pytest

from nbflow import DAG, TaskGroup
from nbflow.errors import InvalidRequestError
from nbflow.jupyter.graph import OPENED_PARTS, GraphModel
from nbflow.jupyter.unfolding import MAX_OPENS, Unfolding
from nbflow.operators import EmptyOperator, PythonOperator


def partitions_dag() -> DAG:
    with DAG("partitions", timezone="UTC") as d:
        start, end = EmptyOperator(task_id="start"), EmptyOperator(task_id="end")
        for g in range(20):
            with TaskGroup(f"partition_{g:02d}") as group:
                for i in range(100):
                    PythonOperator(task_id=f"load_{i:03d}", python_callable=print)
            start >> group >> end
    return d


def fan_dag(width: int) -> DAG:
    with DAG("fan", timezone="UTC") as d:
        start, end = EmptyOperator(task_id="start"), EmptyOperator(task_id="end")
        for i in range(width):
            start >> PythonOperator(task_id=f"extract_{i}", python_callable=print) >> end
    return d


def positions(model: GraphModel) -> dict[str, tuple[float, float]]:
    return {n["id"]: n["position"] for n in model.nodes}


def test_opening_a_folded_fan_grows_it_in_place() -> None:
    d = fan_dag(2000)
    view = Unfolding(d)
    before = view.model()
    folded = before.node_of("extract_5")
    after = view.open(before, folded)
    parts = [n for n in after.nodes if n["id"].startswith("agg:")]
    assert len(parts) == OPENED_PARTS and parts[0]["label"] == "extract_0–199 ×200"
    assert positions(after)["start"] == positions(before)["start"]
    below = max(p["position"][1] for p in parts)
    assert positions(after)["end"][1] > below  # `end` stays under what opened
    # opening a part shows its tasks one by one when they fit, and nothing else moves
    part = after.node_of("extract_5")
    smaller = view.open(after, part)
    assert smaller.node(smaller.node_of("extract_5"))["label"] == "extract_0–19 ×20"
    part, after = smaller.node_of("extract_5"), smaller
    inside = view.open(after, part)
    assert inside.node_of("extract_5") == "extract_5"
    assert positions(inside)["start"] == positions(after)["start"]
    assert positions(inside)["end"][1] > positions(inside)["extract_5"][1]
    # closing folds it again
    assert view.close(inside, "extract_5").node_of("extract_5") == part


def test_replay_gives_what_the_same_clicks_gave() -> None:
    d = partitions_dag()
    view = Unfolding(d)
    clicked = view.open(view.model(), "group:partition_03")
    clicked = view.open(clicked, clicked.node_of("partition_03.load_042"))
    replayed = Unfolding(d.describe()).replay(["group:partition_03", "agg:partition_03.load_040~partition_03.load_049"])
    assert positions(replayed) == positions(clicked)
    assert replayed.node_of("partition_03.load_042") == "partition_03.load_042"


def test_replay_closes_a_group_marked_with_a_bang_and_what_was_opened_inside_it() -> None:
    """The Lab view closes one group (a double click on its box) by sending ``!group:...``."""
    d = partitions_dag()
    opened = Unfolding(d).replay(["group:partition_03", "agg:partition_03.load_040~partition_03.load_049",
                                  "group:partition_07"])
    assert opened.node_of("partition_03.load_042") == "partition_03.load_042"
    closed = Unfolding(d.describe()).replay(["group:partition_03", "agg:partition_03.load_040~partition_03.load_049",
                                             "group:partition_07", "!group:partition_03"])
    assert closed.node_of("partition_03.load_042") == "group:partition_03"  # folded again, its inside with it
    assert closed.node("group:partition_03")["label"] == "partition_03 ×100"
    assert closed.node_of("partition_07.load_000") != "group:partition_07"  # the other group stays open
    # a group a small DAG shows open from the start closes the same way
    with DAG("small", timezone="UTC") as small:
        with TaskGroup("checks"):
            for name in ("rows", "nulls", "dupes"):
                EmptyOperator(task_id=name)
    assert Unfolding(small).replay([]).node_of("checks.rows") == "checks.rows"
    assert Unfolding(small).replay(["!group:checks"]).node_of("checks.rows") == "group:checks"
    with pytest.raises(InvalidRequestError, match="nothing to close"):
        Unfolding(d).replay(["!start"])


def test_replay_refuses_a_node_it_does_not_draw_and_too_many_opens() -> None:
    view = Unfolding(partitions_dag())
    with pytest.raises(InvalidRequestError, match="draws no node 'group:nope'"):
        view.replay(["group:nope"])
    with pytest.raises(InvalidRequestError, match="single task"):
        view.replay(["start"])
    with pytest.raises(InvalidRequestError, match=f"open at most {MAX_OPENS}"):
        view.replay(["start"] * (MAX_OPENS + 1))


def test_keep_places_leaves_the_fresh_layout_when_more_than_the_opened_node_changed() -> None:
    d = partitions_dag()
    before = GraphModel.from_dag(d)
    other = GraphModel.from_dag(d, expanded={"partition_01"}, opened=[[f"partition_01.load_{i:03d}" for i in range(100)]])
    fresh = positions(other)
    assert not other.keep_places(before, "group:partition_02")
    assert positions(other) == fresh
