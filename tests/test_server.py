"""The REST API of the Jupyter server extension, on a real Jupyter server: DAGs, runs, controls,
errors and authentication. Real DAG files in a real dags_folder, real SQLite, real runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth import Authorizer
from traitlets import List

from jupyter_api import *  # noqa: F403 (the test server's fixtures)
from jupyter_api import Api, wait_for
from nbflow.store import Store

REPO = Path(__file__).resolve().parent.parent

ETL = '''
import time

from nbflow import dag, task


@dag(schedule="0 6 * * *", start_date="2024-01-01", timezone="Asia/Seoul", tags=["sales"], owner="ana",
     description="daily sales", dag_display_name="Daily sales \u2014 Seoul")
def etl():
    @task
    def extract(conf):
        print("extracting", conf)
        return [conf.get("n", 3), 1, 2]

    @task(task_display_name="Load the rows")
    def load(rows):
        print("loading", rows)
        return sorted(rows)

    load(extract())


etl()


@dag(timezone="UTC", default_args={"retries": 0})
def failing():
    @task
    def explode():
        raise RuntimeError("the source is empty")

    explode()


failing()
'''

BROKEN = "import nbflow\ndef oops(:\n"


def big_dag(layers: int = 50, width: int = 100) -> str:
    return textwrap.dedent(f'''
        from nbflow import DAG
        from nbflow.operators import EmptyOperator

        with DAG("big", timezone="UTC"):
            previous = []
            for layer in range({layers}):
                current = [EmptyOperator(task_id=f"t{{layer}}_{{i}}") for i in range({width})]
                for i, t in enumerate(current):
                    if previous:
                        previous[i] >> t
                        previous[(7 * i + 3) % {width}] >> t
                previous = current
    ''')


@pytest.fixture
def dags(server_env: Path) -> Path:
    folder = server_env / "dags"
    (folder / "etl.py").write_text(ETL)
    (folder / "broken.py").write_text(BROKEN)
    return folder


def open_store() -> Store:
    return Store.open()


def finished_run(api: Api, dag_id: str, run_id: str, timeout: float = 60) -> dict[str, Any]:
    return wait_for(lambda: (r := api.get("dags", dag_id, "runs", run_id))["state"] in ("success", "failed") and r,
                    timeout, f"run {run_id} of {dag_id} to finish")


def trigger(api: Api, dag_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
    return api.post("dags", dag_id, "runs", body={"conf": conf or {}}, expect=201)


# -- DAGs ---------------------------------------------------------------------------------------------


def test_dags_lists_the_folder_with_its_import_errors(api: Api, dags: Path) -> None:
    body = api.get("dags")
    by_id = {d["dag_id"]: d for d in body["dags"]}
    assert set(by_id) == {"etl", "failing"}
    etl = by_id["etl"]
    assert etl["schedule"] == "0 6 * * *" and etl["timezone"] == "Asia/Seoul"
    assert etl["schedule_text"] and etl["schedule_text"] != "0 6 * * *"
    assert etl["owner"] == "ana" and etl["tags"] == ["sales"] and etl["description"] == "daily sales"
    assert etl["fileloc"] == str((dags / "etl.py").resolve()) and etl["is_paused"] is False
    assert etl["last_run"] is None and etl["recent_runs"] == [] and etl["active_runs"] == etl["failed_runs"] == 0
    next_run = datetime.fromisoformat(etl["next_run"])
    assert next_run.utcoffset().total_seconds() == 0 and (next_run.hour, next_run.minute) == (21, 0)  # 06:00 in Seoul
    assert by_id["failing"]["schedule"] is None and by_id["failing"]["next_run"] is None
    (error,) = body["import_errors"]
    assert error["fileloc"].endswith("broken.py") and "SyntaxError" in error["summary"] and "Traceback" in error["traceback"]
    assert api.get("import_errors")["import_errors"] == body["import_errors"]
    # a file fixed (or removed) is no longer an error, without restarting anything
    (dags / "broken.py").unlink()
    assert api.get("import_errors")["import_errors"] == []


def test_dag_detail_has_tasks_and_next_runs_in_its_zone(api: Api, dags: Path) -> None:
    detail = api.get("dags", "etl")
    assert detail["tasks"] == [
        {"task_id": "extract", "display_name": "extract", "kind": "python", "upstream": [], "group": None,
         "trigger_rule": "all_success"},
        {"task_id": "load", "display_name": "Load the rows", "kind": "python", "upstream": ["extract"],
         "group": None, "trigger_rule": "all_success"},
    ]
    assert detail["dag_display_name"] == "Daily sales \u2014 Seoul"
    assert api.get("dags", "failing")["dag_display_name"] == "failing"  # no display name: the id
    labels = {node["id"]: node["label"] for node in api.get("dags", "etl", "graph")["nodes"]}
    assert labels == {"extract": "extract", "load": "Load the rows"}
    assert len(detail["next_runs"]) == len(detail["next_runs_local"]) == 5
    for utc, local in zip(detail["next_runs"], detail["next_runs_local"]):
        assert utc.endswith("+00:00") and local.endswith("+09:00") and local[11:16] == "06:00"
        assert datetime.fromisoformat(utc) == datetime.fromisoformat(local)
    nxt = api.get("dags", "etl", "next", params={"n": 3})
    assert nxt["timezone"] == "Asia/Seoul" and nxt["next_runs"] == detail["next_runs"][:3]
    assert nxt["next_runs_local"] == detail["next_runs_local"][:3]
    assert api.get("dags", "failing", "next") == {"timezone": "UTC", "next_runs": [], "next_runs_local": []}


def test_pause_and_unpause_are_kept_in_the_store(api: Api, dags: Path) -> None:
    assert api.patch("dags", "etl", body={"is_paused": True})["is_paused"] is True
    with open_store() as store:
        assert store.get_dag("etl")["is_paused"] is True
    assert api.get("dags", "etl")["is_paused"] is True
    assert api.patch("dags", "etl", body={"is_paused": False})["is_paused"] is False
    with open_store() as store:
        assert store.get_dag("etl")["is_paused"] is False
    bad = api.error("PATCH", "dags", "etl", body={"is_paused": "yes"}, expect=400)
    assert bad["error"] == "InvalidRequestError" and "is_paused" in bad["message"]
    assert api.error("PATCH", "dags", "nope", body={"is_paused": True}, expect=404)["error"] == "DagNotFoundError"


def partitions_dag() -> str:
    return textwrap.dedent('''
        from nbflow import DAG, TaskGroup
        from nbflow.operators import EmptyOperator, PythonOperator

        with DAG("parts", timezone="UTC"):
            start, end = EmptyOperator(task_id="start"), EmptyOperator(task_id="end")
            for g in range(20):
                with TaskGroup(f"partition_{g:02d}") as group:
                    for i in range(100):
                        PythonOperator(task_id=f"load_{i:03d}", python_callable=print)
                start >> group >> end
    ''')


def test_graph_of_five_thousand_tasks_comes_folded_and_laid_out(api: Api, server_env: Path) -> None:
    from nbflow.jupyter.server.dags import LAB_ELEMENTS

    (server_env / "dags" / "big.py").write_text(big_dag())
    api.get("dags")  # the catalog loads the file once
    graph = api.get("dags", "big", "graph", timeout=120)
    nodes, edges = graph["nodes"], graph["edges"]
    # folded as the notebook folds, to a page's worth of readable nodes
    assert 0 < len(nodes) + len(edges) <= LAB_ELEMENTS
    ids = {n["id"] for n in nodes}
    assert set(graph["node_of"]) == {f"t{layer}_{i}" for layer in range(50) for i in range(100)}
    assert set(graph["node_of"].values()) <= ids
    assert sum(n["size"] for n in nodes if not n["is_group"]) == 5000
    assert any(n["is_folded"] for n in nodes) and all(n["size"] > 1 for n in nodes if n["is_folded"])
    assert all(isinstance(n["x"], float) and isinstance(n["y"], float) for n in nodes)
    assert len({(n["x"], n["y"]) for n in nodes}) == len(nodes), "two nodes share a position"
    assert all(e["source"] in ids and e["target"] in ids for e in edges)
    assert graph["severity"][0] == "failed"
    assert graph["styles"]["success"] == {"background": "#008000", "border": "#006400", "text": "#ffffff",
                                          "label": "success", "symbol": "✓"}
    assert {"failed", "running", "queued", "none", "no_status"} <= set(graph["styles"])


def test_graph_opens_a_folded_group_on_demand_and_keeps_the_rest_in_place(api: Api, server_env: Path) -> None:
    (server_env / "dags" / "parts.py").write_text(partitions_dag())
    api.get("dags")
    folded = api.get("dags", "parts", "graph")
    assert {n["id"] for n in folded["nodes"]} == {"start", "end", *(f"group:partition_{g:02d}" for g in range(20))}
    assert {n["label"] for n in folded["nodes"] if n["is_folded"]} == {f"partition_{g:02d} ×100" for g in range(20)}
    opened = api.get("dags", "parts", "graph", params={"open": "group:partition_04"})
    nodes = {n["id"]: n for n in opened["nodes"]}
    assert nodes["group:partition_04"]["is_group"] and nodes["group:partition_04"]["size"] == 100
    parts = [n for n in opened["nodes"] if n["parent"] == "group:partition_04"]
    assert [p["label"] for p in parts] == [f"load_0{k}0–0{k}9 ×10" for k in range(10)]
    assert opened["node_of"]["partition_04.load_042"] == "agg:partition_04.load_040~partition_04.load_049"
    before = {n["id"]: (n["x"], n["y"]) for n in folded["nodes"]}
    assert (nodes["start"]["x"], nodes["start"]["y"]) == before["start"]
    assert nodes["end"]["y"] > max(p["y"] for p in parts)
    # and a part of it, one level further: its ten tasks one by one
    deeper = api.get("dags", "parts", "graph", params=[
        ("open", "group:partition_04"), ("open", "agg:partition_04.load_040~partition_04.load_049")])
    assert deeper["node_of"]["partition_04.load_042"] == "partition_04.load_042"
    bad = api.error("GET", "dags", "parts", "graph", params={"open": "group:nope"}, expect=400)
    assert "draws no node 'group:nope'" in bad["message"]


# -- runs ---------------------------------------------------------------------------------------------


def test_trigger_with_conf_runs_in_the_server_without_blocking(api: Api, dags: Path) -> None:
    started = time.monotonic()
    body = trigger(api, "etl", {"n": 10})
    assert time.monotonic() - started < 10
    assert body["how"] == "started"  # no scheduler host is alive: the server drives it
    run = body["run"]
    assert run["run_type"] == "manual" and run["conf"] == {"n": 10} and run["state"] in ("queued", "running")
    done = finished_run(api, "etl", run["run_id"])
    assert done["state"] == "success"
    assert [ti["task_id"] for ti in done["task_instances"]] == ["extract", "load"]
    assert all(ti["state"] == "success" and ti["try_number"] == 1 and ti["duration"] is not None
               for ti in done["task_instances"])
    assert api.get("dags", "etl", "runs", run["run_id"], "tasks", "load", "output")["value"] == [1, 2, 10]
    listed = api.get("dags", "etl", "runs")["runs"]
    assert [r["run_id"] for r in listed] == [run["run_id"]] and listed[0]["state"] == "success"
    summary = api.get("dags", "etl")
    assert summary["last_run"]["run_id"] == run["run_id"] and summary["active_runs"] == 0
    bad = api.error("POST", "dags", "etl", "runs", body="{not json", expect=400)
    assert bad["error"] == "InvalidRequestError" and "JSON" in bad["message"]
    assert api.error("POST", "dags", "etl", "runs", body={"conf": [1]}, expect=400)["error"] == "InvalidConfError"


def test_a_conf_json_cannot_carry_is_a_400_and_makes_no_run(
        api: Api, dags: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for raw, problem in [
        ('{"conf": {"x": NaN}}', "has nan at conf['x']: JSON has no NaN or infinity"),
        ('{"conf": {"x": [1, Infinity]}}', "has inf at conf['x'][1]"),
        ('{"conf": [1]}', "is a list, not a JSON object"),
        ('{"conf": "day=1"}', "is a str, not a JSON object"),
        ('{"conf": {"s": "\\ud800"}}', "has a string that is not valid Unicode"),
    ]:
        body = api.error("POST", "dags", "etl", "runs", body=raw, expect=400)
        assert body["error"] == "InvalidConfError" and body["dag_id"] == "etl", body
        assert body["message"].startswith(f"DAG 'etl': the run's conf {problem}"), body
    monkeypatch.setenv("NBFLOW_MAX_CONF_BYTES", "64")
    big = api.error("POST", "dags", "etl", "runs", body={"conf": {"rows": "x" * 100}}, expect=400)
    assert "takes 111 bytes as JSON, over the limit of 64 bytes (setting max_conf_bytes)" in big["message"]
    assert api.get("dags", "etl", "runs")["runs"] == []
    with open_store() as store:
        assert store.list_runs("etl") == []


def test_next_runs_asks_for_1_to_1000(api: Api, dags: Path) -> None:
    for n in ("0", "-1", "1001", "100000000"):
        body = api.error("GET", "dags", "etl", "next", params={"n": n}, expect=400)
        assert body["message"] == f"?n={n} is out of range: give a number from 1 to 1000"
    assert len(api.get("dags", "etl", "next", params={"n": 1000})["next_runs"]) == 1000


def test_a_paused_dag_is_queued_not_started(api: Api, dags: Path) -> None:
    api.patch("dags", "etl", body={"is_paused": True})
    body = trigger(api, "etl")
    assert body["how"] == "queued" and body["run"]["state"] == "queued"
    time.sleep(0.5)
    assert api.get("dags", "etl", "runs", body["run"]["run_id"])["state"] == "queued"


def test_clear_mark_and_grid(api: Api, dags: Path) -> None:
    first = trigger(api, "etl")["run"]["run_id"]
    finished_run(api, "etl", first)
    second = trigger(api, "etl", {"n": 5})["run"]["run_id"]
    finished_run(api, "etl", second)

    cleared = api.post("dags", "etl", "runs", first, "clear", body={"task_ids": ["load"], "downstream": True})
    assert cleared["cleared"] == ["load"] and cleared["left_alone"] == [] and cleared["how"] == "started"
    rerun = finished_run(api, "etl", first)
    load = next(ti for ti in rerun["task_instances"] if ti["task_id"] == "load")
    assert rerun["state"] == "success" and load["try_number"] == 2  # the rerun is the next try

    marked = api.post("dags", "etl", "runs", second, "mark",
                      body={"task_ids": ["extract"], "state": "failed", "downstream": True})
    assert marked["marked"] == ["extract", "load"] and marked["how"] is None
    after = api.get("dags", "etl", "runs", second)
    assert after["state"] == "failed" and {ti["state"] for ti in after["task_instances"]} == {"failed"}
    assert api.get("dags", "etl")["failed_runs"] == 1

    grid = api.get("dags", "etl", "grid")
    assert [r["run_id"] for r in grid["runs"]] == sorted([first, second])  # oldest first
    assert grid["tasks"] == ["extract", "load"]
    assert grid["states"] == {first: {"extract": "success", "load": "success"},
                              second: {"extract": "failed", "load": "failed"}}
    assert api.get("dags", "etl", "grid", params={"limit": 1})["runs"][0]["run_id"] == max(first, second)

    wrong = api.error("POST", "dags", "etl", "runs", second, "mark", body={"task_ids": ["load"], "state": "done"},
                      expect=400)
    assert wrong["error"] == "InvalidRequestError" and "success" in wrong["message"]
    unknown = api.error("POST", "dags", "etl", "runs", second, "clear", body={"task_ids": ["nope"]}, expect=404)
    assert unknown["error"] == "TaskNotFoundError"


def test_not_found_answers_are_json_404s(api: Api, dags: Path) -> None:
    assert api.error("GET", "dags", "nope", expect=404)["error"] == "DagNotFoundError"
    missing_run = api.error("GET", "dags", "etl", "runs", "manual__nope", expect=404)
    assert missing_run["error"] == "RunNotFoundError" and missing_run["run_id"] == "manual__nope"
    run_id = trigger(api, "failing")["run"]["run_id"]
    assert finished_run(api, "failing", run_id)["state"] == "failed"
    missing_task = api.error("GET", "dags", "failing", "runs", run_id, "tasks", "nope", expect=404)
    assert missing_task["error"] == "TaskNotFoundError" and "explode" in missing_task["message"]
    no_output = api.error("GET", "dags", "failing", "runs", run_id, "tasks", "explode", "output", expect=404)
    assert "no output" in no_output["message"]
    assert api.error("GET", "dags", "failing", "runs", run_id, "tasks", "explode", "report", expect=404)
    assert api.error("GET", "dags", "failing", "runs", run_id, "tasks", "explode", "log", params={"try": 7},
                     expect=404)["error"] == "NotFoundError"
    assert api.error("GET", "no", "such", "endpoint", expect=404)["error"] == "NotFoundError"


def test_every_endpoint_needs_a_token(api: Api, dags: Path) -> None:
    run_id = trigger(api, "etl")["run"]["run_id"]
    finished_run(api, "etl", run_id)
    task = ("dags", "etl", "runs", run_id, "tasks", "load")
    reads = [("dags",), ("dags", "etl"), ("dags", "etl", "next"), ("dags", "etl", "graph"), ("dags", "etl", "grid"),
             ("dags", "etl", "runs"), ("dags", "etl", "runs", run_id), task, (*task, "log"), (*task, "output"),
             (*task, "notebook"), (*task, "report"), ("import_errors",), ("scheduler",), ("cron",), ("timezones",),
             ("notebooks", "parameters"), ("events",), ("nothing", "here")]
    writes = [("PATCH", ("dags", "etl")), ("POST", ("dags", "etl", "runs")), ("POST", ("dags", "etl", "runs", run_id, "clear")),
              ("POST", ("dags", "etl", "runs", run_id, "mark")), ("POST", ("schedule",))]
    for method, parts in [("GET", p) for p in reads] + writes:
        for headers in ({"Authorization": ""}, {"Authorization": "token not-the-token"}):
            response = api.request(method, *parts, headers=headers, expect=None,
                                   body=json.dumps({"is_paused": True}) if method != "GET" else None)
            assert response.code == 403, (method, parts, response.code, response.body[:300])
            assert run_id.encode() not in response.body
    with open_store() as store:
        assert store.get_dag("etl")["is_paused"] is False
        assert len(store.list_runs("etl")) == 1


class ReadOnlyNbflow(Authorizer):
    """Lets a user read nbflow and change nothing in it; everything else is allowed."""

    asked = List()

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        self.asked.append((action, resource))
        return action == "read" if resource == "nbflow" else True


def test_jupyters_authorizer_decides_with_the_nbflow_resource(api: Api, dags: Path) -> None:
    readonly = ReadOnlyNbflow(parent=api.serverapp, identity_provider=api.serverapp.identity_provider)
    api.serverapp.web_app.settings["authorizer"] = readonly
    assert api.get("dags", "etl")["dag_id"] == "etl"
    denied = api.error("PATCH", "dags", "etl", body={"is_paused": True}, expect=403)
    assert denied["error"] == "Forbidden" and "write" in denied["message"] and "nbflow" in denied["message"]
    assert api.error("POST", "dags", "etl", "runs", body={}, expect=403)["error"] == "Forbidden"
    assert ("read", "nbflow") in readonly.asked and ("write", "nbflow") in readonly.asked
    with open_store() as store:
        assert store.get_dag("etl")["is_paused"] is False and store.list_runs("etl") == []


# -- the rest -------------------------------------------------------------------------------------------


def test_cron_is_checked_phrased_and_run_forward(api: Api, server_env: Path) -> None:
    body = api.get("cron", params={"expression": "30 7 * * 1-5", "timezone": "Europe/Paris", "n": 3})
    assert body["expression"] == "30 7 * * 1-5" and body["timezone"] == "Europe/Paris"
    assert body["description"] and body["description"] != body["expression"]
    assert len(body["next_runs"]) == 3
    for utc, local in zip(body["next_runs"], body["next_runs_local"]):
        when = datetime.fromisoformat(local)
        assert utc.endswith("+00:00") and when.strftime("%H:%M") == "07:30" and when.isoweekday() <= 5
    bad = api.error("GET", "cron", params={"expression": "0 25 * * *"}, expect=400)
    assert bad["error"] == "ScheduleError" and bad["field"] == "hour"
    # the dialog's field takes a cron or a preset: its refusal says so, not "a timedelta, or None"
    assert "cron expression" in bad["message"] and "@daily" in bad["message"]
    assert "timedelta" not in bad["message"] and "None" not in bad["message"]
    zone = api.error("GET", "cron", params={"expression": "@daily", "timezone": "Mars/Base"}, expect=400)
    assert zone["error"] == "TimezoneError" and "Mars/Base" in zone["message"]
    assert api.error("GET", "cron", expect=400)["error"] == "InvalidRequestError"
    assert api.error("GET", "cron", params={"expression": "@daily", "n": "many"}, expect=400)["error"] == "InvalidRequestError"


def test_timezones_are_the_iana_names_with_a_default(api: Api, server_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = api.get("timezones")
    assert body["timezones"] == sorted(body["timezones"])
    assert {"UTC", "Asia/Seoul", "Europe/Paris", "America/New_York"} <= set(body["timezones"])
    assert body["default"] in body["timezones"]


def test_events_after_an_id_tell_of_failed_runs(api: Api, dags: Path) -> None:
    start = api.get("events")
    assert start["events"] == [] and isinstance(start["last_id"], int)
    failed = trigger(api, "failing")["run"]["run_id"]
    finished_run(api, "failing", failed)
    ok = trigger(api, "etl")["run"]["run_id"]
    finished_run(api, "etl", ok)
    # from the very beginning: the first failure of a fresh store is not lost
    assert "run_failed" in [e["kind"] for e in api.get("events", params={"after": 0})["events"]]
    body = api.get("events", params={"after": start["last_id"], "kind": "run_failed"})
    (event,) = body["events"]
    assert event["kind"] == "run_failed" and event["dag_id"] == "failing" and event["run_id"] == failed
    assert event["id"] > start["last_id"] and event["at"].endswith("+00:00")
    everything = api.get("events", params={"after": start["last_id"]})["events"]
    assert {"run_failed", "run_success"} <= {e["kind"] for e in everything}
    assert [e["id"] for e in everything] == sorted(e["id"] for e in everything)
    assert api.get("events", params={"after": body["last_id"], "kind": "run_failed"})["events"] == []


# -- the extension itself -------------------------------------------------------------------------------


def test_run_scheduler_defaults_to_the_nbflow_setting(nbflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from traitlets.config import Config

    from nbflow.jupyter.server.app import NbflowApp

    assert NbflowApp().run_scheduler is False
    monkeypatch.setenv("NBFLOW_SERVER_SCHEDULER", "1")
    assert NbflowApp().run_scheduler is True
    assert NbflowApp(config=Config({"NbflowApp": {"run_scheduler": False}})).run_scheduler is False
    monkeypatch.delenv("NBFLOW_SERVER_SCHEDULER")
    other = nbflow_home.parent / "other_home"  # settings are cached per environment: a home of its own
    other.mkdir()
    (other / "nbflow.toml").write_text("server_scheduler = true\n")
    monkeypatch.setenv("NBFLOW_HOME", str(other))
    assert NbflowApp().run_scheduler is True


@pytest.mark.slow
def test_the_wheel_enables_the_extension_and_jupyter_lists_it(tmp_path: Path) -> None:
    enable = REPO / "jupyter-config" / "server-config" / "nbflow.json"
    assert json.loads(enable.read_text()) == {"ServerApp": {"jpserver_extensions": {"nbflow": True}}}
    shared = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    assert shared["jupyter-config/server-config/nbflow.json"] == "etc/jupyter/jupyter_server_config.d/nbflow.json"
    # the file as an install leaves it in a config folder's jupyter_server_config.d (here the user's,
    # a folder of this test's own), read by `jupyter server extension list`, which also validates
    # that the extension imports and names its app
    config = tmp_path / "user"
    (config / "jupyter_server_config.d").mkdir(parents=True)
    (config / "jupyter_server_config.d" / "nbflow.json").write_text(enable.read_text())
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config)}
    listed = subprocess.run([sys.executable, "-m", "jupyter", "server", "extension", "list"], capture_output=True,
                            text=True, env=env, timeout=120)
    text = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)  # its colours
    section = text[text.index(f"Config dir: {config}"):]
    lines = [ln.strip() for ln in section.splitlines()]
    assert any(ln.startswith("nbflow") and "enabled" in ln for ln in lines), text
    assert any(ln.startswith("nbflow 0.1.0") and ln.endswith("OK") for ln in lines), text
