"""New-message emails: a sign-in link only, one per conversation per 15 minutes, none once read."""

from datetime import timedelta

import time_machine
from sqlalchemy import select

from portal.audit.models import AuditEvent
from portal.crypto import Context, open_text
from portal.db import utcnow
from portal.mail import OutboxMessage, deliver_pending
from portal.messaging import access, reading, sending
from portal.messaging.models import Thread
from tests.support.outbox import outbox

START = utcnow().replace(microsecond=0) + timedelta(days=1)


def _at(minutes: float):
    return time_machine.travel(START + timedelta(minutes=minutes), tick=False)


def _notices(db, user):
    db.session.expire_all()
    return sorted(outbox("new_message", OutboxMessage.user_id == user.id),
                  key=lambda row: row.next_attempt_at)


def _text(row: OutboxMessage) -> str:
    return open_text(row.user_id, Context("mail_outbox", "body_text_sealed", row.id),
                     row.body_text_sealed)


def _html(row: OutboxMessage) -> str:
    return open_text(row.user_id, Context("mail_outbox", "body_html_sealed", row.id),
                     row.body_html_sealed)


def _read(user, thread_id):
    reading.view_thread(user, access.thread_access(user, thread_id))


def test_notice_says_nothing_but_that_there_is_a_message(app, db, people):
    with _at(0):
        thread, _ = sending.start_thread(
            people.client_a, counterpart_id=people.therapist_x.id, subject="Panic at night",
            body="I had another panic attack")
    [row] = _notices(db, people.therapist_x)
    assert row.subject == "You have a new secure message"
    text, html = _text(row), _html(row)
    assert app.config["PORTAL_BASE_URL"] + "/sign-in" in text
    for secret in ("Panic", "panic attack", "Alex", "Rivera", str(thread.id)):
        assert secret not in text and secret not in html
    assert not _notices(db, people.client_a)  # the sender is not notified


def test_one_notice_per_window_and_a_single_follow_up(app, db, people):
    client, therapist = people.client_a, people.therapist_x
    with _at(0):
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject="Hello", body="one")
        deliver_pending()  # the first notice goes
    with _at(5):
        sending.reply(client, thread.id, body="two")
    with _at(10):
        sending.reply(client, thread.id, body="three")
    first, follow_up = _notices(db, therapist)
    assert first.next_attempt_at == START
    assert follow_up.next_attempt_at == START + timedelta(minutes=15)
    with _at(16):
        sending.reply(client, thread.id, body="four")  # still covered by the follow-up
    assert len(_notices(db, therapist)) == 2
    with _at(31):
        sending.reply(client, thread.id, body="five")  # the follow-up has not gone yet
    assert len(_notices(db, therapist)) == 2


def test_reading_withdraws_a_waiting_notice(app, db, people):
    client, therapist = people.client_a, people.therapist_x
    with _at(0):
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject="Hello", body="one")
        deliver_pending()  # the first notice goes
    with _at(5):
        sending.reply(client, thread.id, body="two")
    assert len(_notices(db, therapist)) == 2
    with _at(8):
        _read(therapist, thread.id)
    [first] = _notices(db, therapist)
    assert first.next_attempt_at == START
    with _at(20):  # 20 minutes after the last real notice: a new one goes at once
        sending.reply(client, thread.id, body="three")
    notices = _notices(db, therapist)
    assert [n.next_attempt_at for n in notices] == [START, START + timedelta(minutes=20)]


def test_no_email_for_a_message_read_before_the_notice_was_due(app, db, people):
    client, therapist = people.client_a, people.therapist_x
    with _at(0):
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject="Hello", body="one")
        deliver_pending()
    with _at(3):
        sending.reply(client, thread.id, body="two")
    with _at(4):
        _read(therapist, thread.id)
    with _at(16):
        report = deliver_pending()
    assert report.sent == 0
    assert len(_notices(db, therapist)) == 1


def test_follow_up_goes_when_due_if_still_unread(app, db, people):
    client, therapist = people.client_a, people.therapist_x
    with _at(0):
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject="Hello", body="one")
        assert deliver_pending().sent == 1
    with _at(3):
        sending.reply(client, thread.id, body="two")
        assert deliver_pending().sent == 0  # not due yet
    with _at(15):
        assert deliver_pending().sent == 1


