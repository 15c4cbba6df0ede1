"""Values pushed under keys of their own (``ti.xcom_push``) and pulled by key downstream, as in
Airflow: kept with a successful try's outcome, fenced like outputs, read back by a driver that did
not run the pushing task, and gone when that task is cleared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbflow import DAG
from nbflow.engine import controls
from nbflow.engine.runs import load_run
from nbflow.engine.scheduler import Scheduler
from nbflow.operators import PythonOperator
from nbflow.store import Store


@pytest.fixture
def store(settings) -> Iterator[Store]:
    opened = Store.open(settings)
    try:
        yield opened
    finally:
        opened.close()


def push(ti: Any) -> dict[str, int]:
    ti.xcom_push(key="rows", value=[3, 1, 2])
    ti.xcom_push(key="seen", value={"a", "b"})  # not JSON: kept pickled
    ti.xcom_push(key="rows", value=[3, 1, 2, 4])  # pushed twice: the last one is kept
    return {"total": 10}


def pull(ti: Any) -> dict[str, Any]:
    return {
        "rows": ti.xcom_pull(task_ids="push", key="rows"),
        "seen": sorted(ti.xcom_pull(task_ids="push", key="seen")),
        "returned": ti.xcom_pull(task_ids="push"),
        "return_value": ti.xcom_pull(task_ids="push", key="return_value"),
        "total": ti.xcom_pull(task_ids="push", key="total"),  # a key of the returned dict
        "missing": ti.xcom_pull(task_ids="push", key="nobody", default="fallback"),
        "listed": ti.xcom_pull(task_ids=["push"], key="rows"),
    }


def _dag(dag_id: str = "xcoms") -> DAG:
    with DAG(dag_id, timezone="UTC", schedule=None) as dag:
        PythonOperator(task_id="push", python_callable=push) >> PythonOperator(task_id="pull", python_callable=pull)
    return dag


EXPECTED = {"rows": [3, 1, 2, 4], "seen": ["a", "b"], "returned": {"total": 10}, "return_value": {"total": 10},
            "total": 10, "missing": "fallback", "listed": [[3, 1, 2, 4]]}


@pytest.mark.parametrize("executor", ["inline", "thread", "process"])
def test_a_pushed_value_is_pulled_by_key_downstream(nbflow_home: Path, executor: str) -> None:
    run = _dag().test(executor=executor)
    assert run.state == "success", run.summary()
    assert run.outputs["pull"] == EXPECTED


def test_pushed_values_are_stored_fenced_and_read_back_by_a_new_driver(settings, store: Store) -> None:
    dag = _dag()
    run_id = controls.trigger(dag, store=store)
    Scheduler(settings=settings, dags=[dag], executor="inline").serve(exit_when_idle=True)
    pk = store.get_run("xcoms", run_id)["id"]
    rows = {row["key"]: row for row in store.get_xcoms(pk, "push")}
    assert set(rows) == {"rows", "seen"}
    assert rows["rows"]["kind"] == "json" and rows["rows"]["value_json"] == "[3,1,2,4]"
    assert rows["seen"]["kind"] == "pickle" and Path(rows["seen"]["artifact_path"]).is_file()
    assert rows["seen"]["type_name"] == "set"

    # pull alone runs again, under a driver that never ran push: it reads push's values from the store
    controls.clear(dag, run_id=run_id, task_ids=["pull"], store=store)
    assert {row["key"] for row in store.get_xcoms(pk, "push")} == {"rows", "seen"}  # push was not cleared
    Scheduler(settings=settings, dags=[dag], executor="process").serve(exit_when_idle=True)
    again = load_run(store, "xcoms", run_id)
    assert again.tries == {"push": 1, "pull": 2} and again.outputs["pull"] == EXPECTED

    controls.clear(dag, run_id=run_id, task_ids=["push"], store=store)
    assert store.get_xcoms(pk, "push") == []


def test_a_failed_try_leaves_nothing_pushed_for_its_retry(nbflow_home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "first-try-done"

    def flaky(ti: Any) -> None:
        if not marker.exists():
            marker.touch()
            ti.xcom_push(key="from_try_1", value=1)
            raise RuntimeError("try 1 fails")
        ti.xcom_push(key="from_try_2", value=2)

    def read(ti: Any) -> list[Any]:
        return [ti.xcom_pull(task_ids="flaky", key="from_try_1"), ti.xcom_pull(task_ids="flaky", key="from_try_2")]

    with DAG("retried", timezone="UTC", schedule=None) as dag:
        PythonOperator(task_id="flaky", python_callable=flaky, retries=1, retry_delay=0) >> \
            PythonOperator(task_id="read", python_callable=read)
    run = dag.test()
    assert run.tries["flaky"] == 2 and run.outputs["read"] == [None, 2]


@pytest.mark.parametrize(("key", "words"), [
    ("return_value", "key='return_value' is not allowed: another key: the task's return value is kept under"),
    ("", "key='' is not allowed: a non-empty text"),
    (7, "key=7 is not allowed: a non-empty text"),
])
def test_a_bad_key_fails_the_task_naming_it(nbflow_home: Path, key: Any, words: str) -> None:
    def bad(ti: Any) -> None:
        ti.xcom_push(key=key, value=1)

    with DAG("bad_key", timezone="UTC", schedule=None) as dag:
        PythonOperator(task_id="bad", python_callable=bad)
    run = dag.test()
    assert run.task_states["bad"] == "failed" and words in run.errors["bad"]


def test_pulling_from_another_dag_or_prior_dates_is_refused(nbflow_home: Path) -> None:
    def other(ti: Any) -> None:
        ti.xcom_pull(task_ids="first", dag_id="elsewhere")

    def prior(ti: Any) -> None:
        ti.xcom_pull(task_ids="first", include_prior_dates=True)

    with DAG("refused", timezone="UTC", schedule=None) as dag:
        first = PythonOperator(task_id="first", python_callable=lambda: 1)
        first >> PythonOperator(task_id="other", python_callable=other)
        first >> PythonOperator(task_id="prior", python_callable=prior)
    run = dag.test()
    assert "dag_id='elsewhere' is not allowed" in run.errors["other"]
    assert "include_prior_dates=True is not allowed" in run.errors["prior"]


def test_pulling_from_a_task_not_directly_upstream_says_how_to_fix_it(nbflow_home: Path) -> None:
    def far(ti: Any) -> None:
        ti.xcom_pull(task_ids="first", key="k")

    with DAG("not_upstream", timezone="UTC", schedule=None) as dag:
        PythonOperator(task_id="first", python_callable=lambda: 1) >> \
            PythonOperator(task_id="middle", python_callable=lambda: 2) >> PythonOperator(task_id="far", python_callable=far)
    run = dag.test()
    assert run.task_states["far"] == "failed"
    assert ("task_ids='first' is not allowed: a task directly upstream of 'far' (here: middle): only their values "
            "travel with its try; add first >> far, or pass the value as an argument") in run.errors["far"]
