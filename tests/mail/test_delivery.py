"""The outbox: queued in the caller's transaction, sealed at rest, delivered once, retried."""

import logging
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import delete, func, select, text, update

from portal.accounts.models import User
from portal.db import utcnow
from portal.mail import SUBJECTS, OutboxMessage, deliver_pending, enqueue, purge_delivered
from portal.mail.cli import deliver_mail_command
from portal.mail.service import backoff
from portal.pages import public
from tests.support.people import make_user

LINK = "https://portal.example.org/invite/Zq3-secret-token-4711"


def _address() -> str:
    return f"person-{uuid.uuid4().hex[:10]}@example.org"


@pytest.fixture
def person(db):
    """Return a saved client account and its (plain) email address."""
    address = _address()
    return make_user("client", "Pat Example", email=address, password=None), address


def _invite(db, person, link: str = LINK, commit: bool = True) -> OutboxMessage:
    user, address = person
    row = enqueue(user, "invitation", to_address=address, link=link, hours_valid=72)
    if commit:
        db.session.commit()
    return row


def _row(db, row_id) -> OutboxMessage:
    row = db.session.get(OutboxMessage, row_id, populate_existing=True)
    db.session.commit()  # end the read; deliver_pending and other connections go next
    return row


def test_enqueue_commit_and_deliver_sends_once(db, smtp_server, person):
    _, address = person
    row_id = _invite(db, person).id
    report = deliver_pending()
    assert (report.sent, report.failed, report.pending) == (1, 0, 0)
    (received,) = smtp_server.envelopes
    assert received.rcpt_tos == (address,)
    assert received.mail_from == "no-reply@coeocommunity.com"
    assert received.message["Subject"] == SUBJECTS["invitation"]
    assert received.message["To"] == address
    assert received.message["Auto-Submitted"] == "auto-generated"
    assert LINK in received.text and LINK in received.html
    assert "replies are not read" in received.text
    again = deliver_pending()
    assert (again.sent, again.failed, again.pending) == (0, 0, 0)
    assert len(smtp_server.envelopes) == 1
    row = _row(db, row_id)
    assert row.sent_at is not None and row.attempts == 0 and row.claimed_until is None


def test_nothing_is_queued_when_the_transaction_rolls_back(db, smtp_server, person):
    _invite(db, person, commit=False)
    db.session.rollback()
    assert deliver_pending().sent == 0
    assert smtp_server.envelopes == []
    assert db.session.scalar(select(OutboxMessage.id)) is None


def test_server_down_leaves_the_row_pending_then_it_is_delivered_once(db, smtp_server, person):
    smtp_server.stop()
    row_id = _invite(db, person).id
    before = utcnow()
    report = deliver_pending()
    assert (report.sent, report.failed, report.pending) == (0, 1, 1)
    row = _row(db, row_id)
    assert row.sent_at is None and row.attempts == 1 and row.claimed_until is None
    assert row.next_attempt_at > before
    assert row.last_error == "ConnectionRefusedError"

    smtp_server.start()
    assert deliver_pending().sent == 0  # not due yet: it waits a minute
    with time_machine.travel(utcnow() + timedelta(minutes=1, seconds=5), tick=True):
        first = deliver_pending()
        second = deliver_pending()
    assert (first.sent, first.pending, second.sent) == (1, 0, 0)
    assert len(smtp_server.envelopes) == 1
    assert _row(db, row_id).sent_at is not None


