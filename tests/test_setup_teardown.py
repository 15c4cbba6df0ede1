"""Setup and teardown tasks, run for real: a teardown releases what its setups made whatever the
work did, and the run's state is the work's, as in Airflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbflow import DAG, TriggerRule, dag, setup, task, teardown
from nbflow.errors import DagDefinitionError, DependencyError, InvalidOptionError
from nbflow.operators import BashOperator, EmptyOperator
from nbflow.states import TaskState as S


def _flow(tmp_path: Path, *, work_fails: bool = False, teardown_fails: bool = False,
          setup_fails: bool = False, fail_dagrun: bool = False) -> DAG:
    """create >> work >> release, with release a teardown of create; release leaves a file behind."""
    marker = tmp_path / "released"

    def step(name: str, fails: bool) -> str:
        return f"exit 3" if fails else f"echo {name}"

    with DAG(f"st_{tmp_path.name}"[:60]) as d:
        create = BashOperator(task_id="create", bash_command=step("create", setup_fails))
        work = BashOperator(task_id="work", bash_command=step("work", work_fails))
        release = BashOperator(task_id="release",
                               bash_command=f"touch {marker}" + (" && exit 4" if teardown_fails else ""))
        create >> work >> release.as_teardown(setups=create, on_failure_fail_dagrun=fail_dagrun)
    return d


def test_work_fails_teardown_still_runs_and_the_run_fails(nbflow_home: Path, tmp_path: Path) -> None:
    run = _flow(tmp_path, work_fails=True).test()
    assert run.task_states == {"create": S.SUCCESS, "work": S.FAILED, "release": S.SUCCESS}
    assert (tmp_path / "released").exists()
    assert run.state == "failed"


def test_teardown_failure_does_not_fail_the_run(nbflow_home: Path, tmp_path: Path) -> None:
    run = _flow(tmp_path, teardown_fails=True).test()
    assert run.task_states == {"create": S.SUCCESS, "work": S.SUCCESS, "release": S.FAILED}
    assert run.state == "success"


def test_teardown_with_on_failure_fail_dagrun_fails_the_run(nbflow_home: Path, tmp_path: Path) -> None:
    run = _flow(tmp_path, teardown_fails=True, fail_dagrun=True).test()
    assert run.task_states["release"] is S.FAILED and run.task_states["work"] is S.SUCCESS
    assert run.state == "failed"


def test_setup_failure_leaves_work_and_teardown_upstream_failed(nbflow_home: Path, tmp_path: Path) -> None:
    run = _flow(tmp_path, setup_fails=True).test()
    assert run.task_states == {"create": S.FAILED, "work": S.UPSTREAM_FAILED, "release": S.UPSTREAM_FAILED}
    assert not (tmp_path / "released").exists()
    assert run.state == "failed"


def test_teardown_with_two_setups_runs_when_one_succeeded(nbflow_home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "released"
    with DAG("two_setups") as d:
        good = BashOperator(task_id="good", bash_command="echo up")
        bad = BashOperator(task_id="bad", bash_command="exit 2")
        work = EmptyOperator(task_id="work")
        release = BashOperator(task_id="release", bash_command=f"touch {marker}")
        [good, bad] >> work >> release.as_teardown(setups=[good, bad])
    run = d.test()
    assert run.task_states == {"good": S.SUCCESS, "bad": S.FAILED, "work": S.UPSTREAM_FAILED,
                               "release": S.SUCCESS}
    assert marker.exists() and run.state == "failed"


def test_as_teardown_wires_the_setup_edge_and_marks_both() -> None:
    with DAG("wiring") as d:
        s = EmptyOperator(task_id="s")
        w = EmptyOperator(task_id="w")
        t = EmptyOperator(task_id="t")
        assert (s >> w >> t.as_teardown(setups=s)) is t
    assert d.task_dict["t"].upstream_task_ids == {"s", "w"}
    assert s.is_setup and not s.is_teardown and t.is_teardown and not t.is_setup
    assert t.trigger_rule is TriggerRule.ALL_DONE_SETUP_SUCCESS
    assert s.describe()["is_setup"] is True and t.describe()["is_teardown"] is True
    assert w.describe()["is_setup"] is False and w.describe()["is_teardown"] is False


def test_decorators_make_setups_and_teardowns_that_pass_data(nbflow_home: Path) -> None:
    @dag(start_date="2024-01-01", timezone="UTC")
    def resources():
        @setup
        def create_cluster() -> str:
            return "cluster-1"

        @task
        def work(name: str) -> None:
            raise RuntimeError(f"work on {name} broke")

        @teardown
        def delete_cluster(name: str) -> str:
            return f"deleted {name}"

        cluster = create_cluster()
        work(cluster) >> delete_cluster(cluster)

    d = resources()
    assert d.task_dict["create_cluster"].is_setup and d.task_dict["delete_cluster"].is_teardown
    run = d.test()
    assert run.task_states == {"create_cluster": S.SUCCESS, "work": S.FAILED, "delete_cluster": S.SUCCESS}
    assert run.outputs["delete_cluster"] == "deleted cluster-1"
    assert run.state == "failed"


def test_teardown_decorator_over_task_with_fail_dagrun(nbflow_home: Path) -> None:
    @teardown(on_failure_fail_dagrun=True)
    @task(retries=0)
    def release() -> None:
        raise RuntimeError("could not release")

    @setup
    @task.bash
    def acquire() -> str:
        return "echo acquired"

    with DAG("stacked") as d:
        release().as_teardown(setups=acquire())
    assert d.task_dict["acquire"].is_setup and d.task_dict["release"].on_failure_fail_dagrun
    run = d.test()
    assert run.task_states == {"acquire": S.SUCCESS, "release": S.FAILED} and run.state == "failed"


def test_as_teardown_refuses_what_is_not_a_task() -> None:
    with DAG("bad_setups"):
        t = EmptyOperator(task_id="cleanup")
        with pytest.raises(DependencyError, match=r"cleanup.*setups='create'"):
            t.as_teardown(setups="create")
        with pytest.raises(DependencyError, match="cleanup.*its own setup"):
            t.as_teardown(setups=t)
        with pytest.raises(InvalidOptionError, match="cleanup.*on_failure_fail_dagrun='yes'"):
            t.as_teardown(on_failure_fail_dagrun="yes")  # type: ignore[arg-type]
    assert not t.is_teardown  # nothing half-done


def test_a_task_cannot_be_both_setup_and_teardown() -> None:
    with DAG("both"):
        s = EmptyOperator(task_id="s").as_setup()
        t = EmptyOperator(task_id="t").as_teardown(setups=s)
        with pytest.raises(DagDefinitionError, match="'s'.*already a setup"):
            s.as_teardown()
        with pytest.raises(DagDefinitionError, match="'t'.*already a teardown"):
            t.as_setup()
        other = EmptyOperator(task_id="other")
        with pytest.raises(DagDefinitionError, match="task 't' is a teardown"):
            other.as_teardown(setups=t)

    with pytest.raises(DagDefinitionError, match="'both_ways'.*both a setup and a teardown"):
        @setup
        @teardown
        def both_ways() -> None: ...


def test_a_teardown_keeps_its_own_trigger_rule() -> None:
    with DAG("rule"):
        with pytest.raises(InvalidOptionError, match="late.*trigger_rule='all_done'.*leave trigger_rule out"):
            EmptyOperator(task_id="late", trigger_rule="all_done").as_teardown()

        @teardown
        @task(trigger_rule="one_success")
        def cleanup() -> None: ...

        with pytest.raises(InvalidOptionError, match="cleanup.*trigger_rule"):
            cleanup()


def test_clearing_work_clears_its_setup_and_teardown(nbflow_home: Path, tmp_path: Path) -> None:
    from nbflow.engine import controls

    d = _flow(tmp_path, work_fails=True)
    with d:
        EmptyOperator(task_id="unrelated")
    run = d.test()
    preview = controls.clear(d, run_id=run.run_id, task_ids=["work"], dry_run=True)
    assert list(preview) == [(run.run_id, "create"), (run.run_id, "work"), (run.run_id, "release")]
    # the setup itself brings its teardown; the teardown alone is only itself
    assert [t for _, t in controls.clear(d, run_id=run.run_id, task_ids=["create"], dry_run=True)] == [
        "create", "release"]
    assert [t for _, t in controls.clear(d, run_id=run.run_id, task_ids=["release"], dry_run=True)] == ["release"]
    # marking by hand is not clearing: it changes only what it names
    assert [t for _, t in controls.mark(d, run.run_id, ["work"], "success")] == ["work"]


def test_work_made_in_a_setup_teardown_block_runs_between_them(nbflow_home) -> None:
    from nbflow import DAG, setup, task, teardown
    from nbflow.errors import DagDefinitionError

    with DAG("block", timezone="UTC") as dag:
        @setup
        def create() -> str:
            return "cluster"

        @teardown
        def delete() -> None:
            return None

        @task
        def first() -> int:
            return 1

        @task
        def second(x: int) -> int:
            return x + 1

        @task
        def outside() -> int:
            return 0

        with create() >> delete():
            second(first())
        outside()
    tasks = dag.task_dict
    assert tasks["first"].upstream_task_ids == {"create"}
    assert tasks["second"].downstream_task_ids == {"delete"}
    assert tasks["delete"].upstream_task_ids == {"create", "second"}
    assert not tasks["outside"].upstream_task_ids and not tasks["outside"].downstream_task_ids
    run = dag.test()
    assert run.state == "success" and set(run.task_states.values()) == {"success"}
    with DAG("not_teardown"):
        @task
        def plain() -> int:
            return 1

        with pytest.raises(DagDefinitionError, match="needs a teardown"):
            with plain():
                pass
