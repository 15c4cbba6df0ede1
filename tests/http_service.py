"""A real HTTP service on 127.0.0.1 for the HTTP operator and sensor tests (no network).

Each path answers from a script: a list of (status, body, headers) whose n-th entry answers the
n-th request to that path, the last one repeated after. Every request is recorded (method, path,
headers, body), so a test can check what reached the service.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Answer = tuple[int, Any, dict[str, str]]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Service:
    host: str
    port: int
    scripts: dict[str, list[Answer]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def answer(self, path: str, *answers: tuple[int, Any] | Answer) -> None:
        """Script ``path``: the n-th request gets the n-th answer, the last one repeated after."""
        self.scripts[path] = [(a[0], a[1], a[2] if len(a) > 2 else {}) for a in answers]  # type: ignore[misc]

    def requests_to(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path.split("?")[0] == path]

    def _next(self, received: Received) -> Answer:
        with self.lock:
            self.received.append(received)
            script = self.scripts.get(received.path.split("?")[0])
            if not script:
                return (404, "no such path", {})
            count = sum(1 for r in self.received if r.path.split("?")[0] == received.path.split("?")[0])
            return script[min(count, len(script)) - 1]


def _handler(service: Service) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, payload, headers = service._next(Received(self.command, self.path, dict(self.headers.items()), body))
            if callable(payload):
                payload = payload(service.received[-1])
            if isinstance(payload, (dict, list)):
                payload, headers = json.dumps(payload), {"Content-Type": "application/json", **headers}
            data = payload.encode() if isinstance(payload, str) else payload
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
            pass

    return Handler


@pytest.fixture
def service() -> Iterator[Service]:
    """The service, on a free port, for one test."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    found = Service("127.0.0.1", server.server_address[1])
    server.RequestHandlerClass = _handler(found)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
