"""Dynamic task mapping as a DAG is built: what expand, partial and expand_kwargs make, and the
mistakes refused with the fix before anything runs."""

from __future__ import annotations

from typing import Any

import pytest

from nbflow import DAG, task
from nbflow.errors import DagDefinitionError
from nbflow.mapping import ExpandInput, MappingError, split_key, ti_key
from nbflow.operators.bash import BashOperator


def test_a_mapped_task_is_one_task_of_the_dag_downstream_of_what_it_maps_over() -> None:
    with DAG("shape") as dag:
        @task
        def make() -> list[int]:
            return [1]

        @task
        def add(x: int, y: int) -> int:
            return x + y

        ref = add.partial(y=1).expand(x=make())
    assert sorted(dag.task_dict) == ["add", "make"]
    assert ref.operator.is_mapped and not dag.task_dict["make"].is_mapped
    assert dag.task_dict["add"].upstream_task_ids == {"make"}
    assert dag.task_dict["add"].describe()["mapped"] is True


@pytest.mark.parametrize("build, words", [
    (lambda t: t.expand(x=5), "cannot map over a int: give a list, a tuple, a dict or another task's output"),
    (lambda t: t.expand(), "needs at least one argument"),
    (lambda t: t.expand(z=[1]), "map over the function's own parameters"),
    (lambda t: t.partial(x=1).expand(x=[2]), "x is given to both partial() and expand()"),
    (lambda t: t.expand_kwargs("x=1"), "expand_kwargs('x=1') needs a list of dicts"),
])
def test_a_decorated_task_refuses_what_cannot_be_mapped(build: Any, words: str) -> None:
    with DAG("bad"):
        @task
        def add(x: int, y: int = 0) -> int:
            return x + y

        with pytest.raises(DagDefinitionError) as caught:
            build(add)
    assert words in str(caught.value)


def test_an_operator_refuses_mapping_its_task_options() -> None:
    with DAG("bad_op"):
        with pytest.raises(DagDefinitionError) as caught:
            BashOperator.partial(task_id="b").expand(retries=[1, 2])
    assert "retries is an option of the task itself" in str(caught.value)
    assert "give it to partial(retries=...)" in str(caught.value)
    with DAG("no_id"), pytest.raises(DagDefinitionError, match="needs task_id"):
        BashOperator.partial(bash_command="x")


def test_the_combinations_and_lengths_follow_airflow() -> None:
    expand = ExpandInput({"a": [1, 2], "b": {"k": "v", "l": "w"}})
    assert expand.length({}, "d", "t") == 4
    assert [expand.values({}, i, "d", "t") for i in range(4)] == [
        {"a": 1, "b": ("k", "v")}, {"a": 1, "b": ("l", "w")}, {"a": 2, "b": ("k", "v")}, {"a": 2, "b": ("l", "w")}]
    with pytest.raises(MappingError, match="item 1 is int"):
        ExpandInput(kwargs_source=[{"a": 1}, 3]).length({}, "d", "t")


@pytest.mark.parametrize("task_id, index, key", [("t", -1, "t"), ("t", 0, "t[0]"), ("g.t", 12, "g.t[12]")])
def test_instance_keys_go_both_ways(task_id: str, index: int, key: str) -> None:
    assert ti_key(task_id, index) == key and split_key(key) == (task_id, index)


def test_a_mapped_task_group_maps_every_task_it_makes() -> None:
    from nbflow import task_group

    with DAG("group_shape") as dag:
        @task
        def fetch(name: str) -> str:
            return name

        @task
        def clean(text: str) -> str:
            return text

        @task_group
        def one(name: str) -> Any:
            return clean(fetch(name))

        ref = one.expand(name=["a", "b"])
    assert ref.operator.task_id == "one.clean"
    assert all(dag.task_dict[t].is_mapped and dag.task_dict[t].map_group == "one" for t in ("one.fetch", "one.clean"))
    assert dag.task_groups["one"].expand_input is not None
    with DAG("group_bad"):
        @task_group
        def nested(name: str) -> Any:
            return fetch.expand(name=[name])

        with pytest.raises(DagDefinitionError, match="maps one level"):
            nested.expand(name=["a"])
        with pytest.raises(DagDefinitionError, match="mapped over"):
            nested.expand(other=["a"])
