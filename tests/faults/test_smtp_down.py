"""The mail server is down while people send messages: notices wait, then go exactly once."""

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from portal.db import utcnow
from portal.extensions import db
from portal.mail.models import OutboxMessage
from portal.mail.templates import SUBJECTS
from tests.messaging.conftest import assign, csrf_token, make_user, sign_in

pytestmark = pytest.mark.slow


def outbox() -> list[OutboxMessage]:
    rows = list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at)
                                   .execution_options(populate_existing=True)))
    db.session.commit()
    return rows


def deliver(runner) -> str:
    result = runner.invoke(args=["portal", "deliver-mail", "--once"])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[0]


def test_notifications_wait_in_the_outbox_while_smtp_is_down_then_go_exactly_once(
        app, isolated_requests, smtp_server, runner):
    smtp_server.stop()  # down from the start: nothing listens on its port
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    client = make_user("client", "Alex Rivera")
    colleen, kristen = make_user("therapist", "Colleen Xu"), make_user("therapist", "Kristen Y")
    assign(client, colleen)
    assign(client, kristen)
    browser = app.test_client()
    sign_in(browser, client)

    for therapist in (colleen, kristen):
        response = browser.post("/messages/new", data={
            "csrf_token": csrf_token(browser, "/messages/new"), "recipient": str(therapist.id),
            "subject": "smtp-fault subject", "body": "smtp-fault body, private"})
        assert response.status_code == 302  # the outage never reaches the person writing
        response.close()  # the server has sent the answer: now the notice is tried
    pending = outbox()
    assert [(r.user_id, r.sent_at, r.attempts, r.last_error) for r in pending] == [
        (colleen.id, None, 1, "ConnectionRefusedError"),
        (kristen.id, None, 1, "ConnectionRefusedError")]

    with time_machine.travel(utcnow() + timedelta(minutes=1, seconds=5), tick=True):
        assert deliver(runner) == "mail: 0 sent, 2 failed, 2 pending"  # still down
    assert [r.attempts for r in outbox()] == [2, 2]

    smtp_server.start()
    assert deliver(runner) == "mail: 0 sent, 0 failed, 2 pending"  # waiting out the back-off
    with time_machine.travel(utcnow() + timedelta(minutes=4), tick=True):  # 1 + 2 min back-off
        assert deliver(runner) == "mail: 2 sent, 0 failed, 0 pending"
        assert deliver(runner) == "mail: 0 sent, 0 failed, 0 pending"
    with time_machine.travel(utcnow() + timedelta(hours=2), tick=True):
        assert deliver(runner) == "mail: 0 sent, 0 failed, 0 pending"

    received = smtp_server.envelopes
    assert sorted(e.rcpt_tos for e in received) == sorted(
        [(colleen.email_address,), (kristen.email_address,)])
    assert {e.message["Subject"] for e in received} == {SUBJECTS["new_message"]}
    assert len({e.message["Message-ID"] for e in received}) == 2
    for envelope in received:
        assert "smtp-fault" not in envelope.content.decode("utf-8", "replace")
    assert all(r.sent_at is not None for r in outbox())
