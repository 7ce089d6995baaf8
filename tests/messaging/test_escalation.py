"""The crisis escalation timer (`escalation.escalate_due`, run by the deliver-mail loop):
frozen-clock timing, the repeat interval, what stops it, two loops at once, an SMTP outage."""

import threading
from datetime import timedelta

import time_machine
from sqlalchemy import select

from portal.accounts import service as accounts
from portal.audit.models import AuditEvent
from portal.crypto import Context, open_text
from portal.mail import OutboxMessage, deliver_pending
from portal.mail.cli import run_worker_tasks
from portal.mail.service import subject_of, template_of
from portal.messaging import escalation, sending
from tests.messaging import crisis_support

CRISIS = "Some days I don't want to be here anymore"
SUBJECT = "Urgent: please sign in to the portal now"


def _start(people, body=CRISIS):
    thread, message = sending.start_thread(people.client_a,
                                           counterpart_id=people.therapist_x.id,
                                           subject="Panic at night", body=body, notify=False)
    return thread, message


def _due(db, thread_id):
    db.session.expire_all()
    return crisis_support.state(thread_id).escalate_at


def _notices(db, template=escalation.TEMPLATE):
    db.session.expire_all()
    return [row for row in db.session.scalars(select(OutboxMessage)
                                              .order_by(OutboxMessage.created_at))
            if template_of(row) == template]


def _cover(people, *therapists):
    for therapist in therapists:
        accounts.set_covering(people.admin, therapist, True)


def test_nothing_happens_before_the_time_and_everyone_is_told_at_it(app, db, people):
    _cover(people, people.therapist_y)
    thread, message = _start(people)
    due = _due(db, thread.id)
    assert escalation.escalate_due(now=due - timedelta(seconds=1)) == 0
    assert _notices(db) == []
    assert escalation.escalate_due(now=due) == 1
    notices = _notices(db)
    assert {n.user_id for n in notices} == {people.therapist_x.id, people.therapist_y.id}
    assert {subject_of(n) for n in notices} == {SUBJECT}
    for notice in notices:  # no name, no words, no ids: a sign-in link and "urgent"
        text = open_text(notice.user_id, Context("mail_outbox", "body_text_sealed", notice.id),
                         notice.body_text_sealed)
        for secret in ("Alex", "Rivera", "Panic", "want to be here", str(thread.id),
                       str(message.id)):
            assert secret not in text
        assert app.config["PORTAL_BASE_URL"] + "/sign-in" in text
    assert crisis_support.state(thread.id).escalations == 1
    # The event every new-message notice writes, the kind its sealed detail: no action name,
    # severity or actor tells an escalation from an ordinary notice.
    event = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "message.notice_queued")).one()
    assert event.target_id == str(thread.id) and event.subject_id == people.client_a.id
    assert event.severity == "info" and event.actor_id is None
    assert crisis_support.detail(event) == {"kind": "escalation"}


def test_it_repeats_at_the_practices_interval_until_acknowledged(app, db, people):
    app.config.update(CRISIS_ESCALATE_MINUTES=10, CRISIS_REPEAT_MINUTES=45)
    _cover(people, people.therapist_y)
    thread, _ = _start(people)
    first = _due(db, thread.id)
    assert escalation.escalate_due(now=first) == 1
    assert _due(db, thread.id) == first + timedelta(minutes=45)
    assert escalation.escalate_due(now=first + timedelta(minutes=44)) == 0
    assert escalation.escalate_due(now=first + timedelta(minutes=45)) == 1
    assert len(_notices(db)) == 4  # two people, twice
    assert crisis_support.state(thread.id).escalations == 2
    escalation.acknowledge(people.therapist_x, thread.id)
    assert _due(db, thread.id) is None
    assert escalation.escalate_due(now=first + timedelta(days=1)) == 0
    assert len(_notices(db)) == 4


def test_a_reply_stops_the_timer(app, db, people):
    _cover(people, people.therapist_y)
    thread, _ = _start(people)
    due = _due(db, thread.id)
    sending.reply(people.therapist_x, thread.id, body="I'm calling you now.", notify=False)
    assert escalation.escalate_due(now=due + timedelta(hours=3)) == 0
    assert _notices(db) == []


