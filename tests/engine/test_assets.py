"""Assets end to end: a producer's outlets record events, consumers scheduled on assets get one run
per condition met, with the triggering events in their context, and hosts sharing a store agree."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nbflow import DAG, Asset, AssetOrTimeSchedule, task
from nbflow.engine.scheduler import Scheduler
from nbflow.settings import load_settings
from nbflow.store import Store

SALES = Asset("file:///data/sales.csv", extra={"format": "csv"})
STOCK = Asset("s3://bucket/stock")
PRICES = Asset("prices")


@pytest.fixture
def settings(nbflow_home: Path, store_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NBFLOW_DATABASE_URL", store_url)
    monkeypatch.setenv("NBFLOW_POLL_INTERVAL", "0")  # every pass looks at the store
    return load_settings()


@pytest.fixture
def store(settings) -> Any:
    opened = Store.open(settings)
    try:
        yield opened
    finally:
        opened.close()


def producer(dag_id: str, outlets: list[Asset], *, fail: bool = False) -> DAG:
    with DAG(dag_id, schedule=None, timezone="UTC") as d:
        @task(outlets=outlets)
        def make() -> str:
            if fail:
                raise RuntimeError("no data today")
            return "made"

        make()
    return d


def consumer(dag_id: str, schedule: Any) -> DAG:
    with DAG(dag_id, schedule=schedule, timezone="UTC") as d:
        @task
        def read() -> dict[str, list[dict[str, Any]]]:
            from nbflow import get_current_context

            events = get_current_context()["triggering_asset_events"]
            return {uri: [{"source": e["source"], "source_dag_id": e["source_dag_id"],
                           "source_task_id": e["source_task_id"], "extra": e["extra"]} for e in found]
                    for uri, found in events.items()}

        read()
    return d


def drive(scheduler: Scheduler, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        scheduler.tick()
        if scheduler.idle():
            return
        assert time.monotonic() < deadline, scheduler._detail()
        scheduler._wait(0.02)


def drive_all(hosts: list[Scheduler], timeout: float = 30.0) -> None:
    """Step hosts sharing a store in turn until none has anything left: a run one of them claimed
    tasks of ends only when that one records their outcomes."""
    deadline = time.monotonic() + timeout
    while True:
        for host in hosts:
            host.tick()
        if all(host.idle() for host in hosts):
            return
        assert time.monotonic() < deadline, [host._detail() for host in hosts]
        hosts[0]._wait(0.02)


def trigger(store: Store, dag: DAG) -> None:
    from nbflow.engine.lifecycle import create_run

    create_run(store, dag, datetime.now(UTC).replace(microsecond=0), run_type="manual")


def runs(store: Store, dag_id: str) -> list[dict[str, Any]]:
    return sorted(store.list_runs(dag_id, limit=None), key=lambda r: r["id"])


def test_outlets_record_one_event_and_start_one_consumer_run(settings, store) -> None:
    prod, cons = producer("produce", [SALES]), consumer("consume", SALES)
    s = Scheduler(settings=settings, store=store, executor="thread", dags=[prod, cons])
    try:
        s.tick()  # registers the consumer: only events from now on count
        trigger(store, prod)
        drive(s)
    finally:
        s.close()
    events = store.list_asset_events()
    assert [(e["uri"], e["source"], e["source_dag_id"], e["source_task_id"]) for e in events] == [
        (SALES.uri, "task", "produce", "make")]
    (run,) = runs(store, "consume")
    assert run["run_type"] == "asset_triggered" and run["state"] == "success"
    assert run["logical_date"] == events[0]["created_at"]  # the time of the triggering event
    assert run["run_id"].startswith("asset_triggered__")
    output = store.get_output(run["id"], "read")
    import json
    assert json.loads(output["value_json"]) == {
        SALES.uri: [{"source": "task", "source_dag_id": "produce", "source_task_id": "make", "extra": {}}]}
    (asset,) = store.list_assets()
    assert asset["uri"] == SALES.uri and asset["extra"] == {"format": "csv"}
    assert asset["last_event"]["id"] == events[0]["id"]


def test_triggering_events_reach_a_worker_process(settings, store) -> None:
    prod, cons = producer("produce_p", [STOCK]), consumer("consume_p", STOCK)
    s = Scheduler(settings=settings, store=store, executor="process", dags=[prod, cons])
    try:
        s.tick()
        trigger(store, prod)
        drive(s, timeout=60)
    finally:
        s.close()
    (run,) = runs(store, "consume_p")
    assert run["state"] == "success"
    import json
    seen = json.loads(store.get_output(run["id"], "read")["value_json"])
    assert seen == {STOCK.uri: [{"source": "task", "source_dag_id": "produce_p", "source_task_id": "make",
                                  "extra": {}}]}


def test_a_failed_producer_records_nothing(settings, store) -> None:
    prod, cons = producer("produce_f", [SALES], fail=True), consumer("consume_f", SALES)
    s = Scheduler(settings=settings, store=store, executor="thread", dags=[prod, cons])
    try:
        s.tick()
        trigger(store, prod)
        drive(s)
    finally:
        s.close()
    assert runs(store, "produce_f")[0]["state"] == "failed"
    assert store.list_asset_events() == []
    assert runs(store, "consume_f") == []


def test_and_waits_for_both_or_runs_on_either(settings, store) -> None:
    both = consumer("both", SALES & STOCK)
    either = consumer("either", SALES | STOCK)
    listed = consumer("listed", [SALES, STOCK])
    s = Scheduler(settings=settings, store=store, executor="thread", dags=[both, either, listed])
    try:
        s.tick()
        store.emit_asset_event(SALES.uri, source="api")
        drive(s)
        assert runs(store, "both") == [] and runs(store, "listed") == []
        assert len(runs(store, "either")) == 1
        store.emit_asset_event(STOCK.uri, source="api")
        drive(s)
    finally:
        s.close()
    assert len(runs(store, "both")) == 1 and len(runs(store, "listed")) == 1
    assert len(runs(store, "either")) == 2
    (run,) = runs(store, "both")
    import json
    assert set(json.loads(store.get_output(run["id"], "read")["value_json"])) == {SALES.uri, STOCK.uri}


def test_nested_condition(settings, store) -> None:
    nested = consumer("nested", SALES & (STOCK | PRICES))
    s = Scheduler(settings=settings, store=store, executor="thread", dags=[nested])
    try:
        s.tick()
        store.emit_asset_event(PRICES.uri, source="cli")
        drive(s)
        assert runs(store, "nested") == []
        store.emit_asset_event(SALES.uri, source="cli")
        drive(s)
    finally:
        s.close()
    assert [r["run_type"] for r in runs(store, "nested")] == ["asset_triggered"]


def test_events_before_a_consumer_existed_do_not_start_it(settings, store) -> None:
    store.emit_asset_event(SALES.uri, source="api")
    cons = consumer("late", SALES)
    s = Scheduler(settings=settings, store=store, executor="thread", dags=[cons])
    try:
        drive(s)
    finally:
        s.close()
    assert runs(store, "late") == []


def test_two_hosts_see_one_event_and_make_one_run(settings, store, store_url) -> None:
    cons = consumer("shared", SALES)
    hosts = [Scheduler(settings=settings, store=Store(store_url), executor="thread", dags=[cons]) for _ in range(2)]
    try:
        for host in hosts:
            host.tick()
        store.emit_asset_event(SALES.uri, source="api")
        # both hosts look at the same pending event before either creates its run
        pending = [h.store.pending_asset_events("shared", [SALES.uri]) for h in hosts]
        assert pending[0] == pending[1] and len(pending[0]) == 1
        created = [h.tick().created for h in hosts]
        assert sorted(len(c) for c in created) == [0, 1], created
        drive_all(hosts)
    finally:
        for host in hosts:
            host.close()
            host.store.close()
    (run,) = runs(store, "shared")
    assert run["state"] == "success"


def test_lost_race_for_events_creates_nothing(settings, store) -> None:
    """The claim itself: a second creation over the same events, as a host that read them before
    the first host's run was written would try, makes no run."""
    from nbflow.engine.lifecycle import create_run

    cons = consumer("raced", SALES)
    store.register_asset_consumer("raced")
    event = store.emit_asset_event(SALES.uri, source="api")
    when = event["created_at"]
    first = create_run(store, cons, when, run_type="asset_triggered", consume=[event["id"]])
    second = create_run(store, cons, when, run_type="asset_triggered", consume=[event["id"]])
    assert first is not None and second is None
    assert len(runs(store, "raced")) == 1


