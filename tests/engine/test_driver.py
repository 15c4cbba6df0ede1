"""RunDriver under scheduler hosts: fenced claims, driven step by step against a real store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from nbflow import DAG
from nbflow.engine.driver import RunDriver
from nbflow.executors.base import Executor
from nbflow.operators import PythonOperator
from nbflow.engine.lifecycle import task_rows
from nbflow.store import Store

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class RecordingExecutor(Executor):
    """Takes submissions and runs nothing: the test decides what happens next."""

    name = "recording"
    in_process = True
    free_slots = 8

    def __init__(self) -> None:
        super().__init__(8)
        self.submitted: list[str] = []
        self.cancelled: list[tuple[str, str]] = []

    def submit(self, key: tuple[int, str], fn: Any, args: tuple[Any, ...], timeout: float | None = None,
               memory_limit: int | None = None, resources: dict[str, float] | None = None, priority: int = 0) -> None:
        self.submitted.append(key[1])

    def cancel(self, key: tuple[int, str], reason: str) -> bool:
        self.cancelled.append((key[1], reason))
        return True

    def shutdown(self, wait: bool = True) -> None:
        self._closed = True


def _noop() -> None:
    return None


@pytest.fixture
def opened(settings: Any) -> Iterator[Store]:
    with Store.open(settings) as store:
        yield store


def _dag() -> DAG:
    with DAG("fenced", schedule=None, start_date="2024-01-01", timezone="UTC") as d:
        up = PythonOperator(task_id="up", python_callable=_noop)
        up >> PythonOperator(task_id="p", python_callable=_noop, priority_weight=10)
        PythonOperator(task_id="q", python_callable=_noop, priority_weight=1)
    return d


def test_a_flush_never_writes_a_planned_state_over_the_hosts_own_claim(opened: Store, settings: Any) -> None:
    """Issue 11, item 1: host A claims p and q in one batch; starting p needs the output of ``up``
    (which another host ran), and reading it flushes A's buffer, which held q's older "scheduled".
    That write must not land over q's claim, or host B claims q again and runs the same try."""
    d = _dag()
    run_pk = opened.create_run(dag_id=d.dag_id, run_id="manual__1", run_type="manual", logical_date=T0,
                               data_interval_start=T0, data_interval_end=T0, conf={}, state="running",
                               task_rows=task_rows(d))
    opened.record(run_pk, task_changes=[{"task_id": "up", "state": "success", "try_number": 1}],
                  outputs=[{"task_id": "up", "value_json": "1", "size": 1, "kind": "json"}])
    row = opened.get_run_by_pk(run_pk)

    a, on_a = RunDriver(d, opened, settings, run=row, host_id="host-a"), RecordingExecutor()
    a.begin()
    assert a.dispatch(on_a, 8) == 2
    assert on_a.submitted == ["p", "q"]  # p first: starting it reads up's output, flushing A's buffer
    q = opened.get_task_instance(d.dag_id, "manual__1", "q")
    assert (q["state"], q["claimed_by"], q["try_number"]) == ("running", "host-a", 1)

    b, on_b = RunDriver(d, opened, settings, run=opened.get_run_by_pk(run_pk), host_id="host-b"), RecordingExecutor()
    b.begin()
    b.dispatch(on_b, 8)
    assert on_b.submitted == []
    a.flush()
    tries = [(t["task_id"], t["try_number"], t["state"]) for t in opened.get_tries(run_pk)]
    assert tries == [("p", 1, "running"), ("q", 1, "running")]  # each claim wrote its try's row


def test_a_write_decided_before_another_hosts_claim_is_refused(opened: Store, settings: Any) -> None:
    """A stale planning write (host A planned q, host B claimed it since) and a stale outcome (A's
    try was adopted by B) are refused by the store, and A reads the task again instead."""
    d = _dag()
    run_pk = opened.create_run(dag_id=d.dag_id, run_id="manual__1", run_type="manual", logical_date=T0,
                               data_interval_start=T0, data_interval_end=T0, conf={}, state="running",
                               task_rows=task_rows(d))
    row = opened.get_run_by_pk(run_pk)
    a = RunDriver(d, opened, settings, run=row, host_id="host-a")
    a.begin()  # plans up and q "scheduled", buffered
    claimed = opened.claim_task_instances(run_pk, ["q"], "host-b", from_states=RunDriver.CLAIMABLE,
                                          to_state="running", try_numbers={"q": 1}, seen={"q": 0})
    assert claimed == {"q": 1}
    a.flush()
    q = opened.get_task_instance(d.dag_id, "manual__1", "q")
    assert (q["state"], q["claimed_by"], q["fence"]) == ("running", "host-b", 1)
    assert "q" in a.elsewhere and opened.get_task_instance(d.dag_id, "manual__1", "up")["state"] == "scheduled"

    # host-b's try is adopted by host-c: host-b's outcome of it no longer lands, host-c's does
    taken = opened.adopt(run_pk, ["q"], "host-b", "host-c")
    assert taken == {"q": (2, 1)}
    assert opened.record(run_pk, task_changes=[{"task_id": "q", "state": "success", "fence": 1}],
                         tries=[{"task_id": "q", "try_number": 1, "state": "success", "fence": 1}],
                         outputs=[{"task_id": "q", "value_json": "2", "fence": 1}], fenced=True) == ["q"]
    assert opened.get_task_instance(d.dag_id, "manual__1", "q")["state"] == "running"
    assert opened.get_tries(run_pk, "q")[0]["state"] == "running" and opened.get_outputs(run_pk) == {}
    assert opened.record(run_pk, task_changes=[{"task_id": "q", "state": "up_for_retry", "fence": 2}],
                         tries=[{"task_id": "q", "try_number": 1, "state": "up_for_retry", "fence": 2,
                                 "error": "WorkerLostError"}], fenced=True) == []
    (try_row,) = opened.get_tries(run_pk, "q")
    assert try_row["state"] == "up_for_retry" and try_row["start_date"] is not None  # the claim's start stays

    # a claim from a stale view is refused even though the state is claimable
    assert opened.claim_task_instances(run_pk, ["q"], "host-a", from_states=RunDriver.CLAIMABLE,
                                       seen={"q": 0}) == {}
    # clearing raises the fence too: a holder's later write is refused
    opened.clear_task_instances(run_pk, {"q": 1})
    assert opened.record(run_pk, task_changes=[{"task_id": "q", "state": "success", "fence": 2}],
                         fenced=True) == ["q"]


