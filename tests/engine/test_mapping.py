"""Dynamic task mapping with real runs on every backend: instances made at run time from another
task's output, each claimed, retried, logged and cleared on its own, with Airflow's states."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbflow import DAG, task
from nbflow.engine import controls
from nbflow.engine.runs import load_run, run_dag
from nbflow.engine.scheduler import Scheduler
from nbflow.operators.bash import BashOperator
from nbflow.store import Store


@pytest.fixture
def store(settings) -> Iterator[Store]:
    opened = Store.open(settings)
    try:
        yield opened
    finally:
        opened.close()


def _rows(store: Store, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    run = store.get_run(dag_id, run_id)
    return {ti["ti_key"]: ti for ti in store.get_task_instances(run["id"])}


def _drive(dag: DAG, settings: Any) -> None:
    Scheduler(settings=settings, dags=[dag], executor="inline").serve(exit_when_idle=True)


def _numbers_dag(flag: Path, numbers: list[int]) -> DAG:
    """numbers() -> double.expand(x=...) -> total(list); double fails for 2 while ``flag`` exists."""
    with DAG("mapped", timezone="UTC", default_args={"retries": 0}) as d:
        @task
        def make() -> list[int]:
            return numbers

        @task
        def double(x: int, offset: int) -> int:
            print(f"doubling {x}")
            if x == 2 and flag.exists():
                raise RuntimeError("two is not ready")
            return 2 * x + offset

        @task(trigger_rule="all_done")
        def total(values: list[int]) -> int:
            return sum(values)

        total(double.partial(offset=0).expand(x=make()))
    return d


def test_a_task_maps_over_a_list_known_only_at_run_time(settings, store: Store, tmp_path: Path) -> None:
    dag = _numbers_dag(tmp_path / "flag", [1, 2, 3])
    run = run_dag(dag, settings=settings, executor="inline", run_type="manual", store=store)
    assert run.state == "success"
    assert run.task_states == {"make": "success", "double": "success", "total": "success"}
    assert run.outputs["double"] == [2, 4, 6] and run.outputs["total"] == 12
    rows = _rows(store, "mapped", run.run_id)
    assert [rows[f"double[{i}]"]["map_index"] for i in range(3)] == [0, 1, 2]
    assert {rows[f"double[{i}]"]["state"] for i in range(3)} == {"success"}
    assert "double[3]" not in rows and rows["double"]["map_index"] == -1
    # each instance logs on its own: <task>/<map_index>/<try>.log
    log = Path(rows["double[1]"]["log_path"])
    assert log.parts[-3:] == ("double", "1", "1.log") and "doubling 2" in log.read_text()
    pk = store.get_run("mapped", run.run_id)["id"]
    assert [(t["task_id"], t["map_index"], t["try_number"]) for t in store.get_tries(pk, "double")] == [
        ("double", 0, 1), ("double", 1, 1), ("double", 2, 1)]


def test_an_empty_list_skips_the_mapped_task_and_what_needs_it(settings, store: Store, tmp_path: Path) -> None:
    with DAG("empty", timezone="UTC") as dag:
        @task
        def make() -> list[int]:
            return []

        @task
        def double(x: int) -> int:
            return 2 * x

        @task
        def after(values: list[int]) -> int:
            return len(values)

        after(double.expand(x=make()))
    run = run_dag(dag, settings=settings, executor="inline", run_type="manual", store=store)
    assert run.task_states == {"make": "success", "double": "skipped", "after": "skipped"}
    assert run.state == "success"
    assert not [key for key in _rows(store, "empty", run.run_id) if "[" in key]


def test_a_failed_instance_fails_alone_is_retried_alone_and_cleared_alone(settings, store: Store, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    dag = _numbers_dag(flag, [1, 2, 3])
    rid = controls.trigger(dag, store=store)
    _drive(dag, settings)
    run = load_run(store, "mapped", rid)
    rows = _rows(store, "mapped", rid)
    assert [rows[f"double[{i}]"]["state"] for i in range(3)] == ["success", "failed", "success"]
    assert run.task_states == {"make": "success", "double": "failed", "total": "success"}
    assert run.outputs["total"] == 2 + 6  # all_done: it ran with the outputs there are
    assert run.state == "success"  # its leaf succeeded, as in Airflow
    flag.unlink()
    cleared = controls.clear(dag, run_id=rid, task_ids=["double[1]"], downstream=True, store=store)
    assert sorted(t for _, t in cleared) == ["double[1]", "total"]
    rows = _rows(store, "mapped", rid)
    assert rows["double"]["state"] == "running" and rows["double[1]"]["state"] == "none"
    assert rows["double[0]"]["state"] == "success" and rows["double[0]"]["try_number"] == 1
    _drive(dag, settings)
    run = load_run(store, "mapped", rid)
    rows = _rows(store, "mapped", rid)
    assert run.state == "success" and run.task_states["double"] == "success"
    assert [rows[f"double[{i}]"]["try_number"] for i in range(3)] == [1, 2, 1]  # only [1] ran again
    assert run.outputs["total"] == 12


def test_retries_are_per_instance(settings, store: Store, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    with DAG("retried", timezone="UTC", default_args={"retries": 1, "retry_delay": 0}) as dag:
        @task
        def flaky(name: str) -> str:
            mark = marks / name
            if name == "b" and not mark.exists():
                mark.touch()
                raise RuntimeError("first try of b fails")
            return name

        flaky.expand(name=["a", "b", "c"])
    run = run_dag(dag, settings=settings, executor="inline", run_type="manual", store=store)
    rows = _rows(store, "retried", run.run_id)
    assert run.state == "success"
    assert [rows[f"flaky[{i}]"]["try_number"] for i in range(3)] == [1, 2, 1]


def test_an_operator_is_mapped_with_partial_and_expand(settings, store: Store, tmp_path: Path) -> None:
    with DAG("bash_mapped", timezone="UTC") as dag:
        BashOperator.partial(task_id="say", env={"WHO": "world"}).expand(
            bash_command=["echo hello $WHO", "echo bye $WHO", "echo {{ map_index }}"])
    run = run_dag(dag, settings=settings, executor="inline", run_type="manual", store=store)
    assert run.state == "success"
    assert run.outputs["say"] == ["hello world", "bye world", "2"]


def test_expand_kwargs_and_several_arguments_make_airflow_s_combinations(settings, store: Store) -> None:
    with DAG("combos", timezone="UTC") as dag:
        @task
        def pair(a: int, b: str) -> str:
            return f"{a}{b}"

        @task
        def pairs() -> list[dict[str, Any]]:
            return [{"a": 7, "b": "x"}, {"a": 8, "b": "y"}]

        pair.override(task_id="product").expand(a=[1, 2], b=["x", "y"])
        pair.override(task_id="by_kwargs").expand_kwargs(pairs())
    run = run_dag(dag, settings=settings, executor="inline", run_type="manual", store=store)
    assert run.outputs["product"] == ["1x", "1y", "2x", "2y"]  # the first argument changes slowest
    assert run.outputs["by_kwargs"] == ["7x", "8y"]


def test_mapping_over_a_mapped_task_s_results(settings, store: Store) -> None:
    with DAG("chained", timezone="UTC") as dag:
        @task
        def plus_one(x: int) -> int:
            return x + 1

        @task
        def square(x: int) -> int:
            return x * x

        square.expand(x=plus_one.expand(x=[1, 2, 3]))
    run = run_dag(dag, settings=settings, executor="inline", run_type="manual", store=store)
    assert run.outputs["square"] == [4, 9, 16]


@pytest.mark.parametrize("value, words", [
    ("abc", "needs a list, a tuple or a dict; task 'make' returned str"),
    (list(range(6)), "expands to 6 instances, more than max_map_length (5)"),
])
def test_what_cannot_be_expanded_fails_the_task_with_the_reason(settings, store: Store, value: Any, words: str) -> None:
    settings = dataclasses.replace(settings, max_map_length=5)
    with DAG("bad_list", timezone="UTC") as dag:
        @task
        def make() -> Any:
            return value

        @task
        def use(x: Any) -> Any:
            return x

        use.expand(x=make())
    run = run_dag(dag, settings=settings, executor="inline", run_type="manual", store=store)
    assert run.task_states == {"make": "success", "use": "failed"}
    assert words in run.task_instances["use"].error


def test_two_hosts_expand_a_task_once_and_run_each_instance_once(settings, store: Store, tmp_path: Path) -> None:
    with DAG("shared", timezone="UTC") as dag:
        @task
        def make() -> list[int]:
            return list(range(8))

        @task
        def note(x: int) -> int:
            with open(tmp_path / f"ran-{x}", "a") as handle:
                handle.write("x")
            return x

        note.expand(x=make())
    rid = controls.trigger(dag, store=store)
    hosts = [Scheduler(settings=settings, dags=[dag], executor="thread") for _ in range(2)]
    for _ in range(400):
        for host in hosts:
            host.tick()
        if store.get_run("shared", rid)["state"] == "success":
            break
        hosts[0]._wait(0.01)
    for host in hosts:
        host.close()
    assert store.get_run("shared", rid)["state"] == "success"
    assert sorted(p.name for p in tmp_path.glob("ran-*")) == sorted(f"ran-{i}" for i in range(8))
    assert all(p.read_text() == "x" for p in tmp_path.glob("ran-*"))
    assert len([k for k in _rows(store, "shared", rid) if k.startswith("note[")]) == 8


def test_instances_run_in_worker_processes(nbflow_home: Path) -> None:
    with DAG("in_workers", timezone="UTC") as dag:
        @task
        def where(x: int) -> list[int]:
            import os

            return [x, os.getpid()]

        where.expand(x=[10, 20, 30])
    run = dag.test(executor="process")
    import os

    assert [x for x, _ in run.outputs["where"]] == [10, 20, 30]
    assert all(pid != os.getpid() for _, pid in run.outputs["where"])


def test_a_mapped_task_group_runs_once_per_item_instance_by_instance(settings, store: Store) -> None:
    from nbflow import task_group

    with DAG("groups", timezone="UTC", default_args={"retries": 0}) as dag:
        @task
        def files() -> list[str]:
            return ["a", "bad", "c"]

        @task
        def fetch(name: str, suffix: str) -> str:
            if name == "bad":
                raise ValueError("bad file")
            return name + suffix

        @task
        def clean(text: str) -> str:
            return text.upper()

        @task_group
        def one(name: str, suffix: str) -> Any:
            return clean(fetch(name, suffix))

        @task(trigger_rule="all_done")
        def report(values: list[str]) -> list[str]:
            return values

        report(one.partial(suffix="!").expand(name=files()))
    run = run_dag(dag, settings=settings, executor="inline", run_type="manual", store=store)
    rows = _rows(store, "groups", run.run_id)
    # instance i of clean read instance i of fetch; the failed one stopped only its own instance
    assert [rows[f"one.fetch[{i}]"]["state"] for i in range(3)] == ["success", "failed", "success"]
    assert [rows[f"one.clean[{i}]"]["state"] for i in range(3)] == ["success", "upstream_failed", "success"]
    assert run.outputs["one.clean"] == ["A!", "C!"] and run.outputs["report"] == ["A!", "C!"]
    assert run.task_states["report"] == "success" and run.state == "success"


def test_a_custom_operator_subclass_is_mapped_with_partial(settings, store: Store) -> None:
    from nbflow.operators import BaseOperator

    class Greet(BaseOperator):
        template_fields = ("name",)

        def __init__(self, *, name: str, greeting: str = "hello", **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.name = name
            self.greeting = greeting

        def execute(self, context: dict[str, Any]) -> str:
            return f"{self.greeting} {self.name} ({context['map_index']})"

    with DAG("custom_mapped", timezone="UTC") as dag:
        Greet.partial(task_id="greet", greeting="hi").expand(name=["ann", "{{ dag.dag_id }}"])
        Greet.partial(task_id="greet_kwargs").expand_kwargs([{"name": "bo"}, {"name": "cy", "greeting": "yo"}])
    run = run_dag(dag, settings=settings, executor="inline", run_type="manual", store=store)
    assert run.outputs["greet"] == ["hi ann (0)", "hi custom_mapped (1)"]  # templated per instance
    assert run.outputs["greet_kwargs"] == ["hello bo (0)", "yo cy (1)"]
