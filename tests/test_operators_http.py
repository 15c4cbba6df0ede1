"""HttpOperator and HttpHook: real runs against a real local HTTP service, the connection giving the
base URL, basic auth and headers."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from http_service import Service, service  # noqa: F401 (the fixture)
from nbflow import DAG, Connection, task
from nbflow.errors import InvalidOptionError
from nbflow.operators import HttpHook, HttpOperator, SimpleHttpOperator
from nbflow.store import Store

SECRET = "s3cr3t-pa55"


@pytest.fixture
def api_conn(service: Service, nbflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> Service:
    """Connection http_default, from the environment, pointing at the service."""
    monkeypatch.setenv("NBFLOW_CONN_HTTP_DEFAULT", service.url)
    return service


def log_of(run: Any, task_id: str) -> str:
    return Path(run.log_paths[task_id]).read_text(encoding="utf-8")


def test_get_with_query_and_post_with_json_body(api_conn: Service) -> None:
    api_conn.answer("/items", (200, {"items": [1, 2]}))
    api_conn.answer("/orders", (201, {"id": 7}))
    with DAG("http_calls", schedule=None) as d:
        get = HttpOperator(task_id="get", method="GET", endpoint="items", data={"page": 2})
        post = HttpOperator(task_id="post", endpoint="/orders", data={"sku": "a-1", "qty": 3},
                            response_filter=lambda response: response.json()["id"])
        get >> post
    run = d.test()
    assert run.task_states == {"get": "success", "post": "success"}
    assert json.loads(run.outputs["get"]) == {"items": [1, 2]}  # the default output: the response text
    assert run.outputs["post"] == 7
    (got,) = api_conn.requests_to("/items")
    assert got.method == "GET" and got.path == "/items?page=2"
    (posted,) = api_conn.requests_to("/orders")
    assert posted.method == "POST" and posted.json() == {"sku": "a-1", "qty": 3}
    assert posted.headers["Content-Type"] == "application/json"


def test_form_body_when_the_headers_say_so(api_conn: Service) -> None:
    api_conn.answer("/form", (200, "ok"))
    with DAG("http_form", schedule=None) as d:
        HttpOperator(task_id="send", endpoint="form", data={"a": "1 2", "b": "x"},
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert d.test().outputs["send"] == "ok"
    assert api_conn.requests_to("/form")[0].body == b"a=1+2&b=x"


def test_basic_auth_and_headers_come_from_the_stored_connection(service: Service, nbflow_home: Path) -> None:
    service.answer("/secure", (200, "in"))
    with Store.open() as store:
        store.set_connection("my_api", conn_type="http", host=service.host, port=service.port, login="ann",
                             password=SECRET, extra={"X-Api-Key": "k-123", "headers": {"Accept": "text/plain"}})
    with DAG("http_auth", schedule=None) as d:
        HttpOperator(task_id="call", http_conn_id="my_api", method="GET", endpoint="secure",
                     headers={"X-Trace": "t1"}, log_response=True)
    run = d.test()
    assert run.task_states["call"] == "success" and run.outputs["call"] == "in"
    (got,) = service.requests_to("/secure")
    assert got.headers["Authorization"] == "Basic " + base64.b64encode(f"ann:{SECRET}".encode()).decode()
    assert (got.headers["X-Api-Key"], got.headers["Accept"], got.headers["X-Trace"]) == ("k-123", "text/plain", "t1")
    log = log_of(run, "call")
    assert "in" in log and SECRET not in log


def test_request_options_in_the_extra_are_not_headers(service: Service, nbflow_home: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    service.answer("/moved", (302, "", {"Location": "/elsewhere"}))
    service.answer("/elsewhere", (200, "followed"))
    monkeypatch.setenv("NBFLOW_CONN_HTTP_DEFAULT",
                       Connection("http_default", "http", host=service.host, port=service.port,
                                  extra={"allow_redirects": False, "timeout": 5, "X-Key": "k"}).get_uri())
    with DAG("http_extra_options", schedule=None) as d:
        HttpOperator(task_id="stay", method="GET", endpoint="moved", extra_options={"check_response": False})
        HttpOperator(task_id="follow", method="GET", endpoint="moved", extra_options={"allow_redirects": True})
    run = d.test()
    assert run.task_states == {"stay": "success", "follow": "success"}
    assert run.outputs["follow"] == "followed" and len(service.requests_to("/elsewhere")) == 1
    first = service.requests_to("/moved")[0]
    assert first.headers["X-Key"] == "k" and "timeout" not in {k.lower() for k in first.headers}
    monkeypatch.setenv("NBFLOW_CONN_HTTP_DEFAULT", f"{service.url}?allow_redirects=false&timeout=5")
    run = d.test()  # a URI's query is text, read as what it says
    assert run.task_states == {"stay": "success", "follow": "success"} and len(service.requests_to("/elsewhere")) == 2
    monkeypatch.setenv("NBFLOW_CONN_HTTP_DEFAULT", Connection("http_default", "http", host=service.host,
                                                              extra={"timeout": "soon"}).get_uri())
    run = d.test()
    assert "connection 'http_default'" in run.errors["stay"] and "timeout" in run.errors["stay"]


def test_an_error_status_fails_the_task_with_one_line_and_the_body_in_the_log(service: Service, nbflow_home: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBFLOW_CONN_HTTP_DEFAULT", f"http://ann:{SECRET}@{service.host}:{service.port}")
    service.answer("/boom", (500, "database exploded: table missing"))
    with DAG("http_fails", schedule=None) as d:
        HttpOperator(task_id="call", method="GET", endpoint="boom")
    run = d.test()
    assert run.task_states["call"] == "failed"
    error = run.errors["call"]
    line = f"DAG 'http_fails', task 'call': GET {service.url}/boom answered 500 Internal Server Error."
    assert line in error
    assert SECRET not in error
    log = log_of(run, "call")
    assert "database exploded: table missing" in log and SECRET not in log
    # the service did get the credentials, in a header
    assert service.requests_to("/boom")[0].headers["Authorization"].startswith("Basic ")


def test_an_unreachable_service_fails_naming_the_url(service: Service, nbflow_home: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBFLOW_CONN_DOWN", "http://127.0.0.1:1")
    with DAG("http_down", schedule=None) as d:
        HttpOperator(task_id="call", http_conn_id="down", method="GET", endpoint="x")
    run = d.test()
    assert run.task_states["call"] == "failed"
    assert "GET http://127.0.0.1:1/x could not be sent" in run.errors["call"]


def test_response_check_false_fails_and_true_passes(api_conn: Service) -> None:
    api_conn.answer("/status", (200, {"state": "degraded"}))
    with DAG("http_check", schedule=None) as d:
        HttpOperator(task_id="strict", method="GET", endpoint="status",
                     response_check=lambda response: response.json()["state"] == "ok")
        HttpOperator(task_id="lenient", method="GET", endpoint="status",
                     response_check=lambda response, ds: response.status_code == 200 and bool(ds))
    run = d.test()
    assert run.task_states == {"strict": "failed", "lenient": "success"}
    assert "response_check returned False" in run.errors["strict"]
    assert f"GET {api_conn.url}/status" in run.errors["strict"]


def test_templated_endpoint_data_and_headers(api_conn: Service) -> None:
    api_conn.answer("/reports/2024-03-05", (200, "ok"))
    with DAG("http_templated", schedule=None, params={"team": "blue"}) as d:
        HttpOperator(task_id="call", endpoint="reports/{{ ds }}", data={"team": "{{ params.team }}"},
                     headers={"X-Run": "{{ run_id }}"})
    run = d.test(logical_date="2024-03-05T06:00:00+00:00")
    assert run.task_states["call"] == "success"
    (got,) = api_conn.requests_to("/reports/2024-03-05")
    assert got.json() == {"team": "blue"} and got.headers["X-Run"] == run.run_id


def test_an_upstream_output_as_data(api_conn: Service) -> None:
    api_conn.answer("/ingest", (200, "stored"))
    with DAG("http_upstream", schedule=None) as d:
        @task
        def rows() -> list[int]:
            return [1, 2, 3]

        HttpOperator(task_id="push", endpoint="ingest", data=rows())
    run = d.test()
    assert run.task_states == {"rows": "success", "push": "success"}
    assert api_conn.requests_to("/ingest")[0].json() == [1, 2, 3]


def test_a_task_calls_a_connection_itself(service: Service, nbflow_home: Path) -> None:
    service.answer("/v1/ping", (200, {"pong": True}))
    with Store.open() as store:
        store.set_connection("my_api", **Connection.from_uri("my_api", f"http://bob:{SECRET}@{service.host}:{service.port}").fields())
    with DAG("http_from_task", schedule=None) as d:
        @task
        def with_hook() -> Any:
            return HttpHook("GET", "my_api").run("v1/ping").json()

        @task
        def by_hand() -> str:
            import urllib.request

            conn = Connection.get("my_api")
            with urllib.request.urlopen(f"http://{conn.host}:{conn.port}/v1/ping") as answer:
                return answer.read().decode()

        with_hook() >> by_hand()
    run = d.test()
    assert run.outputs["with_hook"] == {"pong": True} and json.loads(run.outputs["by_hand"]) == {"pong": True}
    hooked, plain = service.requests_to("/v1/ping")
    assert hooked.headers["Authorization"] == "Basic " + base64.b64encode(f"bob:{SECRET}".encode()).decode()
    assert "Authorization" not in plain.headers


def test_a_missing_connection_fails_the_task_naming_it(nbflow_home: Path) -> None:
    with DAG("http_noconn", schedule=None) as d:
        HttpOperator(task_id="call", http_conn_id="nowhere", endpoint="x")
    run = d.test()
    assert run.task_states["call"] == "failed" and "nowhere" in run.errors["call"]


def test_base_url_rules_follow_airflows_hook(nbflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = {
        "http://h:81": "http://h:81/a",
        "https://h": "https://h/a",                      # a connection of type https
        "http://h/https": "https://h/a",                # the schema names the scheme (Airflow's way)
        "http://https%3A%2F%2Fapi.example%2Fv2": "https://api.example/v2/a",  # a host with its scheme
    }
    for uri, url in cases.items():
        monkeypatch.setenv("NBFLOW_CONN_C", uri)
        hook = HttpHook("GET", "c")
        hook.get_conn()
        assert hook.url_from_endpoint("a") == url, uri
    assert SimpleHttpOperator is HttpOperator


@pytest.mark.parametrize(("kwargs", "option"), [
    ({"method": "FETCH"}, "method='FETCH'"),
    ({"extra_options": {"timeout": -1}}, "extra_options['timeout']=-1"),
    ({"extra_options": {"verify": "yes", "retries": 3}}, "extra_options['retries']=3"),
    ({"extra_options": {"timeout": "5"}}, "extra_options['timeout']='5'"),
    ({"extra_options": [("timeout", 5)]}, "extra_options="),
    ({"data": 5}, "data=5"),
    ({"headers": "Accept: x"}, "headers='Accept: x'"),
    ({"response_check": True}, "response_check=True"),
    ({"response_filter": "text"}, "response_filter='text'"),
    ({"endpoint": 5}, "endpoint=5"),
    ({"log_response": "yes"}, "log_response='yes'"),
])
def test_bad_options_are_refused_when_the_dag_is_built(kwargs: dict[str, Any], option: str) -> None:
    with DAG("http_bad", schedule=None), pytest.raises(InvalidOptionError) as caught:
        HttpOperator(task_id="call", **kwargs)
    message = str(caught.value)
    assert message.startswith(f"DAG 'http_bad', task 'call': {option}") and "\n" not in message
