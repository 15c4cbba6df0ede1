"""A real Jupyter server with nbflow's extension, for the server tests, on jupyter_server's own
pytest fixtures (``jp_serverapp``, ``jp_fetch``, ``jp_server_config``, from pytest-jupyter).

The fixtures are imported into each server test module, so that their autouse parts (an event loop
per test, the server's clean-up) stay with those modules instead of reaching the whole suite. Tests
call :class:`Api` synchronously: each request runs the server's event loop until it is answered,
and runs started by the API go on in the server's threads meanwhile.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403 (jp_serverapp, jp_fetch and what they need)
from tornado.httpclient import HTTPClientError, HTTPResponse
from traitlets.config import Config
from waiting import wait_for  # noqa: F401 (the server tests import it from here)

FAST = {"NBFLOW_POLL_INTERVAL": "0.1", "NBFLOW_HEARTBEAT_INTERVAL": "0.2", "NBFLOW_DAG_RELOAD_INTERVAL": "0.5"}


class Api:
    """Requests to ``/nbflow/api/...`` of the test server; answers are checked for their status."""

    def __init__(self, fetch: Callable[..., Any], loop: Any, serverapp: Any) -> None:
        self._fetch, self._loop, self.serverapp = fetch, loop, serverapp

    @property
    def app(self) -> Any:
        """The NbflowApp the server loaded."""
        return self.serverapp.extension_manager.extension_points["nbflow"].app

    def request(self, method: str, *parts: str, body: Any = None, params: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None, expect: int | None = 200, timeout: float = 60) -> HTTPResponse:
        kwargs: dict[str, Any] = {"method": method, "request_timeout": timeout}
        if body is not None:
            kwargs["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
        elif method in ("POST", "PATCH", "PUT"):
            kwargs["body"] = b""
        try:
            response = self._loop.run_until_complete(
                self._fetch("nbflow", "api", *parts, params=params, headers=dict(headers or {}), **kwargs))
        except HTTPClientError as error:
            if error.response is None:
                raise
            response = error.response
        if expect is not None:
            assert response.code == expect, f"{method} {'/'.join(parts)}: {response.code} {response.body[:3000]!r}"
        return response

    def get(self, *parts: str, expect: int = 200, **kwargs: Any) -> Any:
        return json.loads(self.request("GET", *parts, expect=expect, **kwargs).body)

    def post(self, *parts: str, body: Any = None, expect: int = 200, **kwargs: Any) -> Any:
        return json.loads(self.request("POST", *parts, body=body if body is not None else {}, expect=expect, **kwargs).body)

    def patch(self, *parts: str, body: Any, expect: int = 200) -> Any:
        return json.loads(self.request("PATCH", *parts, body=body, expect=expect).body)

    def error(self, method: str, *parts: str, expect: int, **kwargs: Any) -> dict[str, Any]:
        """An error answer: its status is ``expect`` and its body the API's error JSON."""
        response = self.request(method, *parts, expect=expect, **kwargs)
        assert response.headers["Content-Type"].startswith("application/json"), response.headers
        body = json.loads(response.body)
        assert set(body) >= {"error", "message"}, body
        return body

    def run_loop(self, seconds: float) -> None:
        """Let the server's event loop run (what a real server does between requests)."""
        self._loop.run_until_complete(__import__("asyncio").sleep(seconds))




@pytest.fixture
def server_env(nbflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh NBFLOW_HOME whose schedulers look at the store often, so tests do not wait."""
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    (nbflow_home / "dags").mkdir(exist_ok=True)
    return nbflow_home


@pytest.fixture
def nbflow_config() -> dict[str, Any]:
    """Traitlets of NbflowApp for the test server; a test overrides this fixture to change them."""
    return {"run_scheduler": False}


@pytest.fixture
def jp_server_config(nbflow_config: dict[str, Any], server_env: Path) -> Config:
    return Config({"ServerApp": {"jpserver_extensions": {"nbflow": True}}, "NbflowApp": nbflow_config})


@pytest.fixture
def api(jp_fetch: Any, jp_serverapp: Any, jp_asyncio_loop: Any) -> Api:
    return Api(jp_fetch, jp_asyncio_loop, jp_serverapp)
