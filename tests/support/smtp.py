"""A real SMTP server on loopback (aiosmtpd) that records what it receives."""

import asyncio
import email
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Envelope:
    """One message as the server received it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes  # the raw message, as sent

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


class Collector:
    """An aiosmtpd handler that keeps every envelope it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.delay = 0.0  # seconds to take per message, like a slow mail server
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        with self._lock:
            self.envelopes.append(Envelope(envelope.mail_from, tuple(envelope.rcpt_tos),
                                           content))
        return "250 Message accepted for delivery"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class SMTPServer:
    """A loopback SMTP server that can be stopped and started again on the same port.

    Created stopped, on a free port; `start()` and `stop()` can be called any number of times.
    """

    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, chosen once so that a restart listens on the same one
    handler: Collector = field(default_factory=Collector)
    controller: Controller | None = None
    controller_kwargs: dict = field(default_factory=dict)  # TLS, AUTH ... for aiosmtpd

    def __post_init__(self) -> None:
        if not self.port:
            self.port = free_port(self.host)

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
