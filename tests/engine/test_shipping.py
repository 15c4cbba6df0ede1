"""What a run's tries carry to worker processes: each operator pickled once, a request's plain data
pickled by the C pickler, and all of it arriving whole in a real worker process."""

from __future__ import annotations

import gc
import pickle
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from nbflow import DAG
from nbflow.engine.runner import DagInfo, TaskRequest, TaskResult, run_task
from nbflow.engine.shipping import shipment
from nbflow.executors import get_executor
from nbflow.executors import shipped as shipped_module
from nbflow.executors.shipped import Shipped, unship
from nbflow.operators import PythonOperator

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class CountsPickles:
    """Counts how often it is pickled, in this process."""

    pickled = 0

    def __init__(self, value: int) -> None:
        self.value = value

    def __reduce__(self) -> Any:
        CountsPickles.pickled += 1
        return CountsPickles, (self.value,)


def double(x: int) -> int:
    return 2 * x


def _dag(dag_id: str = "shipped", size: int = 3) -> DAG:
    with DAG(dag_id, timezone="Europe/Paris", start_date=T0, params={"p": 1}, tags=["t"]) as dag:
        for i in range(size):
            PythonOperator(task_id=f"t{i}", python_callable=double, op_kwargs={"x": i})
    return dag


def _request(dag: DAG, task_id: str, tmp_path: Path, *, shipped: bool) -> TaskRequest:
    parts = shipment(dag)
    when = T0.astimezone(dag.timezone)
    return TaskRequest(
        dag_id=dag.dag_id, task_id=task_id, run_id="manual__1", try_number=2, max_tries=3, logical_date=when,
        data_interval_start=when, data_interval_end=when, conf={"k": [1, "two", None]},
        log_path=str(tmp_path / f"{task_id}.log"),
        operator=parts.task(task_id) if shipped else dag.task_dict[task_id],
        dag=parts.info if shipped else DagInfo.of(dag), upstream={"up": ("json", "[1, 2]")},
        first_attempt_at=T0,
    )


def test_a_shipped_object_is_pickled_once_however_often_it_is_sent() -> None:
    CountsPickles.pickled = 0
    parcel = Shipped(CountsPickles(7))
    sent = [cloudpickle.dumps((len, (parcel,))) for _ in range(5)]
    assert CountsPickles.pickled == 1
    assert len(set(sent)) == 1
    _, (first,) = pickle.loads(sent[0])
    _, (again,) = pickle.loads(sent[1])
    assert first.value == 7 and first is again  # unpickled once in a process, then shared


def test_the_unpickled_objects_a_worker_keeps_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shipped_module, "WORKER_CACHE_SIZE", 4)
    monkeypatch.setattr(shipped_module, "_unshipped", {})
    objects = [unship(pickle.dumps(("item", i))) for i in range(10)]
    assert objects[-1] == ("item", 9)
    assert 0 < len(shipped_module._unshipped) <= 4


def test_one_dag_object_has_one_shipment_and_a_reloaded_dag_a_new_one() -> None:
    dag = _dag()
    assert shipment(dag) is shipment(dag)
    assert pickle.loads(cloudpickle.dumps(shipment(dag).task("t1"))).python_callable(4) == 8
    assert shipment(dag).task("t1").blob is shipment(dag).task("t1").blob  # pickled once
    assert shipment(_dag()) is not shipment(dag)
    info = shipment(dag).info.obj
    assert (info.dag_id, info.params, info.tags) == ("shipped", {"p": 1}, ["t"])
    count = len(shipped_module_shipments())
    del dag, info
    gc.collect()
    assert len(shipped_module_shipments()) < count  # the shipment goes with its DAG


def shipped_module_shipments() -> Any:
    from nbflow.engine import shipping

    return list(shipping._shipments.keys())


def test_a_request_bound_for_a_worker_travels_as_plain_data(tmp_path: Path) -> None:
    dag = _dag()
    request = _request(dag, "t1", tmp_path, shipped=True)
    fn, reduced = request.__reduce_ex__(5)
    assert fn.__name__ == "_request_from"  # the fast path, not the dataclass's state dict
    back = pickle.loads(cloudpickle.dumps(request, protocol=5))
    assert isinstance(back.operator, PythonOperator) and back.operator.task_id == "t1"
    assert isinstance(back.dag, DagInfo) and back.dag.dag_id == "shipped"
    for name in ("dag_id", "task_id", "run_id", "try_number", "max_tries", "logical_date", "conf", "upstream",
                 "log_path", "first_attempt_at", "max_output_bytes", "max_log_bytes"):
        assert getattr(back, name) == getattr(request, name), name
    assert back.logical_date.tzinfo == request.logical_date.tzinfo


def test_a_request_that_is_not_shipped_pickles_the_usual_way(tmp_path: Path) -> None:
    request = _request(_dag(), "t2", tmp_path, shipped=False)
    assert request.__reduce_ex__(5)[0].__name__ != "_request_from"
    back = pickle.loads(cloudpickle.dumps(request, protocol=5))
    assert back.operator.task_id == "t2" and back.conf == request.conf


def test_shipped_requests_run_in_a_worker_process_and_reuse_its_operators(tmp_path: Path) -> None:
    dag = _dag(size=2)
    results: dict[Any, Any] = {}
    done = threading.Semaphore(0)

    def on_done(outcome: Any) -> None:
        results[outcome.key] = outcome
        done.release()

    pool = get_executor("process", 1)
    pool.start(on_done)
    try:
        for round_ in range(3):
            for task_id in ("t0", "t1"):
                pool.submit((round_, task_id), run_task, (_request(dag, task_id, tmp_path, shipped=True),))
        for _ in range(6):
            assert done.acquire(timeout=60)
    finally:
        pool.shutdown()
    assert all(outcome.ok for outcome in results.values()), results
    values = {key: outcome.value for key, outcome in results.items()}
    assert all(isinstance(v, TaskResult) for v in values.values())
    assert {key: pickle.loads(v.output.data) if v.output.kind == "pickle" else v.output.data
            for key, v in values.items() if key[0] == 2} == {(2, "t0"): "0", (2, "t1"): "2"}
    assert len({outcome.pid for outcome in results.values()}) == 1