def test_failures_back_off_1_2_4_minutes_up_to_an_hour():
    assert [backoff(n).total_seconds() / 60 for n in range(1, 10)] == [
        1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_each_failure_waits_longer(db, smtp_server, person):
    smtp_server.stop()
    row_id = _invite(db, person).id
    now = utcnow()
    for attempt in (1, 2, 3):
        with time_machine.travel(now, tick=False):
            deliver_pending()
        row = _row(db, row_id)
        assert row.attempts == attempt
        assert row.next_attempt_at - now == backoff(attempt)
        now = row.next_attempt_at


def test_the_outbox_never_holds_the_address_or_the_link_in_clear(app, db, smtp_server, person):
    _, address = person
    token = LINK.rsplit("/", 1)[1]
    _invite(db, person)
    smtp_server.stop()
    deliver_pending()  # one failure, so last_error is filled in too
    secrets = [address.encode(), LINK.encode(), token.encode(), address.split("@")[0].encode()]

    def assert_clean() -> None:
        rows = db.session.execute(text("SELECT * FROM mail_outbox")).all()
        assert rows
        for raw_row in rows:
            for value in raw_row:
                blob = value if isinstance(value, bytes | memoryview) else str(value).encode()
                for secret in secrets:
                    assert secret not in bytes(blob)
        db.session.commit()

    assert_clean()
    smtp_server.start()
    with time_machine.travel(utcnow() + timedelta(minutes=2), tick=True):
        assert deliver_pending().sent == 1
    assert_clean()
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("sqlite:///"):  # and not anywhere in the database file either
        path = Path(url.removeprefix("sqlite:///"))
        for file in (path, Path(f"{path}-wal")):
            if file.exists():
                data = file.read_bytes()
                assert not any(secret in data for secret in secrets[:3])


def test_a_message_is_sent_right_after_commit_when_configured(app, db, smtp_server, person):
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    row_id = _invite(db, person).id
    assert len(smtp_server.envelopes) == 1
    assert smtp_server.envelopes[0].message["Subject"] == SUBJECTS["invitation"]
    assert _row(db, row_id).sent_at is not None
    assert deliver_pending().sent == 0
    assert len(smtp_server.envelopes) == 1


@pytest.fixture
def mailing_route(app, db, person, monkeypatch):
    """A public route that commits one invitation mail; the user is the `person`."""

    user, address = person
    user_id = user.id  # read here: the route must not load it through the test's session

    def send():
        enqueue(db.session.get(User, user_id), "invitation", to_address=address, link=LINK,
                hours_valid=72)
        db.session.commit()
        return "queued"

    app.add_url_rule("/test-mail", "test_mail", public(send), methods=["POST"])
    app.config["WTF_CSRF_ENABLED"] = False
    return "/test-mail"


def test_mail_committed_by_a_request_goes_once_the_answer_is_out(app, db, smtp_server,
                                                                 mailing_route):
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    db.session.commit()
    with app.app_context():  # a request context of its own, as behind a server
        response = app.test_client().post(mailing_route)
    assert response.status_code == 200
    assert smtp_server.envelopes == []  # the answer did not wait for the mail server
    response.close()  # the server has sent the answer
    (envelope,) = smtp_server.envelopes
    assert envelope.message["Subject"] == SUBJECTS["invitation"]
    (row,) = db.session.scalars(select(OutboxMessage)).all()
    assert row.sent_at is not None


def test_mail_held_for_an_answer_that_is_never_closed_still_goes(app, db, smtp_server,
                                                                 mailing_route, monkeypatch):
    monkeypatch.setattr("portal.after_response.FALLBACK_SECONDS", 0.05)
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    db.session.commit()
    with app.app_context():
        app.test_client().post(mailing_route)  # a browser that hung up: no close
    for _ in range(100):
        if smtp_server.envelopes:
            break
        threading.Event().wait(0.05)
    assert len(smtp_server.envelopes) == 1


def test_after_commit_sends_nothing_for_a_rolled_back_transaction(app, db, smtp_server, person):
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    _invite(db, person, commit=False)
    db.session.rollback()
    db.session.commit()
    assert smtp_server.envelopes == []


def test_after_commit_failure_never_reaches_the_caller(app, db, smtp_server, person):
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    smtp_server.stop()
    row_id = _invite(db, person).id  # commits without raising
    row = _row(db, row_id)
    assert row.sent_at is None and row.attempts == 1
    assert row.last_error == "ConnectionRefusedError"


def test_after_commit_is_off_in_tests_by_default(app, db, smtp_server, person):
    assert app.config["MAIL_SEND_AFTER_COMMIT"] is False
    _invite(db, person)
    assert smtp_server.envelopes == []


def test_without_a_mail_server_the_mail_is_printed_for_development(app, db, capsys, person):
    _, address = person
    app.config["MAIL_SERVER"] = None
    row_id = _invite(db, person).id
    report = deliver_pending()
    assert report.sent == 1
    out = capsys.readouterr().out
    assert "DEVELOPMENT CONSOLE MAIL" in out and "not sent" in out
    assert f"To: {address}" in out
    assert f"Subject: {SUBJECTS['invitation']}" in out
    assert LINK in out
    assert _row(db, row_id).sent_at is not None


def test_production_never_prints_mail_to_the_console(app, db, capsys, person):
    app.config.update(MAIL_SERVER=None, ENV_NAME="production")
    row_id = _invite(db, person).id
    report = deliver_pending()
    assert (report.sent, report.failed) == (0, 1)
    assert LINK not in capsys.readouterr().out
    assert _row(db, row_id).last_error == "MailServerNotConfigured"


def test_logs_never_hold_addresses_links_or_bodies(db, smtp_server, person, caplog):
    _, address = person
    caplog.set_level(logging.DEBUG)
    smtp_server.stop()
    _invite(db, person)
    deliver_pending()
    smtp_server.start()
    with time_machine.travel(utcnow() + timedelta(minutes=2), tick=True):
        deliver_pending()
    # Everything the application logged, that is, all but the test SMTP server's own log.
    logged = "\n".join(record.getMessage() for record in caplog.records
                       if not record.name.startswith("mail.log"))
    assert "1 failed" in logged and "1 sent" in logged
    for secret in (address, LINK, "Set up your account", "example.org"):
        assert secret not in logged


def test_a_message_that_will_not_open_stays_pending(db, smtp_server, person):
    row_id = _invite(db, person).id
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == row_id)
                       .values(recipient_sealed=OutboxMessage.body_text_sealed))
    db.session.commit()
    report = deliver_pending()
    assert (report.sent, report.failed, report.pending) == (0, 1, 1)
    assert smtp_server.envelopes == []
    assert _row(db, row_id).last_error == "DecryptionError"


