"""``@dag`` and ``@task``: dependencies follow the data."""

from __future__ import annotations

import pytest

from nbflow import DAG, TaskGroup, dag, task
from nbflow.decorators import TaskDefinition
from nbflow.errors import DuplicateTaskIdError, TaskOutsideDagError
from nbflow.operators import BranchPythonOperator, EmptyOperator, ShortCircuitOperator
from nbflow.refs import OutputRef


def test_task_bare_and_called_keep_the_function() -> None:
    @task
    def plain(x: int) -> int:
        """Doubles x."""
        return x * 2

    @task(retries=4)
    def configured() -> None: ...

    assert isinstance(plain, TaskDefinition) and plain.__wrapped__(3) == 6
    assert plain.__doc__ == "Doubles x." and plain.__name__ == "plain"
    assert configured.options == {"retries": 4}


def test_data_passed_makes_dependencies_also_inside_lists_and_dicts() -> None:
    @dag(start_date="2024-01-01", timezone="UTC")
    def flow():
        @task
        def one() -> int:
            return 1

        @task
        def two() -> int:
            return 2

        @task
        def combine(items: list, mapping: dict) -> int:
            return sum(items) + sum(mapping.values())

        combine([one(), 5], {"b": two()})

    built = flow()
    assert built.get_task("combine").upstream_task_ids == {"one", "two"}


def test_calling_a_task_twice_numbers_the_ids_and_override_renames() -> None:
    with DAG("repeat") as d:
        @task
        def step() -> None: ...

        step()
        step()
        step.override(task_id="custom")()
        step()
    assert d.task_ids == ["step", "step__1", "custom", "step__2"]
    with DAG("repeat2"):
        step.override(task_id="fixed")()
        with pytest.raises(DuplicateTaskIdError):
            step.override(task_id="fixed")()


def test_override_changes_options_without_touching_the_original() -> None:
    @task(retries=1)
    def work() -> None: ...

    with DAG("over") as d:
        work.override(retries=5, task_id="w5")()
        work()
    assert d.get_task("w5").retries == 5 and d.get_task("work").retries == 1


def test_docstring_becomes_the_task_doc_and_the_dag_description() -> None:
    @dag(timezone="UTC")
    def documented():
        """Loads things.

        More words."""

        @task
        def step() -> None:
            """Does a step."""

        step()

    built = documented()
    assert built.description == "Loads things."
    assert built.get_task("step").doc_md == "Does a step."


def test_dag_function_parameters_become_params() -> None:
    @dag(timezone="UTC")
    def parametrised(region: str = "eu", limit: int = 10):
        @task
        def show(params) -> dict:
            return params

        show()

    built = parametrised(limit=3)
    assert built.params == {"region": "eu", "limit": 3}


def test_output_refs_wire_with_rshift_and_lists() -> None:
    with DAG("refs") as d:
        @task.branch
        def choose() -> str:
            return "a"

        ref = choose()
        assert isinstance(ref, OutputRef)
        ref >> [EmptyOperator(task_id="a"), EmptyOperator(task_id="b")]
    assert d.get_task("choose").downstream_task_ids == {"a", "b"}
    assert isinstance(d.get_task("choose"), BranchPythonOperator)


def test_short_circuit_decorator_makes_the_operator() -> None:
    with DAG("sc") as d:
        @task.short_circuit(ignore_downstream_trigger_rules=False)
        def gate() -> bool:
            return False

        gate()
    op = d.get_task("gate")
    assert isinstance(op, ShortCircuitOperator) and op.skip_all_descendants is False


def test_task_called_outside_a_dag() -> None:
    @task
    def orphan() -> None: ...

    with pytest.raises(TaskOutsideDagError):
        orphan()


def test_indexed_output_refs_depend_on_the_task() -> None:
    with DAG("indexed") as d:
        @task
        def produce() -> dict:
            return {"rows": 3}

        @task
        def consume(rows: int) -> int:
            return rows

        consume(produce()["rows"])
    assert d.get_task("consume").upstream_task_ids == {"produce"}