def test_deferred_notice_is_not_sent_right_after_commit(app, db, people, capsys):
    app.config["MAIL_SEND_AFTER_COMMIT"] = True  # console transport (no MAIL_SERVER)
    client, therapist = people.client_a, people.therapist_x
    with _at(0):
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject="Hello", body="one")
    with _at(2):
        sending.reply(client, thread.id, body="two")
    immediate, deferred = _notices(db, therapist)
    assert immediate.sent_at is not None
    assert deferred.sent_at is None
    assert capsys.readouterr().out.count("Subject: You have a new secure message") == 1


def test_each_conversation_and_each_side_has_its_own_window(app, db, people):
    client = people.client_a
    with _at(0):
        one, _ = sending.start_thread(client, counterpart_id=people.therapist_x.id,
                                      subject="One", body="one")
        sending.start_thread(client, counterpart_id=people.therapist_y.id,
                             subject="Two", body="two")
        deliver_pending()
    with _at(1):
        sending.reply(people.therapist_x, one.id, body="reply")
    assert [n.next_attempt_at for n in _notices(db, people.therapist_x)] == [START]
    assert [n.next_attempt_at for n in _notices(db, people.therapist_y)] == [START]
    assert [n.next_attempt_at for n in _notices(db, client)] == [
        START + timedelta(minutes=1)]


def test_throttle_follows_the_configured_window(app, db, people):
    app.config["NOTIFY_THROTTLE_MINUTES"] = 60
    client, therapist = people.client_a, people.therapist_x
    with _at(0):
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject="Hello", body="one")
        deliver_pending()  # the first notice goes
    with _at(30):
        sending.reply(client, thread.id, body="two")
    assert _notices(db, therapist)[-1].next_attempt_at == START + timedelta(minutes=60)


def test_no_notice_to_a_deactivated_account(app, db, people):
    with _at(0):
        thread, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                         subject="Hi", body="hi", notify=False)
    people.therapist_x.active = False
    db.session.commit()
    with _at(30):
        sending.reply(people.client_a, thread.id, body="are you there?")
    assert db.session.get(Thread, thread.id).message_count == 2
    assert not _notices(db, people.therapist_x)


# --- crisis-flagged messages: an urgent notice at once, never withdrawn ----------------------

URGENT_SUBJECT = "Urgent: a message in the portal needs you now"
CRISIS_BODY = "some days I don't want to be here anymore"


def _urgent(db, user):
    db.session.expire_all()
    return outbox("urgent_message", OutboxMessage.user_id == user.id)


def test_flagged_message_inside_the_window_is_emailed_at_once_and_kept(
        app, db, people, smtp_server):
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    client, therapist = people.client_a, people.therapist_x
    with _at(0):
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject="Panic at night", body="Rough week")
    assert [e.message["Subject"] for e in smtp_server.envelopes] == [
        "You have a new secure message"]
    with _at(7):  # inside the 15-minute window
        message = sending.reply(client, thread.id, body=CRISIS_BODY)
    assert message.sent_flagged
    _, urgent = smtp_server.envelopes
    assert urgent.message["Subject"] == URGENT_SUBJECT
    assert app.config["PORTAL_BASE_URL"] + "/sign-in" in urgent.text
    for part in (urgent.message["Subject"], urgent.text, urgent.html):
        for secret in ("Alex", "Rivera", "Panic", "Rough week", "want to be here",
                       str(thread.id), "therap", "crisis", "suicid"):
            assert secret.lower() not in part.lower()
    with _at(8):
        _read(therapist, thread.id)
    [row] = _urgent(db, therapist)
    assert row.sent_at is not None  # opening the thread withdrew nothing
    assert len(smtp_server.envelopes) == 2


def test_urgent_notice_waiting_through_an_outage_is_not_withdrawn_by_reading(
        app, db, people, smtp_server):
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    client, therapist = people.client_a, people.therapist_x
    with _at(0):
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject="Hello", body="one")
    smtp_server.stop()
    with _at(7):
        sending.reply(client, thread.id, body=CRISIS_BODY)
    with _at(8):
        _read(therapist, thread.id)
    [row] = _urgent(db, therapist)
    assert row.sent_at is None  # still waiting for the mail server, and still there
    smtp_server.start()
    with _at(30):
        assert deliver_pending().sent == 1
    assert [e.message["Subject"] for e in smtp_server.envelopes][-1] == URGENT_SUBJECT
    assert _urgent(db, therapist)[0].sent_at is not None


