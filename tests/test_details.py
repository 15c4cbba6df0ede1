"""The notebook graph's details panel: a task with several tries shows the one picked, whole."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from nbflow import DAG
from nbflow.engine.runs import run_dag
from nbflow.jupyter.widgets import DagGraph
from nbflow.operators import PythonOperator


def test_picking_an_earlier_try_changes_the_header_not_only_the_log(nbflow_home: Path) -> None:
    calls = [0]

    def flaky() -> int:
        calls[0] += 1
        print(f"attempt number {calls[0]}")
        if calls[0] < 3:
            raise ValueError(f"not yet ({calls[0]})")
        return 1

    with DAG("tries_picker", schedule=None) as d:
        PythonOperator(task_id="flaky", python_callable=flaky, retries=2, retry_delay=timedelta(0))
    run = run_dag(d, executor="inline")
    assert run.state == "success"
    graph = DagGraph(d, live=False)
    graph.select("flaky")
    panel = graph.details
    assert panel.try_picker.layout.display == ""
    assert [value for _, value in panel.try_picker.options] == [1, 2, 3] and panel.try_picker.value == 3
    # each try named with its state's word, as the graph's legend and Lab's picker say it
    assert [label for label, _ in panel.try_picker.options] == ["try 1 · up for retry", "try 2 · up for retry",
                                                                "try 3 · success"]
    assert "3 of 3" in panel.body.value and "data-state='success'" in panel.body.value
    assert "attempt number 3" in panel.body.value
    panel.try_picker.value = 1
    body = panel.body.value
    assert "1 of 3" in body and "an earlier try" in body
    assert "data-state='up_for_retry'" in body and "not yet (1)" in body  # how that try ended
    assert "attempt number 1" in body and "attempt number 3" not in body
    assert "nbflow-output" not in body  # the output is the last try's, not this one's
    # a live refresh of the same task keeps the picked try
    graph.refresh_details()
    assert "1 of 3" in panel.body.value and panel.try_picker.value == 1
    panel.try_picker.value = 3
    assert "3 of 3" in panel.body.value and "an earlier try" not in panel.body.value
    graph.close()


def test_a_task_with_one_try_has_no_try_picker(nbflow_home: Path) -> None:
    with DAG("one_try", schedule=None) as d:
        PythonOperator(task_id="once", python_callable=lambda: 1)
    run_dag(d, executor="inline")
    graph = DagGraph(d, live=False)
    graph.select("once")
    assert graph.details.try_picker is None  # made only for a task with several tries
    graph.close()
