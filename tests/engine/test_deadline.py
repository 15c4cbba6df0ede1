"""A DAG's ``deadline``: a run not finished that long after its logical date is told once to the
DAG's targets, however many hosts watch it (the store records the notice), and goes on. Hosts are
stepped with ``tick(now)``; the notice is received by a real HTTP server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from http_service import Service, service  # noqa: F401 (the fixture)
from nbflow import DAG
from nbflow.engine import controls
from nbflow.engine.scheduler import Scheduler
from nbflow.errors import InvalidOptionError
from nbflow.operators import EmptyOperator
from nbflow.store import Store

LOGICAL = datetime(2024, 3, 5, 0, 30, tzinfo=UTC)


@pytest.fixture
def store(settings):
    opened = Store.open(settings)
    try:
        yield opened
    finally:
        opened.close()


def test_a_run_past_its_deadline_is_told_once_among_two_hosts(settings, store: Store, service: Service) -> None:
    service.answer("/late", (200, "ok"))
    with DAG("nightly", schedule=None, timezone="Asia/Seoul", deadline=timedelta(hours=2),
             deadline_notify=[f"json://{service.host}:{service.port}/late"]) as d:
        EmptyOperator(task_id="load")
    run_id = controls.trigger(d, logical_date=LOGICAL, store=store)
    controls.pause("nightly", store=store)  # the run stays queued: not finished
    hosts = [Scheduler(settings=settings, dags=[d], executor="thread", create_runs=False) for _ in range(2)]
    try:
        for host in hosts:
            host.tick(LOGICAL + timedelta(hours=1, minutes=59))  # not yet
        assert service.requests_to("/late") == []
        for _ in range(3):
            for host in hosts:
                host._due["poll"] = 0.0  # look at the store again at once
                host.tick(LOGICAL + timedelta(hours=2, minutes=5))
    finally:
        for host in hosts:
            host.close(grace=5)
    [notice] = service.requests_to("/late")
    message = notice.json()
    assert message["title"] == "[nbflow] nightly run of 2024-03-05 09:30 KST (Asia/Seoul) is past its deadline"
    assert "not finished 2h 5m after its logical date (deadline 2h)" in message["message"]
    assert "State: queued" in message["message"]
    row = store.get_run("nightly", run_id)
    assert row["state"] == "queued" and row["deadline_notified_at"] is not None
    assert [e["kind"] for e in store.list_events("nightly", limit=None)].count("deadline_missed") == 1


def test_a_run_that_finished_in_time_is_not_told(settings, store: Store, service: Service) -> None:
    service.answer("/late", (200, "ok"))
    with DAG("quick", schedule=None, timezone="UTC", deadline=timedelta(minutes=5),
             notify_on_failure=[f"json://{service.host}:{service.port}/late"]) as d:
        EmptyOperator(task_id="load")
    assert d.test().state == "success"
    host = Scheduler(settings=settings, dags=[d], executor="thread", create_runs=False)
    try:
        host.tick(datetime.now(UTC) + timedelta(hours=1))
    finally:
        host.close(grace=5)
    assert service.requests_to("/late") == []


def test_deadline_options_are_checked(nbflow_home) -> None:
    with pytest.raises(InvalidOptionError, match=r"DAG 'd': deadline=-1 .*0 or more seconds"):
        DAG("d", deadline=-1)
    with pytest.raises(InvalidOptionError, match=r"DAG 'd': deadline_notify=.*give deadline=timedelta"):
        DAG("d", deadline_notify=["json://h/x"])
