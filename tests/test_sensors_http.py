"""HttpSensor: real runs that wait on a real local HTTP service, in both modes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from http_service import Service, service  # noqa: F401 (the fixture)
from nbflow import DAG
from nbflow.errors import InvalidOptionError
from nbflow.sensors import HttpSensor, PokeReturnValue


@pytest.fixture
def api_conn(service: Service, nbflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> Service:
    monkeypatch.setenv("NBFLOW_CONN_HTTP_DEFAULT", service.url)
    return service


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_waits_through_404s_until_the_service_answers_200(api_conn: Service, mode: str) -> None:
    api_conn.answer("/ready", (404, "not yet"), (404, "not yet"), (200, "ready"))
    with DAG(f"http_wait_{mode}", schedule=None) as d:
        HttpSensor(task_id="wait", endpoint="ready", poke_interval=0.05, timeout=60, mode=mode)
    run = d.test()
    assert run.task_states["wait"] == "success"
    assert len(api_conn.requests_to("/ready")) == 3  # two "not yet", then done: no poke after


def test_response_check_decides_and_may_hand_on_a_value(api_conn: Service) -> None:
    api_conn.answer("/job", (200, {"state": "running"}), (200, {"state": "running"}), (200, {"state": "done", "rows": 42}))

    def finished(response: Any) -> PokeReturnValue:
        body = response.json()
        return PokeReturnValue(body["state"] == "done", body.get("rows"))

    with DAG("http_job", schedule=None) as d:
        HttpSensor(task_id="wait", endpoint="job", response_check=finished, poke_interval=0.05)
    run = d.test()
    assert run.task_states["wait"] == "success" and run.outputs["wait"] == 42
    assert len(api_conn.requests_to("/job")) == 3


def test_another_error_status_fails_at_once_unless_allowed(api_conn: Service) -> None:
    api_conn.answer("/flaky", (503, "warming up"), (200, "up"))
    with DAG("http_flaky", schedule=None) as d:
        HttpSensor(task_id="strict", endpoint="flaky", poke_interval=0.05)
    run = d.test()
    assert run.task_states["strict"] == "failed"
    assert f"GET {api_conn.url}/flaky answered 503 Service Unavailable" in run.errors["strict"]
    assert "response_error_codes_allowlist" in run.errors["strict"]
    assert "warming up" in Path(run.log_paths["strict"]).read_text(encoding="utf-8")

    api_conn.answer("/flaky2", (503, "warming up"), (200, "up"))
    with DAG("http_allowed", schedule=None) as d2:
        HttpSensor(task_id="patient", endpoint="flaky2", poke_interval=0.05, response_error_codes_allowlist=["404", 503])
    run = d2.test()
    assert run.task_states["patient"] == "success" and len(api_conn.requests_to("/flaky2")) == 2


def test_times_out_while_the_answer_stays_404(api_conn: Service) -> None:
    with DAG("http_never", schedule=None) as d:
        HttpSensor(task_id="wait", endpoint="never", poke_interval=0.05, timeout=0.2)
    run = d.test()
    assert run.task_states["wait"] == "failed" and "SensorTimeoutError" in run.errors["wait"]
    assert "GET never on connection 'http_default'" in run.errors["wait"]
    assert len(api_conn.requests_to("/never")) >= 2


@pytest.mark.parametrize(("kwargs", "option"), [
    ({"method": "BREW"}, "method='BREW'"),
    ({"response_error_codes_allowlist": "404"}, "response_error_codes_allowlist='404'"),
    ({"response_error_codes_allowlist": ["nope"]}, "response_error_codes_allowlist=['nope']"),
    ({"response_error_codes_allowlist": [200]}, "response_error_codes_allowlist=[200]"),
    ({"extra_options": {"check_response": False}}, "extra_options['check_response']=False"),
    ({"extra_options": {"tiemout": 3}}, "extra_options['tiemout']=3"),
    ({"request_params": 3}, "request_params=3"),
    ({"response_check": "ok"}, "response_check='ok'"),
])
def test_bad_options_are_refused_when_the_dag_is_built(kwargs: dict[str, Any], option: str) -> None:
    with DAG("http_bad", schedule=None), pytest.raises(InvalidOptionError) as caught:
        HttpSensor(task_id="wait", endpoint="x", **kwargs)
    assert str(caught.value).startswith(f"DAG 'http_bad', task 'wait': {option}")
