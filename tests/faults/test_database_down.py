"""PostgreSQL stops in the middle of a run of sends, then comes back."""

import json
import threading
import time
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select

from portal.audit import verify
from portal.extensions import db
from portal.messaging.models import Message, Thread
from tests.messaging.conftest import PASSWORD, assign, make_user
from tests.ops.support import Browser, Gunicorn, bodies_by_text, build_app, upgrade_to_head

pytestmark = pytest.mark.slow


@dataclass
class Sender:
    """Replies into one thread in a loop; remembers what the server said about each."""

    browser: Browser
    thread_path: str
    token: str
    outcomes: list[tuple[str, str]] = field(default_factory=list)  # (body, status or error)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            body = f"mid-run message {n}"
            try:
                status, _, _ = self.browser.post(f"{self.thread_path}/reply",
                                                 {"csrf_token": self.token, "body": body},
                                                 timeout=15)
                self.outcomes.append((body, str(status)))
            except OSError as exc:
                self.outcomes.append((body, type(exc).__name__))
            time.sleep(0.05)

    def statuses(self) -> list[str]:
        return [status for _, status in self.outcomes]


def test_postgresql_stopped_mid_run_answers_503_then_nothing_is_lost(own_postgres, tmp_path):
    app = build_app(own_postgres.url, tmp_path)
    upgrade_to_head(app)
    with app.app_context():
        client, therapist = make_user("client", "Alex Rivera"), make_user("therapist", "Colleen")
        assign(client, therapist)
        client_email, therapist_email, totp = (client.email_address, therapist.email_address,
                                               therapist.totp)
        therapist_id = therapist.id
        db.session.remove()
        db.engine.dispose()

    server = Gunicorn({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": own_postgres.url,
                       "INSTANCE_PATH": str(tmp_path)}, workers=2, threads=2,
                      workdir=tmp_path / "gunicorn")
    try:
        alex, colleen = Browser(server.base), Browser(server.base)
        alex.sign_in(client_email, PASSWORD)
        colleen.sign_in(therapist_email, PASSWORD, totp)
        form = {"csrf_token": alex.csrf("/messages/new"), "recipient": str(therapist_id),
                "subject": "Sleep", "body": "first message"}
        status, headers, _ = alex.post("/messages/new", form)
        assert status == 302
        thread_path = headers["Location"].split("#")[0]
        sender = Sender(alex, thread_path, form["csrf_token"])
        worker = threading.Thread(target=sender.run, daemon=True)
        worker.start()
        time.sleep(0.6)

        own_postgres.stop("immediate")  # a crash: no checkpoint, WAL replayed on start
        time.sleep(0.3)
        status, _, page = alex.get(thread_path)
        assert status == 503
        assert "The portal is briefly unavailable" in page and "Nothing you sent" in page
        assert colleen.get("/dashboard")[0] == 503
        status, _, body = alex.get("/readyz")
        assert status == 503 and json.loads(body)["failing"][0] == "database"
        assert alex.get("/healthz")[0] == 200

        own_postgres.start()
        deadline = time.monotonic() + 10
        while alex.get("/readyz")[0] != 200:
            assert time.monotonic() < deadline, "not ready 10 s after the database came back"
            time.sleep(0.1)
        time.sleep(0.6)
        sender.stop.set()
        worker.join(timeout=20)

        statuses = sender.statuses()
        assert set(statuses) <= {"302", "503"}, statuses  # never a 500, never a dropped line
        first_503 = statuses.index("503")
        last_503 = len(statuses) - 1 - statuses[::-1].index("503")
        assert "302" in statuses[:first_503]  # sends worked before,
        assert "302" in statuses[last_503 + 1:]  # and again after the database came back
        status, _, page = alex.get(thread_path)
        assert status == 200
        assert colleen.get("/dashboard")[0] == 200
        reply = {"csrf_token": colleen.csrf(thread_path), "body": "therapist after the outage"}
        assert colleen.post(f"{thread_path}/reply", reply)[0] == 302
    finally:
        server.stop()
    log = (tmp_path / "gunicorn" / "gunicorn.log").read_text()
    assert "Traceback" not in log

    acknowledged = {body for body, status in sender.outcomes if status == "302"}
    refused = {body for body, status in sender.outcomes if status != "302"}
    with app.app_context():
        stored = bodies_by_text()
        assert all(stored.get(body) == 1 for body in acknowledged)  # nothing lost, no doubles
        assert all(stored.get(body, 0) <= 1 for body in refused)  # a 503 may hide a commit
        assert stored["first message"] == stored["therapist after the outage"] == 1
        thread = db.session.scalar(select(Thread))
        assert thread.message_count == db.session.scalar(select(func.count())
                                                          .select_from(Message))
        assert thread.client_unread == 1
        assert verify().ok
        db.session.remove()
        db.engine.dispose()
