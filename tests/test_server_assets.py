"""The REST API's assets, on a real Jupyter server: an event posted there starts a DAG scheduled on
the asset, the listing names producers and consumers, bad input is a one-line 400."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest

from jupyter_api import *  # noqa: F403 (the test server's fixtures)
from jupyter_api import Api
from nbflow import DAG, Asset, task
from nbflow.engine.scheduler import Scheduler
from nbflow.settings import load_settings
from nbflow.store import Store

DAILY = Asset("gs://lake/daily")


def _dags() -> list[DAG]:
    with DAG("write_daily", timezone="UTC") as producer:
        @task(outlets=[DAILY])
        def write() -> int:
            return 1

        write()
    with DAG("after_daily", schedule=[DAILY], timezone="UTC") as consumer:
        @task
        def read() -> list:
            from nbflow import get_current_context

            return [[e["source"], e["extra"]] for e in get_current_context()["triggering_asset_events"][DAILY.uri]]

        read()
    return [producer, consumer]


def test_posted_event_starts_a_run_and_assets_are_listed(api: Api, server_env: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBFLOW_POLL_INTERVAL", "0")
    settings = load_settings()
    with Store.open(settings) as store:
        host = Scheduler(settings=settings, store=store, executor="thread", dags=_dags())
        try:
            host.tick()
            posted = api.post("assets/events", body={"uri": DAILY.uri, "extra": {"day": "2024-06-01"}}, expect=201)
            assert posted["event"]["uri"] == DAILY.uri and posted["event"]["source"] == "api"
            deadline = time.monotonic() + 30
            while True:
                host.tick()
                if host.idle():
                    break
                assert time.monotonic() < deadline
                host._wait(0.02)
        finally:
            host.close()
        (run,) = store.list_runs("after_daily", limit=None)
        assert run["run_type"] == "asset_triggered" and run["state"] == "success"
        assert json.loads(store.get_output(run["id"], "read")["value_json"]) == [["api", {"day": "2024-06-01"}]]
    (listed,) = api.get("assets")["assets"]
    assert listed["uri"] == DAILY.uri and listed["last_event"]["id"] == posted["event"]["id"]
    assert listed["producers"] == [{"dag_id": "write_daily", "task_id": "write"}]
    assert listed["consumers"] == ["after_daily"]
    # each DAG's view names the assets it connects through, and the DAG on the other side
    produced = api.get("dags", "write_daily")["assets"]
    assert produced == {"produces": [{"uri": DAILY.uri, "tasks": ["write"], "consumers": ["after_daily"]}],
                        "consumes": []}
    consumed = api.get("dags", "after_daily")["assets"]
    assert consumed["produces"] == [] and consumed["consumes"][0]["uri"] == DAILY.uri
    assert consumed["consumes"][0]["producers"] == [{"dag_id": "write_daily", "task_id": "write"}]
    assert datetime.fromisoformat(consumed["consumes"][0]["last_event_at"]) == datetime.fromisoformat(
        listed["last_event"]["created_at"])


@pytest.mark.parametrize(("body", "words"), [
    ({"uri": "two words"}, "holds a space"),
    ({"uri": "s3://"}, "nothing after it"),
    ({}, "needs its asset"),
    ({"uri": "s3://b/k", "extra": [1]}, "extra must be a dict"),
    ({"uri": "s3://b/k", "when": "now"}, "'when' is not a field"),
])
def test_bad_events_are_one_line_400s(api: Api, server_env: Path, body: dict[str, object], words: str) -> None:
    error = api.error("POST", "assets/events", body=body, expect=400)
    assert words in error["message"] and "\n" not in error["message"]
    assert api.get("assets")["assets"] == []


def test_assets_need_a_token_and_write_permission(api: Api, server_env: Path) -> None:
    from jupyter_server.auth import Authorizer

    for method, parts in (("GET", ("assets",)), ("POST", ("assets", "events"))):
        for headers in ({"Authorization": ""}, {"Authorization": "token not-the-token"}):
            response = api.request(method, *parts, headers=headers, expect=None,
                                   body=json.dumps({"uri": DAILY.uri}) if method == "POST" else None)
            assert response.code == 403, (method, parts, response.code)

    class ReadOnly(Authorizer):
        def is_authorized(self, handler: object, user: object, action: str, resource: str) -> bool:
            return action == "read" if resource == "nbflow" else True

    api.serverapp.web_app.settings["authorizer"] = ReadOnly(
        parent=api.serverapp, identity_provider=api.serverapp.identity_provider)
    assert api.get("assets")["assets"] == []
    assert api.error("POST", "assets/events", body={"uri": DAILY.uri}, expect=403)["error"] == "Forbidden"
    with Store.open(load_settings()) as store:
        assert store.list_asset_events() == []


CONSUMER_FILE = '''
from nbflow import DAG, Asset, task

with DAG("on_landing", schedule=Asset("file:///landing/orders.csv"), timezone="UTC") as d:
    @task
    def read(triggering_asset_events=None):
        return sorted(triggering_asset_events)

    read()
'''


class TestWithTheServersOwnHost:
    @pytest.fixture
    def nbflow_config(self) -> dict[str, object]:
        return {"run_scheduler": True}

    def test_a_posted_event_starts_a_run_on_the_servers_host(self, api: Api, server_env: Path) -> None:
        from sqlalchemy import create_engine, select

        from jupyter_api import wait_for
        from nbflow.store.schema import asset_consumer

        (server_env / "dags" / "on_landing.py").write_text(CONSUMER_FILE)
        api._loop.run_until_complete(api.serverapp.extension_manager.start_all_extensions())
        try:
            settings = load_settings()
            Store.open(settings).close()  # the schema, made by whichever side comes first
            engine = create_engine(settings.database_url)
            try:
                def registered() -> bool:
                    with engine.connect() as conn:
                        return conn.execute(select(asset_consumer.c.dag_id)).first() is not None
                wait_for(registered, 60, "the server's host to know the consumer")
            finally:
                engine.dispose()
            api.post("assets/events", body={"uri": "file:///landing/orders.csv"}, expect=201)
            with Store.open(settings) as store:
                (run,) = wait_for(lambda: [r for r in store.list_runs("on_landing") if r["state"] == "success"], 60,
                                  "the asset-triggered run")
                assert run["run_type"] == "asset_triggered"
                assert json.loads(store.get_output(run["id"], "read")["value_json"]) == ["file:///landing/orders.csv"]
        finally:
            api._loop.run_until_complete(api.serverapp.extension_manager.stop_all_extensions())
