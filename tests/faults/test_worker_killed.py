"""A gunicorn worker is killed (SIGKILL) during a burst of sends: acknowledged means stored once."""

import http.client
import os
import signal
import threading
import time

import pytest
from sqlalchemy import func, select

from portal.audit import AuditEvent, verify
from portal.extensions import db
from portal.messaging import sending
from portal.messaging.models import Message, Thread
from tests.messaging.conftest import PASSWORD, assign, make_user
from tests.ops.support import Browser, Gunicorn, bodies_by_text

pytestmark = pytest.mark.slow
PEOPLE = 4
SENDERS_EACH = 2
KILLS = 3


def test_every_send_acknowledged_before_a_worker_was_killed_is_stored_exactly_once(
        app, tmp_path):
    pairs = []
    for n in range(PEOPLE):
        client, therapist = make_user("client"), make_user("therapist")
        assign(client, therapist)
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject=f"Burst {n}", body=f"opening {n}",
                                         notify=False)
        pairs.append((client.email_address, f"/messages/{thread.id}"))
    db.session.commit()

    server = Gunicorn({"ENV_NAME": "testing", "INSTANCE_PATH": str(tmp_path),
                       "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]},
                      workers=2, workdir=tmp_path / "gunicorn")
    outcomes: list[tuple[str, str]] = []
    lock, stop = threading.Lock(), threading.Event()

    def send(browser: Browser, path: str, token: str, name: str) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            body = f"burst {name} #{n}"
            try:
                status, _, _ = browser.post(f"{path}/reply", {"csrf_token": token, "body": body},
                                            timeout=20)
                outcome = str(status)
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
            with lock:
                outcomes.append((body, outcome))

    try:
        senders = []
        for email, path in pairs:
            browser = Browser(server.base)
            browser.sign_in(email, PASSWORD)
            token = browser.csrf(path)
            for s in range(SENDERS_EACH):
                senders.append(threading.Thread(target=send, daemon=True,
                                                args=(browser, path, token, f"{email}/{s}")))
        for thread in senders:
            thread.start()
        killed, serving = [], server.worker_pids()  # workers busy since the start
        time.sleep(0.5)
        for _ in range(KILLS):
            alive = server.worker_pids()
            victim = next((pid for pid in serving if pid in alive), alive[0])
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
            time.sleep(0.7)
        stop.set()
        for thread in senders:
            thread.join(timeout=30)
        assert server.process.poll() is None  # the master replaced the workers
        assert not set(killed) & set(server.worker_pids())
        assert Browser(server.base).get("/healthz")[0] == 200
    finally:
        server.stop()

    acknowledged = [body for body, outcome in outcomes if outcome == "302"]
    interrupted = [body for body, outcome in outcomes if outcome != "302"]
    assert {outcome for _, outcome in outcomes} - {"302"} <= {
        "RemoteDisconnected", "ConnectionResetError", "ConnectionRefusedError",
        "BrokenPipeError", "IncompleteRead",  # killed between the headers and the body
    }, outcomes  # a failure is a cut connection, never a 500
    assert len(acknowledged) >= 20
    assert interrupted, "no kill landed on a request in flight"

    db.session.remove()
    stored = bodies_by_text()
    assert all(stored.get(body) == 1 for body in acknowledged)
    assert all(stored.get(body, 0) <= 1 for body in interrupted)
    sent = {body for body, _ in outcomes} | {f"opening {n}" for n in range(PEOPLE)}
    assert set(stored) <= sent
    for thread in db.session.scalars(select(Thread)):
        rows = db.session.scalar(select(func.count()).select_from(Message)
                                 .where(Message.thread_id == thread.id))
        assert thread.message_count == thread.therapist_unread == rows  # counters kept whole
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "message.sent")) == sum(stored.values())
    assert verify().ok
