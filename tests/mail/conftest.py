"""A real SMTP server on loopback (aiosmtpd), and the helpers mail tests share."""

import email
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Envelope:
    """One message as the server received it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.content, policy=default_policy)

    @property
    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()

    @property
    def html(self) -> str | None:
        part = self.message.get_body(("html",))
        return part.get_content() if part is not None else None


class _Collector:
    """An aiosmtpd handler that keeps every envelope it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        with self._lock:
            self.envelopes.append(Envelope(envelope.mail_from, tuple(envelope.rcpt_tos),
                                           content))
        return "250 Message accepted for delivery"


@dataclass
class SMTPServer:
    """A loopback SMTP server that can be stopped and started again on the same port."""

    host: str
    port: int
    handler: _Collector = field(default_factory=_Collector)
    controller: Controller | None = None
    controller_kwargs: dict = field(default_factory=dict)  # TLS, AUTH ... for aiosmtpd

    @property
    def envelopes(self) -> list[Envelope]:
        return list(self.handler.envelopes)

    @property
    def running(self) -> bool:
        return self.controller is not None

    def start(self) -> None:
        if self.controller is None:
            # server_hostname avoids a reverse DNS look-up (getfqdn) on every start.
            options = {"server_hostname": "localhost", "ready_timeout": 5.0,
                       **self.controller_kwargs}
            controller = Controller(self.handler, hostname=self.host, port=self.port, **options)
            controller.start()
            self.controller = controller

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
    """Run a real SMTP server on 127.0.0.1 and point the app's mail settings at it."""
    server = SMTPServer("127.0.0.1", _free_port("127.0.0.1"))
    server.start()
    app.config.update(MAIL_SERVER=server.host, MAIL_PORT=server.port, MAIL_USE_TLS=False,
                      MAIL_USERNAME=None, MAIL_PASSWORD=None, MAIL_TIMEOUT=5)
    try:
        yield server
    finally:
        server.stop()