def test_asset_or_time_schedule_runs_on_both(settings, store) -> None:
    d = consumer("both_ways", AssetOrTimeSchedule(timetable="@daily", assets=SALES))
    s = Scheduler(settings=settings, store=store, executor="thread", dags=[d])
    try:
        s.tick()
        store.emit_asset_event(SALES.uri, source="api")
        drive(s)
    finally:
        s.close()
    kinds = sorted(r["run_type"] for r in runs(store, "both_ways"))
    assert kinds == ["asset_triggered", "scheduled"]


def test_a_paused_consumer_gets_one_run_for_its_waiting_events_when_unpaused(settings, store) -> None:
    from nbflow.engine.sync import source_kind, sync_dag

    cons = consumer("paused_consumer", SALES)
    sync_dag(store, cons, source_kind=source_kind(cons))
    store.set_paused("paused_consumer", True)
    s = Scheduler(settings=settings, store=store, executor="thread", dags=[cons])
    try:
        s.tick()  # known as a consumer while paused: events from now on wait for it
        first, second = (store.emit_asset_event(SALES.uri, source="api", extra={"n": n}) for n in (1, 2))
        drive(s)
        assert runs(store, "paused_consumer") == []
        store.set_paused("paused_consumer", False)
        drive(s)
    finally:
        s.close()
    (run,) = runs(store, "paused_consumer")
    assert run["logical_date"] == second["created_at"]
    import json
    seen = json.loads(store.get_output(run["id"], "read")["value_json"])
    assert [e["extra"] for e in seen[SALES.uri]] == [{"n": 1}, {"n": 2}]