def test_unflagged_message_still_follows_the_throttle(app, db, people, smtp_server):
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    client, therapist = people.client_a, people.therapist_x
    with _at(0):
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject="Hello", body="one")
    with _at(7):
        sending.reply(client, thread.id, body="just checking in about Thursday")
    assert len(smtp_server.envelopes) == 1  # held until the window ends
    assert not _urgent(db, therapist)
    _, follow_up = _notices(db, therapist)
    assert follow_up.next_attempt_at == START + timedelta(minutes=15)
    with _at(8):
        _read(therapist, thread.id)
    assert len(_notices(db, therapist)) == 1  # and reading still withdraws it


def test_urgent_notice_goes_even_with_a_follow_up_waiting(app, db, people):
    client, therapist = people.client_a, people.therapist_x
    with _at(0):
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject="Hello", body="one")
        deliver_pending()
    with _at(3):
        sending.reply(client, thread.id, body="two")  # a follow-up, due at 15
    with _at(5):
        sending.reply(client, thread.id, body=CRISIS_BODY)
        assert deliver_pending().sent == 1  # the urgent one, now
    [urgent] = _urgent(db, therapist)
    assert urgent.sent_at is not None and urgent.next_attempt_at == START + timedelta(minutes=5)
    assert _notices(db, therapist)[-1].next_attempt_at == START + timedelta(minutes=15)


def test_a_therapists_words_never_send_an_urgent_notice(app, db, people):
    client, therapist = people.client_a, people.therapist_x
    with _at(0):
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject="Hello", body="one", notify=False)
    with _at(1):
        sending.reply(therapist, thread.id, body="If you ever want to die, call 988.")
    assert not _urgent(db, client)
    assert len(_notices(db, client)) == 1


def test_a_message_while_a_notice_waits_replaces_it_due_at_the_same_time(app, db, people):
    """So that every client message writes one outbox row and one "notice queued" event, as a
    flagged one's urgent notice does (#17), a message while a notice waits replaces it: still
    one email, at the same time; reading the thread still withdraws it."""
    client, therapist = people.client_a, people.therapist_x
    with _at(0):
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject="Hello", body="one")
        deliver_pending()
    with _at(3):
        sending.reply(client, thread.id, body="two")  # a follow-up, due at 15
    [first_follow_up] = [n for n in _notices(db, therapist) if n.sent_at is None]
    with _at(4):
        sending.reply(client, thread.id, body="three")
    [follow_up] = [n for n in _notices(db, therapist) if n.sent_at is None]
    assert follow_up.id != first_follow_up.id
    assert follow_up.next_attempt_at == START + timedelta(minutes=15)
    assert db.session.get(Thread, thread.id).therapist_notice_id == follow_up.id
    events = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "message.notice_queued").order_by(AuditEvent.seq)).all()
    assert len(events) == 3  # the first notice, the follow-up, its replacement
    with _at(6):
        _read(therapist, thread.id)
    assert [n for n in _notices(db, therapist) if n.sent_at is None] == []


def test_a_message_while_an_urgent_notice_waits_keeps_it_urgent(app, db, people, smtp_server):
    """The urgent notice is replaced by another urgent one (never by an ordinary one, never
    dropped), tried at once as it was due; reading the thread still does not withdraw it."""
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    client, therapist = people.client_a, people.therapist_x
    smtp_server.stop()
    with _at(0):
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject="Tonight", body=CRISIS_BODY)
    [first] = _urgent(db, therapist)
    with _at(2):
        sending.reply(client, thread.id, body="still here")
    [urgent] = _urgent(db, therapist)
    assert urgent.id != first.id and urgent.sent_at is None
    assert urgent.attempts == 1  # due already: tried at once, and waiting for the server
    assert not [n for n in _notices(db, therapist) if n.sent_at is None]  # no ordinary one
    with _at(3):
        _read(therapist, thread.id)
    assert [row.id for row in _urgent(db, therapist)] == [urgent.id]
    smtp_server.start()
    with _at(30):
        assert deliver_pending().sent == 1
    assert [e.message["Subject"] for e in smtp_server.envelopes] == [URGENT_SUBJECT]
