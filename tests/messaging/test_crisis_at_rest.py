"""A stolen database cannot tell a crisis-flagged conversation from an ordinary one (#17).

Two conversations go through the same steps, one with words the crisis check flags (then
marked "seen and acted on"), one without. Read with raw SQL, as a thief holding the file
would, their rows in messages, message_threads and audit_events have the same shape: the same
columns NULL, blobs of the same lengths, the same counts and the same action names, roles,
targets and severities. An escalation writes no action name an ordinary notice does not."""

import uuid
from datetime import date, datetime, timedelta

from sqlalchemy import inspect, text

from portal.accounts import service as accounts
from portal.extensions import db
from portal.messaging import access, escalation, sending
from portal.messaging.reading import view_thread
from tests.messaging import crisis_support

FLAGGED = "Honestly, some days I want to die."
ORDINARY = "Honestly, some days I want a nap!!"  # as long as FLAGGED: bodies seal alike
REPLY = "I am here. Let us talk this evening."
assert len(FLAGGED) == len(ORDINARY)


def _converse(client, therapist, body: str, *, acknowledge: bool):
    """Write, be read, be acknowledged (or simply read again), be answered."""
    thread, message = sending.start_thread(client, counterpart_id=therapist.id,
                                           subject="This week", body=body)
    view_thread(therapist, access.thread_access(therapist, thread.id))
    if acknowledge:
        assert escalation.acknowledge(therapist, thread.id)
    else:
        view_thread(therapist, access.thread_access(therapist, thread.id))
    sending.reply(therapist, thread.id, body=REPLY)
    view_thread(client, access.thread_access(client, thread.id))
    return thread, message


def _shape(value):
    """What a raw value says without keys: NULL or not, a blob's length, an id or a time
    (never its value), and small values (counts, statuses, roles, action names) as they are."""
    if value is None:
        return None
    if isinstance(value, bytes | memoryview):
        return ("blob", len(bytes(value)))
    if isinstance(value, uuid.UUID):
        return "id"
    if isinstance(value, datetime | date):
        return "time"
    if isinstance(value, str):
        if len(value) == 32 and all(c in "0123456789abcdef" for c in value):
            return "id"  # SQLite's UUIDs
        if value[:4].isdigit() and value[4:5] == "-":
            return "time"  # SQLite's timestamps
        try:
            uuid.UUID(value)
            return "id"  # audit target ids
        except ValueError:
            return value
    return value


def _rows(sql: str, **params) -> list[dict]:
    result = db.session.connection().execute(text(sql), params)
    return [dict(row._mapping) for row in result]


def _thread_shape(thread_id) -> dict:
    [row] = _rows("SELECT * FROM message_threads WHERE id = :id",
                  id=_raw_id(thread_id))
    return {name: _shape(value) for name, value in row.items()}


def _message_shapes(thread_id) -> list[dict]:
    rows = _rows("SELECT * FROM messages WHERE thread_id = :id ORDER BY created_at",
                 id=_raw_id(thread_id))
    return [{name: _shape(value) for name, value in row.items()} for row in rows]


def _audit_shapes(client_id) -> list[tuple]:
    rows = _rows("SELECT * FROM audit_events WHERE subject_id = :id ORDER BY seq",
                 id=_raw_id(client_id))
    return [tuple((name, _shape(value)) for name, value in row.items()
                  if name not in ("id", "seq")) for row in rows]


def _raw_id(value):
    return value.hex if db.engine.dialect.name == "sqlite" else value


def test_raw_rows_cannot_tell_a_flagged_conversation_from_an_ordinary_one(app, db, people):
    therapist = people.therapist_y
    flagged, crisis_message = _converse(people.client_a, therapist, FLAGGED, acknowledge=True)
    ordinary, _ = _converse(people.client_b, therapist, ORDINARY, acknowledge=False)
    db.session.commit()
    assert crisis_support.flagged(crisis_message.id)  # the difference is really there
    assert crisis_support.state(flagged.id).acknowledged_by == therapist.id

    assert _thread_shape(flagged.id) == _thread_shape(ordinary.id)
    assert _message_shapes(flagged.id) == _message_shapes(ordinary.id)
    assert _audit_shapes(people.client_a.id) == _audit_shapes(people.client_b.id)
    # No column is about crisis except the sealed ones, and no action names it.
    for table in ("messages", "message_threads", "audit_events"):
        columns = inspect(db.session.connection()).get_columns(table)
        named = {c["name"] for c in columns if "crisis" in c["name"]}
        assert named <= {"crisis_sealed"}, (table, named)
    actions = {row["action"] for row in _rows("SELECT DISTINCT action FROM audit_events")}
    assert not [a for a in actions if "crisis" in a or "flag" in a], actions


