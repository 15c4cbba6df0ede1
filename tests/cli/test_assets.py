"""``nbflow assets``: an event emitted from the command line starts a DAG scheduled on the asset,
``list`` names producers and consumers, and bad input is one line and a non-zero exit."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cli.conftest import nbflow, one_line
from nbflow import DAG, Asset, task
from nbflow.engine.scheduler import Scheduler
from nbflow.settings import load_settings
from nbflow.store import Store

SALES = Asset("s3://bucket/sales.csv")


def _dags() -> list[DAG]:
    with DAG("make_sales", timezone="UTC") as producer:
        @task(outlets=[SALES])
        def make() -> int:
            return 1

        make()
    with DAG("read_sales", schedule=SALES, timezone="UTC") as consumer:
        @task
        def read() -> dict:
            from nbflow import get_current_context

            events = get_current_context()["triggering_asset_events"]
            return {uri: [[e["source"], e["extra"]] for e in found] for uri, found in events.items()}

        read()
    return [producer, consumer]


def test_emit_starts_a_run_and_list_names_the_dags(nbflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBFLOW_POLL_INTERVAL", "0")
    settings = load_settings()
    with Store.open(settings) as store:
        host = Scheduler(settings=settings, store=store, executor="thread", dags=_dags())
        try:
            host.tick()  # the consumer is known (and its DAG stored) before the event
            out = nbflow("assets", "emit", SALES.uri, "--extra", '{"rows": 120}', home=nbflow_home).stdout
            assert out.startswith("asset event ") and SALES.uri in out
            deadline = time.monotonic() + 30
            while True:
                host.tick()
                if host.idle():
                    break
                assert time.monotonic() < deadline
                host._wait(0.02)
        finally:
            host.close()
        (run,) = store.list_runs("read_sales", limit=None)
        assert run["run_type"] == "asset_triggered" and run["state"] == "success"
        seen = json.loads(store.get_output(run["id"], "read")["value_json"])
        assert seen == {SALES.uri: [["cli", {"rows": 120}]]}
    listed = nbflow("assets", "list", home=nbflow_home).stdout
    assert SALES.uri in listed and "(cli)" in listed
    assert "produced by: make_sales.make" in listed and "consumed by: read_sales" in listed
    (row,) = json.loads(nbflow("assets", "list", "--json", home=nbflow_home).stdout)
    assert row["uri"] == SALES.uri and row["last_event"]["extra"] == {"rows": 120}
    assert row["producers"] == [{"dag_id": "make_sales", "task_id": "make"}] and row["consumers"] == ["read_sales"]


@pytest.mark.parametrize("args, expected", [
    (["sales data"], "asset 'sales data' is not valid: it holds a space"),
    (["file://"], "asset 'file://' is not valid: it has a scheme and nothing after it"),
    (["s3://b/k", "--extra", "{nope"], "--extra is not JSON"),
    (["s3://b/k", "--extra", "[1, 2]"], "--extra must be a dict with text keys"),
])
def test_bad_emits_are_one_line(nbflow_home: Path, args: list[str], expected: str) -> None:
    assert expected in one_line(nbflow("assets", "emit", *args, home=nbflow_home, check=1))
    with Store.open(load_settings()) as store:
        assert store.list_asset_events() == []
