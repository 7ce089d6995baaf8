"""Sending is one transaction, and concurrent senders lose nothing."""

import threading

import pytest
from sqlalchemy import func, select

from portal.audit import verify
from portal.audit.models import AuditEvent
from portal.mail import OutboxMessage
from portal.messaging import lists, sending
from portal.messaging.models import Attachment, Message, Thread
from tests.messaging.conftest import PNG


def _count(db, model) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


class Boom(RuntimeError):
    pass


def _fail_on(monkeypatch, action: str) -> None:
    real = sending.record

    def record(name, **kwargs):
        if name == action:
            raise Boom(name)
        return real(name, **kwargs)

    monkeypatch.setattr(sending, "record", record)


def test_a_failed_first_message_leaves_nothing_behind(app, db, people, monkeypatch):
    before = {m: _count(db, m) for m in (Thread, Message, Attachment, OutboxMessage,
                                         AuditEvent)}
    _fail_on(monkeypatch, "message.sent")
    with pytest.raises(Boom):
        sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                             subject="Hello", body="hello", files=[("a.png", PNG)])
    after = {m: _count(db, m) for m in before}
    assert after == before
    assert verify().ok


def test_a_failed_reply_changes_nothing(app, db, people, monkeypatch):
    thread, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                     subject="Hello", body="hello")
    db.session.expire_all()
    state = db.session.get(Thread, thread.id)
    snapshot = (state.message_count, state.therapist_unread, state.client_unread,
                state.last_message_at, state.therapist_notice_id)
    counts = {m: _count(db, m) for m in (Message, Attachment, OutboxMessage, AuditEvent)}
    _fail_on(monkeypatch, "message.sent")
    with pytest.raises(Boom):
        sending.reply(people.therapist_x, thread.id, body="reply", files=[("b.png", PNG)])
    db.session.expire_all()
    state = db.session.get(Thread, thread.id)
    assert (state.message_count, state.therapist_unread, state.client_unread,
            state.last_message_at, state.therapist_notice_id) == snapshot
    assert {m: _count(db, m) for m in counts} == counts


def test_a_send_writes_message_files_state_outbox_and_audit_together(app, db, people):
    db.session.commit()
    counts = {m: _count(db, m) for m in (Message, Attachment, OutboxMessage, AuditEvent)}
    thread, message = sending.start_thread(
        people.client_a, counterpart_id=people.therapist_x.id, subject="Hello",
        body="hello", files=[("a.png", PNG), ("b.txt", b"notes\n")])
    after = {m: _count(db, m) for m in counts}
    assert after[Message] == counts[Message] + 1
    assert after[Attachment] == counts[Attachment] + 2
    assert after[OutboxMessage] == counts[OutboxMessage] + 1
    actions = set(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.subject_id == people.client_a.id)))
    assert {"thread.created", "message.sent"} <= actions
    sent = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "message.sent")).one()
    assert sent.target_type == "message" and sent.target_id == str(message.id)
    assert sent.actor_id == people.client_a.id
    state = db.session.get(Thread, thread.id)
    assert (state.therapist_unread, state.client_unread, state.message_count) == (1, 0, 1)
    assert state.awaiting_since == message.created_at


