"""A real SMTP server on 127.0.0.1 (aiosmtpd) for the e-mail tests: every message it takes is kept
with its envelope, so a test checks what a mail server received, Bcc included."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    def text(self) -> str:
        body = self.message.get_body(preferencelist=("plain", "html"))
        return body.get_content() if body is not None else ""


@dataclass
class MailServer:
    host: str
    port: int
    received: list[Mail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def mails(self) -> list[Mail]:
        with self.lock:
            return list(self.received)


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.server.lock:
            self.server.received.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp_server(monkeypatch: pytest.MonkeyPatch, nbflow_home: Any) -> Iterator[MailServer]:
    """The server, on a free port, with the smtp_* settings of the test pointing at it."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    found = MailServer("127.0.0.1", port)
    controller = Controller(_Handler(found), hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("NBFLOW_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("NBFLOW_SMTP_PORT", str(port))
    monkeypatch.setenv("NBFLOW_SMTP_STARTTLS", "false")
    monkeypatch.setenv("NBFLOW_SMTP_MAIL_FROM", "nbflow@example.com")
    try:
        yield found
    finally:
        controller.stop()