def test_tasks_in_groups_get_prefixed_and_numbered() -> None:
    with DAG("grouped") as d:
        @task
        def load() -> None: ...

        with TaskGroup("eu"):
            load()
            load()
        load()
    assert d.task_ids == ["eu.load", "eu.load__1", "load"]


def test_bad_option_values_of_task_and_dag_decorators_are_refused_when_the_dag_is_built() -> None:
    from nbflow.errors import InvalidOptionError

    @task(retries=-1)
    def flaky() -> None: ...

    @dag(timezone="UTC")
    def uses_flaky():
        flaky()

    with pytest.raises(InvalidOptionError, match=r"^DAG 'uses_flaky', task 'flaky': retries=-1 is not allowed"):
        uses_flaky()

    @dag(timezone="UTC", max_active_tasks=0)
    def stuck():
        pass

    with pytest.raises(InvalidOptionError, match=r"^DAG 'stuck': max_active_tasks=0 is not allowed"):
        stuck()

    @dag(timezone="UTC", default_args={"execution_timeout": -5})
    def negative():
        pass

    with pytest.raises(InvalidOptionError, match=r"^DAG 'negative': execution_timeout=-5 \(from default_args\)"):
        negative()

    @dag(timezone="UTC")
    def overridden():
        @task
        def fine() -> None: ...

        fine.override(task_id="fine_too", pool_slots=0)()

    with pytest.raises(InvalidOptionError, match=r"task 'fine_too': pool_slots=0 is not allowed"):
        overridden()


# -- multiple_outputs ---------------------------------------------------------------------------------


def test_multiple_outputs_gives_each_key_downstream(nbflow_home) -> None:
    from nbflow import dag, task

    @dag(timezone="UTC")
    def split():
        @task(multiple_outputs=True)
        def stats() -> dict:
            return {"total": 10, "rows": [1, 2]}

        @task
        def use(total: int, rows: list[int], ti=None) -> list:
            return [total, rows, ti.xcom_pull(task_ids="stats", key="total")]

        out = stats()
        use(out["total"], out["rows"])

    run = split().test()
    assert run.state == "success" and run.outputs["use"] == [10, [1, 2], 10]


def test_multiple_outputs_is_inferred_from_a_dict_return_annotation_and_checked(nbflow_home) -> None:
    from nbflow import DAG, task
    from nbflow.errors import InvalidOptionError

    @task
    def annotated() -> dict[str, int]:
        return [1, 2]  # type: ignore[return-value]  (not a dict: the run says so)

    @task
    def listed() -> list[int]:
        return [1, 2]

    with DAG("inferred", timezone="UTC") as d:
        annotated()
        listed()
    assert d.get_task("annotated").multiple_outputs is True
    assert d.get_task("listed").multiple_outputs is False
    run = d.test()
    assert run.task_states == {"annotated": "failed", "listed": "success"}
    assert "it returned list, and multiple_outputs=True needs a dict with text keys" in run.errors["annotated"]
    def flagged() -> dict:
        return {}

    with pytest.raises(InvalidOptionError, match="multiple_outputs='yes' is not allowed: True or False"):
        with DAG("bad_flag", timezone="UTC"):
            task(multiple_outputs="yes")(flagged)()


def test_setup_and_teardown_decorators_keep_the_function_and_their_role() -> None:
    from nbflow import setup, teardown

    @setup
    def create() -> str:
        """Makes a table."""
        return "t"

    @teardown(on_failure_fail_dagrun=True)
    def drop(name: str) -> None: ...

    assert isinstance(create, TaskDefinition) and create.__wrapped__() == "t"
    assert create.__doc__ == "Makes a table."
    assert (create.role, drop.role, drop.on_failure_fail_dagrun) == ("setup", "teardown", True)
    renamed = drop.override(task_id="drop_eu")
    assert (renamed.role, renamed.on_failure_fail_dagrun) == ("teardown", True)
    with DAG("roles") as d:
        drop(create()) >> drop.override(task_id="drop_eu")()
    assert d.task_dict["create"].is_setup
    assert d.task_dict["drop"].is_teardown and d.task_dict["drop_eu"].on_failure_fail_dagrun
    assert d.task_dict["drop"].upstream_task_ids == {"create"}