def _run_at_once(app, db, jobs) -> list[BaseException]:
    """Run (user id, thread id, label, count) reply jobs in parallel threads, each with its
    own app context and database session, as separate web workers would."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))
    db.session.commit()  # on SQLite the test's own open transaction would hold the lock

    def work(user_id, thread_id, label, count):
        with app.app_context():
            from portal.accounts.models import User
            from portal.extensions import db as _db
            try:
                user = _db.session.get(User, user_id)
                _db.session.commit()
                start.wait()
                for number in range(count):
                    sending.reply(user, thread_id, body=f"{label} {number}")
            except BaseException as exc:  # collected for the assertion
                errors.append(exc)
            finally:
                _db.session.remove()

    workers = [threading.Thread(target=work, args=job) for job in jobs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    return errors


def test_two_tabs_and_the_therapist_sending_at_once_lose_nothing(app, db, people):
    client, therapist = people.client_a, people.therapist_x
    thread, _ = sending.start_thread(client, counterpart_id=therapist.id, subject="Busy",
                                     body="start", notify=False)
    per_sender = 8
    jobs = [(client.id, thread.id, "tab one", per_sender),
            (client.id, thread.id, "tab two", per_sender),
            (therapist.id, thread.id, "therapist", per_sender)]
    assert _run_at_once(app, db, jobs) == []
    db.session.expire_all()
    messages = list(db.session.scalars(select(Message).where(Message.thread_id == thread.id)
                                       .order_by(Message.created_at)))
    assert len(messages) == 1 + 3 * per_sender
    times = [m.created_at for m in messages]
    assert times == sorted(times) and len(set(times)) == len(times)
    state = db.session.get(Thread, thread.id)
    assert state.message_count == len(messages)
    assert state.last_message_at == times[-1]
    unread_by_therapist = sum(1 for m in messages
                              if m.sender_id == client.id and m.read_at is None)
    unread_by_client = sum(1 for m in messages
                           if m.sender_id == therapist.id and m.read_at is None)
    assert state.therapist_unread == unread_by_therapist
    assert state.client_unread == unread_by_client
    # Whoever wrote last has read everything before: only one side can have unread ones.
    assert (unread_by_therapist == 0) or (unread_by_client == 0)
    last = messages[-1]
    assert (unread_by_therapist if last.sender_id == client.id else unread_by_client) >= 1
    assert verify().ok


def test_two_therapists_writing_to_one_client_at_once(app, db, people):
    client = people.client_a
    one, _ = sending.start_thread(client, counterpart_id=people.therapist_x.id,
                                  subject="One", body="one", notify=False)
    two, _ = sending.start_thread(client, counterpart_id=people.therapist_y.id,
                                  subject="Two", body="two", notify=False)
    jobs = [(people.therapist_x.id, one.id, "note", 6),
            (people.therapist_y.id, two.id, "note", 6)]
    assert _run_at_once(app, db, jobs) == []
    db.session.expire_all()
    for thread in (one, two):
        state = db.session.get(Thread, thread.id)
        assert state.message_count == 7 and state.client_unread == 6
    assert lists.unread_count(client) == 12


def _unassign(db, client, therapist) -> None:
    from portal.accounts.models import Assignment
    db.session.execute(Assignment.__table__.delete().where(
        Assignment.client_id == client.id, Assignment.therapist_id == therapist.id))
    db.session.commit()


def test_replying_after_unassignment_names_the_current_therapist_only_if_there_is_one(
        app, db, people):
    from portal.errors import RuleError
    thread, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                     subject="Hello", body="hello")
    _unassign(db, people.client_a, people.therapist_x)  # therapist_y still cares for A
    with pytest.raises(RuleError) as refused:
        sending.reply(people.client_a, thread.id, body="still there?")
    assert "with your current therapist" in refused.value.message


@pytest.mark.parametrize("state", ["no therapist at all", "only an inactive therapist"])
def test_replying_with_no_therapist_left_points_to_the_practice(app, db, people, state):
    from portal.errors import RuleError
    thread, _ = sending.start_thread(people.client_b, counterpart_id=people.therapist_y.id,
                                     subject="Hello", body="hello")
    if state == "no therapist at all":
        _unassign(db, people.client_b, people.therapist_y)
    else:
        _unassign(db, people.client_b, people.therapist_y)
        from tests.messaging.conftest import assign
        assign(people.client_b, people.therapist_x)
        people.therapist_x.active = False
        db.session.commit()
    with pytest.raises(RuleError) as refused:
        sending.reply(people.client_b, thread.id, body="anyone?")
    message = refused.value.message
    assert "current therapist" not in message
    profile = app.config["PRACTICE"]
    assert "No other therapist is assigned to you yet" in message
    assert profile["phone"] in message and profile["email"] in message
    assert db.session.scalar(select(func.count()).select_from(Message)
                             .where(Message.thread_id == thread.id)) == 1