def test_a_try_taken_over_by_another_host_is_stopped_here(opened: Store, settings: Any) -> None:
    """A host that was taken for dead comes back: its writes of the try it still runs are refused,
    and it stops that try instead of letting it run on for nothing."""
    d = _dag()
    run_pk = opened.create_run(dag_id=d.dag_id, run_id="manual__1", run_type="manual", logical_date=T0,
                               data_interval_start=T0, data_interval_end=T0, conf={}, state="running",
                               task_rows=task_rows(d))
    a, on_a = RunDriver(d, opened, settings, run=opened.get_run_by_pk(run_pk), host_id="host-a"), RecordingExecutor()
    a.begin()
    a.dispatch(on_a, 8)
    a.flush()
    assert "q" in on_a.submitted and on_a.cancelled == []
    assert opened.adopt(run_pk, ["q"], "host-a", "host-b")  # host-a was taken for dead meanwhile
    a._set("q", a.states["q"], heartbeat_at=T0)  # any later write of q by host-a
    a.flush()
    assert [task for task, _ in on_a.cancelled] == ["q"]
    assert "taken over by another host" in on_a.cancelled[0][1] and "q" in a.elsewhere


def test_adopting_a_task_this_driver_still_sees_waiting_fails_its_try(opened: Store, settings: Any) -> None:
    """Host A drives the run but has not re-read it since host B ran ``up`` and claimed ``p``: A
    still sees p waiting (``none``). B dies and A adopts p. The store held p as running, so its try
    is lost and retried; A must not take its own stale view for the truth and stop (the crash soak
    saw "cannot go from 'none' to 'up_for_retry'" end a daemon)."""
    d = _dag()
    d.task_dict["p"].retries = 2
    run_pk = opened.create_run(dag_id=d.dag_id, run_id="manual__1", run_type="manual", logical_date=T0,
                               data_interval_start=T0, data_interval_end=T0, conf={}, state="running",
                               task_rows=task_rows(d))
    a = RunDriver(d, opened, settings, run=opened.get_run_by_pk(run_pk), host_id="host-a")
    a.begin()
    a.flush()
    assert a.states["p"] == "none"
    assert opened.claim_task_instances(run_pk, ["up"], "host-b", from_states=RunDriver.CLAIMABLE,
                                       to_state="running", try_numbers={"up": 1}, seen={"up": 0})
    opened.record(run_pk, task_changes=[{"task_id": "up", "state": "success", "try_number": 1}],
                  outputs=[{"task_id": "up", "value_json": "null", "size": 4, "kind": "json"}])
    opened.record(run_pk, task_changes=[{"task_id": "p", "state": "scheduled"}])
    seen = opened.get_task_instance(d.dag_id, "manual__1", "p")["fence"]
    assert opened.claim_task_instances(run_pk, ["p"], "host-b", from_states=RunDriver.CLAIMABLE,
                                       to_state="running", try_numbers={"p": 1}, seen={"p": seen})

    taken = opened.adopt(run_pk, ["p"], "host-b", "host-a")
    (fence, try_number), = taken.values()
    a.lost("p", "WorkerLostError: host-b stopped", fence=fence, try_number=try_number)
    a.flush()
    p = opened.get_task_instance(d.dag_id, "manual__1", "p")
    assert (p["state"], p["try_number"]) == ("up_for_retry", 1)
    assert [(t["try_number"], t["state"]) for t in opened.get_tries(run_pk, "p")] == [(1, "up_for_retry")]


def test_a_retry_another_host_took_is_not_woken_here(opened: Store, settings: Any) -> None:
    """A read ``q`` waiting for its retry; host B then ran that retry. When A reads q as running
    elsewhere, A's wake-up for the retry is gone: it must not make a running task scheduled (the
    crash soak saw "cannot go from 'running' to 'scheduled'" end a daemon)."""
    d = _dag()
    run_pk = opened.create_run(dag_id=d.dag_id, run_id="manual__1", run_type="manual", logical_date=T0,
                               data_interval_start=T0, data_interval_end=T0, conf={}, state="running",
                               task_rows=task_rows(d))
    opened.record(run_pk, task_changes=[{"task_id": "q", "state": "up_for_retry", "try_number": 1,
                                         "next_retry_at": T0}])
    a = RunDriver(d, opened, settings, run=opened.get_run_by_pk(run_pk), host_id="host-a")
    a.begin()
    a.flush()
    assert "q" in a.wake_at
    seen = opened.get_task_instance(d.dag_id, "manual__1", "q")["fence"]
    assert opened.claim_task_instances(run_pk, ["q"], "host-b", from_states=RunDriver.CLAIMABLE,
                                       to_state="running", try_numbers={"q": 2}, seen={"q": seen})
    a.refresh()
    assert a.states["q"] == "running" and "q" in a.elsewhere and "q" not in a.wake_at
    a.release_due(datetime(2030, 1, 1, tzinfo=UTC))
    assert a.states["q"] == "running" and "q" not in a.ready