def test_with_nobody_covering_the_administrators_are_told(app, db, people):
    thread, _ = _start(people)
    assert escalation.escalate_due(now=_due(db, thread.id)) == 1
    [to_therapist] = _notices(db)
    assert to_therapist.user_id == people.therapist_x.id
    [to_admin] = _notices(db, escalation.ADMIN_TEMPLATE)
    assert to_admin.user_id == people.admin.id
    text = open_text(to_admin.user_id, Context("mail_outbox", "body_text_sealed", to_admin.id),
                     to_admin.body_text_sealed)
    assert "phone the practice" in text and "Alex" not in text and "Panic" not in text


def test_two_loops_at_once_send_exactly_one_notice(app, db, people):
    _cover(people, people.therapist_y)
    thread, _ = _start(people)
    due = _due(db, thread.id)
    db.session.commit()
    both_read = threading.Barrier(2, timeout=10)
    real_claim = escalation._claim

    def claim_after_both_read(*args):
        both_read.wait()  # both loops have read the same due row before either claims it
        return real_claim(*args)

    results, errors = [], []

    def loop():
        try:
            with app.app_context():
                results.append(escalation.escalate_due(now=due))
                escalation.db.session.remove()
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    escalation._claim = claim_after_both_read
    try:
        workers = [threading.Thread(target=loop) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
    finally:
        escalation._claim = real_claim
    assert errors == []
    assert sorted(results) == [0, 1]
    notices = _notices(db)
    assert sorted(str(n.user_id) for n in notices) == sorted(
        str(p.id) for p in (people.therapist_x, people.therapist_y))
    assert crisis_support.state(thread.id).escalations == 1


def test_the_deliver_mail_round_runs_the_timer(app, db, people):
    thread, _ = _start(people)
    with time_machine.travel(_due(db, thread.id) + timedelta(seconds=1), tick=False):
        done = run_worker_tasks()
        again = run_worker_tasks()
    assert done["crisis escalation"] == 1
    # A scan opens every thread's state: the loop runs it at most once a minute.
    assert again["crisis escalation"] == 0


def test_a_claim_loses_to_any_rewrite_of_the_sealed_state(app, db, people):
    """The compare-and-set is on the sealed blob: a message sent after the scan read it (the
    state resealed) makes the claim fail, and the next scan finds it again."""
    _cover(people, people.therapist_y)
    thread, _ = _start(people)
    due = _due(db, thread.id)
    [(thread_id, client_id, seen, state)] = escalation.due_threads(due)
    sending.reply(people.client_a, thread.id, body="still here", notify=False)
    assert not escalation._claim(thread_id, client_id, seen, state, due)
    db.session.rollback()
    assert _notices(db) == []
    assert escalation.escalate_due(now=due) == 1
    assert crisis_support.state(thread.id).escalations == 1


def test_an_smtp_outage_delays_the_notice_and_it_goes_once_when_back(
        app, db, people, smtp_server):
    _cover(people, people.therapist_y)
    thread, _ = _start(people)
    due = _due(db, thread.id)
    smtp_server.stop()
    with time_machine.travel(due, tick=False):
        assert escalation.escalate_due() == 1
        report = deliver_pending()
    assert report.sent == 0 and report.failed == 2
    assert all(n.sent_at is None for n in _notices(db))  # still waiting, not dropped
    smtp_server.start()
    with time_machine.travel(due + timedelta(minutes=5), tick=False):
        assert deliver_pending().sent == 2
        assert deliver_pending().sent == 0  # a second loop finds nothing left to send
    assert all(n.sent_at is not None for n in _notices(db))
    subjects = [e.message["Subject"] for e in smtp_server.envelopes]
    assert subjects == [SUBJECT, SUBJECT]
    for envelope in smtp_server.envelopes:
        for secret in ("Alex", "Rivera", "Panic", "want to be here"):
            assert secret not in envelope.text and secret not in envelope.html
