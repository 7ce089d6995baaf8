"""Revision b7a1e0c0d037 converts crisis flags both ways: down, the sealed flags and states are
opened into the old readable columns (and the escalation index comes back); up, those columns
are sealed again and dropped. Run with TEST_DATABASE_URL for PostgreSQL."""

from dataclasses import replace
from datetime import UTC, timedelta

from flask_migrate import downgrade, upgrade
from sqlalchemy import column, inspect, select, table, text

from portal.extensions import db
from portal.messaging import crisis_state, escalation, sending
from portal.messaging.models import Message, Thread
from tests.messaging.conftest import assign
from tests.migrations.test_migrations import MIGRATIONS, _diff, bare_app  # noqa: F401
from tests.support.people import make_user

BEFORE = "b7a1e0c0d027"
CRISIS = "Some days I don't want to be here anymore"
OLD_THREAD_COLUMNS = ("crisis_flagged_at", "crisis_message_id", "crisis_acknowledged_at",
                      "crisis_acknowledged_by_id", "crisis_escalate_at", "crisis_escalations")


def _utc(value):
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _conversations():
    """A flagged conversation (two flagged messages, the first the jump target), one marked
    seen and acted on, one escalated once, and an ordinary one; returns what each should be."""
    client, other = make_user("client", "Pat Example"), make_user("client", "Sam Example")
    therapist = make_user("therapist", "Dr T")
    assign(client, therapist)
    assign(other, therapist)
    flagged, first = sending.start_thread(client, counterpart_id=therapist.id,
                                          subject="Tonight", body=CRISIS, notify=False)
    sending.reply(client, flagged.id, body="I want to die", notify=False)
    seen, _ = sending.start_thread(client, counterpart_id=therapist.id, subject="Last week",
                                   body=CRISIS, notify=False)
    escalation.acknowledge(therapist, seen.id)
    escalated, _ = sending.start_thread(other, counterpart_id=therapist.id, subject="Help",
                                        body=CRISIS, notify=False)
    # As the timer leaves it after one escalation (written directly: this test is about the
    # conversion, tests/messaging/test_escalation.py about the timer).
    thread = db.session.get(Thread, escalated.id)
    state = crisis_state.state_of(thread)
    crisis_state.write(thread, replace(state, escalations=1,
                                       escalate_at=state.escalate_at + timedelta(minutes=60)))
    plain, _ = sending.start_thread(other, counterpart_id=therapist.id, subject="Hello",
                                    body="See you Tuesday", notify=False)
    sending.reply(therapist, plain.id, body="See you then", notify=False)
    db.session.commit()
    states = {t.id: _state(t.id) for t in (flagged, seen, escalated, plain)}
    assert states[flagged.id].message_id == first.id and states[flagged.id].unacknowledged()
    assert states[seen.id].acknowledged_by == therapist.id and not states[seen.id].flagged
    assert states[escalated.id].escalations == 1
    assert states[plain.id] == crisis_state.EMPTY
    flags = {m.id: _flag(m) for m in db.session.scalars(select(Message))}
    assert sum(flags.values()) == 4 and len(flags) == 6
    return states, flags


def _state(thread_id):
    thread = db.session.get(Thread, thread_id, populate_existing=True)
    return crisis_state.open_state(thread.client_id, thread.id, thread.crisis_sealed)


def _flag(message):
    owner = db.session.get(Thread, message.thread_id).client_id
    return crisis_state.message_flagged(owner, message.id, message.crisis_sealed)


def _columns(table: str) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns(table)}


def test_crisis_flags_convert_down_and_up_with_data(bare_app):  # noqa: F811 (the fixture)
    upgrade(directory=MIGRATIONS)
    with bare_app.test_request_context():
        states, flags = _conversations()
        db.session.remove()

    downgrade(directory=MIGRATIONS, revision=BEFORE)
    assert "crisis_sealed" not in _columns("messages") | _columns("message_threads")
    assert {c["name"] for c in inspect(db.engine).get_indexes("message_threads")} >= {
        "ix_message_threads_crisis_escalate"}
    with db.engine.connect() as conn:
        restored = {row.id: bool(row.crisis_flag) for row in conn.execute(
            text("SELECT id, crisis_flag FROM messages"))}
        rows = conn.execute(select(*(column(name) for name in ("id", *OLD_THREAD_COLUMNS)))
                            .select_from(table("message_threads"))).all()
    assert {_as_uuid(k): v for k, v in restored.items()} == flags
    assert len(rows) == len(states)
    for row in rows:
        state = states[_as_uuid(row.id)]
        assert _utc(_time(row.crisis_flagged_at)) == state.flagged_at
        assert _maybe_uuid(row.crisis_message_id) == state.message_id
        assert _utc(_time(row.crisis_acknowledged_at)) == state.acknowledged_at
        assert _maybe_uuid(row.crisis_acknowledged_by_id) == state.acknowledged_by
        assert _utc(_time(row.crisis_escalate_at)) == state.escalate_at
        assert row.crisis_escalations == state.escalations

    upgrade(directory=MIGRATIONS)
    assert not set(OLD_THREAD_COLUMNS) & _columns("message_threads")
    assert "crisis_flag" not in _columns("messages")
    # The models match this revision's columns (test_migrations checks the whole schema).
    assert [change for change in _diff() if "crisis" in repr(change)] == []
    with bare_app.test_request_context():
        assert {t: _state(t) for t in states} == states
        assert {m.id: _flag(m) for m in db.session.scalars(select(Message))} == flags
        # Sealed afresh, every state and every flag is one length: nothing to count.
        assert len({len(b) for b in db.session.scalars(select(Thread.crisis_sealed))}) == 1
        assert len({len(b) for b in db.session.scalars(select(Message.crisis_sealed))}) == 1
        db.session.remove()


def _as_uuid(value):
    import uuid
    if isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


def _maybe_uuid(value):
    return None if value is None else _as_uuid(value)


def _time(value):
    from datetime import datetime
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value