def test_every_state_and_flag_is_one_length_whatever_it_holds(app, db, people):
    """Empty, flagged, acknowledged, escalated: the sealed states are all one length, and a
    message's flag is the same length flagged or not."""
    accounts.set_covering(people.admin, people.therapist_y, True)
    thread, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                     subject="Tonight", body=FLAGGED, notify=False)
    due = crisis_support.state(thread.id).escalate_at
    assert escalation.escalate_due(now=due + timedelta(seconds=1)) == 1
    sending.reply(people.client_a, thread.id, body="and again, I want to die", notify=False)
    sending.start_thread(people.client_b, counterpart_id=people.therapist_y.id,
                         subject="Hello", body="See you Tuesday", notify=False)
    seen, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_y.id,
                                   subject="Later", body=FLAGGED, notify=False)
    escalation.acknowledge(people.therapist_y, seen.id)
    db.session.commit()
    assert crisis_support.state(thread.id).escalations == 1
    thread_blobs = _rows("SELECT crisis_sealed FROM message_threads")
    message_blobs = _rows("SELECT crisis_sealed FROM messages")
    assert len({len(bytes(r["crisis_sealed"])) for r in thread_blobs}) == 1
    assert len({len(bytes(r["crisis_sealed"])) for r in message_blobs}) == 1
    assert len(thread_blobs) == 3 and len(message_blobs) == 4
    # Every seal is randomized: no two blobs alike, so none can be counted as "the flag".
    assert len({bytes(r["crisis_sealed"]) for r in message_blobs}) == 4
    # The escalation's audit event is the one every new-message notice writes.
    sending.start_thread(people.client_b, counterpart_id=people.therapist_y.id, subject="Hi",
                         body="An ordinary note")
    db.session.commit()
    rows = _rows("SELECT action, actor_id, severity, target_type FROM audit_events "
                 "WHERE action = 'message.notice_queued'")
    assert len(rows) == 2  # the escalation's and the ordinary notice's
    assert {(r["actor_id"], r["severity"], r["target_type"]) for r in rows} == {
        (None, "info", "thread")}


def test_the_memory_of_opened_states_never_outlives_the_sealed_value(app, db, people):
    """Opened states are remembered by thread and exact blob: a state copied from another
    thread, or one whose key was shredded, is never answered from memory."""
    from portal.crypto.rotation import shred
    from portal.messaging import crisis_state
    from portal.messaging.models import Thread

    flagged, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                      subject="Tonight", body=FLAGGED, notify=False)
    other, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_y.id,
                                    subject="Hello", body=ORDINARY, notify=False)
    db.session.commit()
    rows = _sealed_rows(flagged.id, other.id)
    states = crisis_state.open_states(rows)  # opened, and remembered
    assert states[flagged.id.hex].flagged and not states[other.id.hex].flagged
    # The flagged thread's blob copied onto the other: its associated data names the first
    # thread, so it will not open there, remembered or not.
    blob = db.session.get(Thread, flagged.id).crisis_sealed
    db.session.execute(text("UPDATE message_threads SET crisis_sealed = :blob WHERE id = :id"),
                       {"blob": blob, "id": _raw_id(other.id)})
    db.session.commit()
    copied = crisis_state.open_states(_sealed_rows(other.id))[other.id.hex]
    assert copied.unreadable and not copied.flagged
    # Shredding the client's key drops what this process remembers of their states.
    assert crisis_state.open_states(_sealed_rows(flagged.id))[flagged.id.hex].flagged
    shred(people.client_a.id)
    db.session.commit()
    from portal.crypto import forget_keys
    forget_keys()
    gone = crisis_state.open_states(_sealed_rows(flagged.id))[flagged.id.hex]
    assert gone.unreadable and not gone.flagged


def _sealed_rows(*thread_ids):
    from sqlalchemy import select

    from portal.messaging import crisis_state
    from portal.messaging.models import Thread
    rows = db.session.execute(select(*crisis_state.sealed_columns())
                              .where(Thread.id.in_(thread_ids))).all()
    db.session.commit()
    return rows