def test_two_workers_deliver_each_message_exactly_once(app, db, smtp_server, person):
    count = 12
    for n in range(count):
        _invite(db, person, link=f"{LINK}-{n}", commit=False)
    db.session.commit()
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def worker() -> None:
        try:
            with app.app_context():
                start.wait()
                for _ in range(4):
                    deliver_pending(limit=3)
                db.session.remove()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(3)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    assert not errors, errors
    ids = [envelope.message["Message-ID"] for envelope in smtp_server.envelopes]
    assert len(ids) == count and len(set(ids)) == count
    links = sorted(line for envelope in smtp_server.envelopes
                   for line in envelope.text.splitlines() if line.startswith(LINK))
    assert links == sorted(f"{LINK}-{n}" for n in range(count))


def test_purge_removes_old_sent_messages_only(db, person):
    now = utcnow()
    old_sent = _invite(db, person, commit=False)
    recent_sent = _invite(db, person, commit=False)
    old_pending = _invite(db, person, commit=False)
    old_sent.sent_at = now - timedelta(days=8)
    recent_sent.sent_at = now - timedelta(days=1)
    old_pending.created_at = now - timedelta(days=30)
    keep = {recent_sent.id, old_pending.id}
    db.session.commit()
    assert purge_delivered(older_than_days=7) == 1
    assert set(db.session.scalars(select(OutboxMessage.id))) == keep


def test_deleting_an_account_deletes_its_queued_mail(db, person):
    user, _ = person
    _invite(db, person)
    users = User.__table__
    db.session.execute(delete(users).where(users.c.id == user.id))
    db.session.commit()
    assert db.session.scalar(select(OutboxMessage.id)) is None


def test_deliver_mail_once_prints_counts_without_addresses(runner, db, smtp_server, person):
    _, address = person
    _invite(db, person)
    result = runner.invoke(deliver_mail_command, ["--once"])
    assert result.exit_code == 0, result.output
    assert "mail: 1 sent, 0 failed, 0 pending" in result.output
    assert address not in result.output and LINK not in result.output
    assert len(smtp_server.envelopes) == 1
    # A sent row still names whom it went to: the round that sent it deletes it.
    assert "mail: 1 delivered messages purged" in result.output
    assert db.session.scalar(select(OutboxMessage.id)) is None


def test_the_loop_keeps_mail_that_has_not_gone(runner, db, smtp_server, person):
    _invite(db, person)
    smtp_server.stop()  # an outage: the mail waits for the next round
    result = runner.invoke(deliver_mail_command, ["--once"])
    assert "0 sent, 1 failed" in result.output and "purged" not in result.output
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_sent_mail_can_be_kept_a_while(db, person, app):
    row = _invite(db, person, commit=False)
    row.sent_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    app.config["MAIL_KEEP_SENT_MINUTES"] = 10
    assert purge_delivered() == 0
    app.config["MAIL_KEEP_SENT_MINUTES"] = 4
    assert purge_delivered() == 1


def test_deliver_mail_loops_until_interrupted(runner, db, smtp_server, person, monkeypatch):
    _invite(db, person)
    rounds = []

    def sleep(seconds: float) -> None:
        rounds.append(seconds)
        if len(rounds) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("portal.mail.cli._sleep", sleep)
    result = runner.invoke(deliver_mail_command, ["--interval", "5"])
    assert result.exit_code == 0, result.output
    assert rounds == [5.0, 5.0]
    assert result.output.count("mail: ") >= 3 and "mail: stopped" in result.output
    assert len(smtp_server.envelopes) == 1


def test_deliver_pending_refuses_to_commit_unsaved_changes(db, person):
    user, _ = person
    user.role = "admin"
    with pytest.raises(RuntimeError):
        deliver_pending()
    db.session.rollback()
