"""Fixtures for the account tests: a real SMTP server, builders, and a guard against 500s."""

import asyncio
import socket
import threading
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller

# Every account test runs its requests in isolation and fails when one answered 500.
from .support import guarded_requests, isolated_requests, no_server_errors  # noqa: F401

__all__ = ["SMTPServer"]


class _Collector:
    """An aiosmtpd handler that keeps the raw bytes of every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.recipients: list[tuple[str, ...]] = []
        self.delay = 0.0  # seconds to take per message, like a slow mail server
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        with self._lock:
            self.messages.append(content)
            self.recipients.append(tuple(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


@dataclass
class SMTPServer:
    """A loopback SMTP server (aiosmtpd) that records what it receives."""

    host: str
    port: int
    handler: _Collector = field(default_factory=_Collector)
    controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname=self.host, port=self.port,
                                     server_hostname="localhost", ready_timeout=5.0)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server(app):
    """Run a real SMTP server on 127.0.0.1 and send mail to it right after each commit."""
    server = SMTPServer("127.0.0.1", _free_port("127.0.0.1"))
    server.start()
    app.config.update(MAIL_SERVER=server.host, MAIL_PORT=server.port, MAIL_USE_TLS=False,
                      MAIL_USERNAME=None, MAIL_PASSWORD=None, MAIL_TIMEOUT=5,
                      MAIL_SEND_AFTER_COMMIT=True)
    try:
        yield server
    finally:
        server.stop()