def test_an_assets_extra_follows_its_producers_definition(settings, store) -> None:
    first = producer("extra_v1", [Asset(SALES.uri, extra={"version": 1})])
    second = producer("extra_v2", [Asset(SALES.uri, extra={"version": 2})])
    s = Scheduler(settings=settings, store=store, executor="thread", dags=[first, second])
    try:
        trigger(store, first)
        drive(s)
        assert [a["extra"] for a in store.list_assets()] == [{"version": 1}]
        store.emit_asset_event(SALES.uri, source="api", extra={"note": "by hand"})
        assert [a["extra"] for a in store.list_assets()] == [{"version": 1}]  # an event from outside keeps it
        trigger(store, second)
        drive(s)
    finally:
        s.close()
    assert [a["extra"] for a in store.list_assets()] == [{"version": 2}]
    assert [e["extra"] for e in store.list_asset_events()] == [{}, {"note": "by hand"}, {}]


def test_two_hosts_ticking_at_once_make_one_run_per_event(settings, store, store_url) -> None:
    import threading

    cons = consumer("raced_hosts", SALES)
    hosts = [Scheduler(settings=settings, store=Store(store_url), executor="thread", dags=[cons]) for _ in range(2)]
    rounds = 4
    try:
        for host in hosts:
            host.tick()
        for _ in range(rounds):
            store.emit_asset_event(SALES.uri, source="api")
            barrier = threading.Barrier(2)
            created: list[list[str]] = []

            def tick(host: Scheduler) -> None:
                barrier.wait()
                created.append(host.tick().created)

            threads = [threading.Thread(target=tick, args=(host,)) for host in hosts]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert sorted(len(c) for c in created) == [0, 1], created
            drive_all(hosts)
    finally:
        for host in hosts:
            host.close()
            host.store.close()
    made = runs(store, "raced_hosts")
    assert len(made) == rounds and {r["state"] for r in made} == {"success"}
