"""20 clients and their therapists write at once through a real server on PostgreSQL."""

import http.client
import os
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from portal.accounts.models import User
from portal.audit import AuditEvent, verify
from portal.extensions import db
from portal.messaging import lists, sending
from portal.messaging.models import Message, Thread
from tests.messaging.conftest import PASSWORD, assign, make_user
from tests.ops.support import Browser, Gunicorn, bodies_by_text

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"),
                       reason="needs PostgreSQL: set TEST_DATABASE_URL (CI does). SQLite "
                              "takes one writer at a time, so there is no race to prove."),
]
CLIENTS = 20
CLIENTS_PER_THERAPIST = 4
SECONDS = 10.0


class Loop:
    """One person writing into one conversation until the deadline, reading now and then."""

    def __init__(self, browser: Browser, path: str, token: str, name: str, deadline: float):
        self.browser, self.path, self.token, self.name = browser, path, token, name
        self.deadline = deadline
        self.acknowledged: list[str] = []
        self.problems: list[str] = []

    def run(self) -> None:
        n = 0
        while time.monotonic() < self.deadline:
            n += 1
            body = f"{self.name} #{n}"
            try:
                status, _, _ = self.browser.post(f"{self.path}/reply",
                                                 {"csrf_token": self.token, "body": body})
                if status == 302:
                    self.acknowledged.append(body)
                else:
                    self.problems.append(f"send {status}")
                if n % 3 == 0:  # open the conversation: marks the other side's messages read
                    status, _, _ = self.browser.get(self.path)
                    if status != 200:
                        self.problems.append(f"read {status}")
            except (OSError, http.client.HTTPException) as exc:
                self.problems.append(type(exc).__name__)


def unread_in_rows(thread: Thread) -> tuple[int, int]:
    """(client's unread, therapist's unread) counted from the messages themselves."""
    def count(sender_id) -> int:
        return db.session.scalar(select(func.count()).select_from(Message).where(
            Message.thread_id == thread.id, Message.sender_id == sender_id,
            Message.read_at.is_(None)))
    return count(thread.therapist_id), count(thread.client_id)


def test_twenty_clients_and_their_therapists_sending_at_once_lose_nothing(app, tmp_path):
    therapists = [make_user("therapist") for _ in range(CLIENTS // CLIENTS_PER_THERAPIST)]
    people = []
    for n in range(CLIENTS):
        client = make_user("client")
        therapist = therapists[n // CLIENTS_PER_THERAPIST]
        assign(client, therapist)
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject=f"Conversation {n}", body=f"opening {n}")
        people.append((client, therapist, f"/messages/{thread.id}"))

    server = Gunicorn({"ENV_NAME": "testing", "INSTANCE_PATH": str(tmp_path),
                       "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]},
                      workers=3, threads=4, workdir=tmp_path / "gunicorn")
    try:
        sessions: dict = {}
        for user in [p[0] for p in people] + therapists:
            browser = Browser(server.base)
            browser.sign_in(user.email_address, PASSWORD, user.totp)
            sessions[user.id] = (browser, browser.csrf("/account"))
        deadline = time.monotonic() + SECONDS
        loops = []
        for n, (client, therapist, path) in enumerate(people):
            for who, label in ((client, f"client {n}"), (therapist, f"therapist to {n}")):
                browser, token = sessions[who.id]
                loops.append(Loop(browser, path, token, label, deadline))
        workers = [threading.Thread(target=loop.run, daemon=True) for loop in loops]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=SECONDS + 60)
        assert not any(worker.is_alive() for worker in workers)
    finally:
        server.stop()

    assert [p for loop in loops for p in loop.problems] == []
    acknowledged = [body for loop in loops for body in loop.acknowledged]
    assert len(acknowledged) >= 100  # on 2 CPUs it is many hundreds
    db.session.remove()

    stored = bodies_by_text()
    assert Counter(acknowledged) == Counter({b: c for b, c in stored.items()
                                             if not b.startswith("opening ")})
    assert sum(stored.values()) == len(acknowledged) + CLIENTS
    threads = list(db.session.scalars(select(Thread)))
    for thread in threads:
        rows = db.session.scalar(select(func.count()).select_from(Message)
                                 .where(Message.thread_id == thread.id))
        assert thread.message_count == rows
        assert (thread.client_unread, thread.therapist_unread) == unread_in_rows(thread)
    for therapist in therapists:
        assert lists.unread_count(db.session.get(User, therapist.id)) == sum(
            t.therapist_unread for t in threads if t.therapist_id == therapist.id)
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "message.sent")) == sum(stored.values())
    assert verify().ok
