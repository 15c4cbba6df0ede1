"""A task or a DAG that asks for an executor of its own (``executor="process"``, ``"dask"``): the
host starts that executor beside its own, sends those tries there, and shuts it down with itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbflow import DAG, task
from nbflow.errors import ExecutorUnavailableError, InvalidOptionError
from nbflow.executors import Executor, Outcome, get_executor
from nbflow.executors.routing import RoutingExecutor
from nbflow.operators import PythonOperator
from nbflow.states import RunState, TaskState


def _pid() -> int:
    return os.getpid()


def test_a_task_asking_for_worker_processes_runs_in_one_and_its_neighbours_in_threads(nbflow_home: Path) -> None:
    with DAG("mixed", timezone="UTC") as dag:
        here = PythonOperator(task_id="here", python_callable=_pid)
        here >> PythonOperator(task_id="apart", python_callable=_pid, executor="process")

    run = dag.test(executor="thread")
    assert run.state is RunState.SUCCESS, run.errors
    assert run.outputs["here"] == os.getpid()
    assert run.outputs["apart"] not in (os.getpid(), None)


def test_a_dags_executor_is_its_tasks_default_and_a_task_may_choose_another(nbflow_home: Path) -> None:
    @task(executor="thread")
    def stays() -> int:
        return os.getpid()

    with DAG("whole", timezone="UTC", executor="process") as dag:
        PythonOperator(task_id="apart", python_callable=_pid)
        stays()

    assert dag.task_dict["apart"].runs_with == "process" and dag.task_dict["stays"].runs_with == "thread"
    run = dag.test(executor="thread")
    assert run.state is RunState.SUCCESS, run.errors
    assert run.outputs["apart"] != os.getpid() and run.outputs["stays"] == os.getpid()


def test_default_args_can_choose_the_executor(nbflow_home: Path) -> None:
    with DAG("by_default_args", timezone="UTC", default_args={"executor": "process"}) as dag:
        PythonOperator(task_id="apart", python_callable=_pid)
    run = dag.test(executor="thread")
    assert run.state is RunState.SUCCESS, run.errors
    assert run.outputs["apart"] != os.getpid()


@pytest.mark.parametrize("build", ["task", "dag", "default_args"])
def test_an_unknown_executor_is_refused_when_the_dag_is_built(build: str) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        if build == "dag":
            DAG("bad_executor", executor="spark")
        else:
            with DAG("bad_executor", default_args={"executor": "spark"} if build == "default_args" else None):
                PythonOperator(task_id="t", python_callable=_pid, **({"executor": "spark"} if build == "task" else {}))
    message = str(caught.value)
    assert "bad_executor" in message and "executor='spark'" in message and "dask" in message
    if build == "task":
        assert "task 't'" in message


def test_an_executor_the_host_cannot_start_fails_those_tries_and_the_host_goes_on() -> None:
    def make(name: str) -> Executor:
        raise ModuleNotFoundError("No module named 'distributed'")

    outcomes: list[Outcome] = []
    router = RoutingExecutor(get_executor("inline"), make)
    router.start(outcomes.append)
    router.route("dask").submit(("run", "on_dask"), _pid)
    router.route(None).submit(("run", "fine"), _pid)
    router.shutdown()
    failed, fine = outcomes
    assert fine.ok and fine.value == os.getpid()
    assert not failed.ok and failed.key == ("run", "on_dask")
    assert isinstance(failed.error, ExecutorUnavailableError)
    assert "cannot start the dask executor" in str(failed.error) and "nbflow[dask]" in str(failed.error)
    assert "No module named 'distributed'" in str(failed.error)


def test_the_host_shuts_down_the_executors_it_started_and_leaves_a_given_one_open() -> None:
    base = get_executor("thread", 2)
    router = RoutingExecutor(base, lambda name: get_executor(name, 2), own_base=False)
    router.start(lambda outcome: None)
    other = router.route("process")
    assert router.route("process") is other and router.route("thread") is base and router.route(None) is base
    assert router.free_slots == base.free_slots + other.free_slots
    router.shutdown()
    assert other.free_slots == 0  # shut down
    assert base.free_slots == 2   # the caller's, still open
    base.shutdown()


def test_a_plain_executor_says_it_cannot_run_a_task_of_another_kind() -> None:
    thread = get_executor("thread", 1)
    assert thread.route(None) is thread and thread.route("thread") is thread
    with pytest.raises(ExecutorUnavailableError, match="dask executor"):
        thread.route("dask")
