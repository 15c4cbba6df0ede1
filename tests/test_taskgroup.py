"""``@task_group`` and ``TaskGroup(default_args=...)``: real runs of DAGs built from groups."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbflow import DAG, TaskGroup, dag, task, task_group
from nbflow.errors import DagDefinitionError, InvalidOptionError, TaskOutsideDagError, UnknownArgumentError
from nbflow.operators import EmptyOperator
from nbflow.refs import OutputRef


@task
def extract() -> int:
    return 10


@task
def double(x: int) -> int:
    return x * 2


@task
def add_one(x: int) -> int:
    return x + 1


@task
def load(x: int) -> int:
    return x


@task_group
def transform(value: int) -> OutputRef:
    """Double, then add one."""
    return add_one(double(value))


def test_a_group_call_takes_outputs_passes_them_in_and_returns_its_output_downstream(nbflow_home: Path) -> None:
    @dag(timezone="UTC")
    def pipeline() -> None:
        load(transform(extract()))

    d = pipeline()
    assert d.task_ids == ["extract", "transform.double", "transform.add_one", "load"]
    assert d.get_task("transform.double").upstream_task_ids == {"extract"}
    assert d.get_task("load").upstream_task_ids == {"transform.add_one"}
    group = d.task_groups["transform"]
    assert group.task_ids == ["transform.double", "transform.add_one"]
    assert group.tooltip == "Double, then add one."
    run = d.test()
    assert run.state == "success"
    assert run.outputs == {"extract": 10, "transform.double": 20, "transform.add_one": 21, "load": 21}


def test_calling_a_group_again_numbers_it_and_override_renames_it(nbflow_home: Path) -> None:
    @dag(timezone="UTC")
    def three_times() -> None:
        first = transform(extract())
        second = transform(first)
        third = transform.override(group_id="last")(second)
        load(third)

    d = three_times()
    assert list(d.task_groups) == ["transform", "transform__1", "last"]
    assert d.get_task("transform__1.double").upstream_task_ids == {"transform.add_one"}
    assert d.get_task("last.double").upstream_task_ids == {"transform__1.add_one"}
    run = d.test()
    assert run.state == "success"
    # 10 -> 21 -> 43 -> 87
    assert (run.outputs["transform.add_one"], run.outputs["transform__1.add_one"], run.outputs["last.add_one"],
            run.outputs["load"]) == (21, 43, 87, 87)


def test_a_group_returning_nothing_stands_for_the_whole_group_in_edges(nbflow_home: Path) -> None:
    seen: list[str] = []

    @task
    def step(name: str) -> str:
        seen.append(name)
        return name

    @task_group(group_id="checks", tooltip="all the checks")
    def validate() -> None:
        step.override(task_id="schema")("schema")
        step.override(task_id="rows")("rows")

    with DAG("whole_group", timezone="UTC") as d:
        start = EmptyOperator(task_id="start")
        group = validate()
        end = EmptyOperator(task_id="end")
        start >> group >> end
    assert isinstance(group, TaskGroup) and group.group_id == "checks" and group.tooltip == "all the checks"
    assert d.get_task("checks.schema").upstream_task_ids == {"start"}
    assert d.get_task("end").upstream_task_ids == {"checks.schema", "checks.rows"}
    assert d.describe()["groups"]["checks"] == {"tasks": ["checks.schema", "checks.rows"], "tooltip": "all the checks"}
    run = d.test()
    assert run.state == "success" and sorted(seen) == ["rows", "schema"]
    assert run.task_states["end"] == "success"


def test_nested_groups_prefix_twice_and_prefix_group_id_false_keeps_ids_short(nbflow_home: Path) -> None:
    @task_group
    def inner(x: int) -> OutputRef:
        return double(x)

    @task_group
    def outer(x: int) -> OutputRef:
        return add_one(inner(x))

    @task_group(prefix_group_id=False)
    def flat(x: int) -> OutputRef:
        return add_one.override(task_id="flat_add")(x)

    @dag(timezone="UTC")
    def nested() -> None:
        load(flat(outer(extract())))

    d = nested()
    assert d.task_ids == ["extract", "outer.inner.double", "outer.add_one", "flat_add", "load"]
    assert d.task_groups["outer.inner"].parent is d.task_groups["outer"]
    assert d.get_task("flat_add").group_id == "flat"
    run = d.test()
    assert run.state == "success"
    assert run.outputs["outer.inner.double"] == 20 and run.outputs["load"] == 22


def test_group_default_args_come_before_the_dags_and_after_the_tasks_own(nbflow_home: Path) -> None:
    attempts: dict[str, int] = {}

    @task
    def flaky(name: str) -> str:
        attempts[name] = attempts.get(name, 0) + 1
        if attempts[name] < 3:
            raise RuntimeError(f"{name} not yet")
        return name

    @task_group(default_args={"retries": 2, "retry_delay": 0, "owner": "group"})
    def patient() -> None:
        flaky.override(task_id="inherits")("inherits")
        flaky.override(task_id="own", retries=0)("own")

    @dag(timezone="UTC", default_args={"retries": 0, "owner": "dag", "retry_delay": 0})
    def with_defaults() -> None:
        patient()
        flaky.override(task_id="outside")("outside")

    d = with_defaults()
    assert d.get_task("patient.inherits").retries == 2 and d.get_task("patient.inherits").owner == "group"
    assert d.get_task("patient.own").retries == 0
    assert d.get_task("outside").retries == 0 and d.get_task("outside").owner == "dag"
    run = d.test()
    assert run.task_states == {"patient.inherits": "success", "patient.own": "failed", "outside": "failed"}
    assert attempts == {"inherits": 3, "own": 1, "outside": 1}


def test_nested_group_default_args_merge_over_the_parents() -> None:
    with DAG("nested_defaults", timezone="UTC", default_args={"retries": 1, "pool_slots": 1}):
        with TaskGroup("outer", default_args={"retries": 4, "priority_weight": 7}):
            with TaskGroup("inner", default_args={"retries": 5}) as inner:
                deep = EmptyOperator(task_id="deep")
    assert inner.default_args == {"retries": 5, "priority_weight": 7}
    assert (deep.retries, deep.priority_weight, deep.pool_slots) == (5, 7, 1)


def test_bad_group_options_are_refused_naming_them() -> None:
    with pytest.raises(UnknownArgumentError, match="ui_color"):
        task_group(ui_color="#fff")
    with pytest.raises(UnknownArgumentError, match="tooltp"):
        transform.override(tooltp="x")
    with DAG("bad_groups", timezone="UTC") as d:
        with pytest.raises(UnknownArgumentError, match=r"unknown task group 'g' default_args key 'retrys'"):
            TaskGroup("g", default_args={"retrys": 2})
        with pytest.raises(InvalidOptionError, match=r"retries=-1 \(from task group 'h' default_args\)"):
            TaskGroup("h", default_args={"retries": -1})
        with pytest.raises(UnknownArgumentError, match="start_date"):
            TaskGroup("i", default_args={"start_date": "2024-01-01"})
        with pytest.raises(DagDefinitionError, match="does not take"):
            transform(1, 2)
        assert "transform" not in d.task_groups  # nothing left behind by the refused call
        with pytest.raises(DagDefinitionError, match=r"returned int 5"):
            task_group(lambda: 5)()
    with pytest.raises(TaskOutsideDagError):
        transform(1)


def test_a_plain_task_group_still_refuses_a_duplicate_id() -> None:
    with DAG("dup_groups", timezone="UTC"):
        TaskGroup("same")
        with pytest.raises(DagDefinitionError, match="a task group 'same' already exists"):
            TaskGroup("same")
