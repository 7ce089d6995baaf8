"""The audit chain: appends, verification, tamper detection and the append-only guard."""

import hashlib
import hmac
import inspect
import threading
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, text, update

from portal.accounts.models import User
from portal.audit import (
    AppendOnlyError,
    AuditEvent,
    AuditHead,
    VerifyResult,
    events_for_subject,
    record,
    verify,
)
from portal.audit.cli import audit_verify_command
from portal.audit.service import GENESIS_HASH, canonical, compute_hash, detail_of, origin_of
from tests.support.people import make_user

ACTIONS = ("auth.signin.success", "message.read", "estimate.viewed", "account.created")


def _user(role: str = "therapist") -> User:
    """Return a saved user: an event's origin is sealed under its actor's data key."""
    return make_user(role, password=None, mfa_on=False)


def _fill(db, count: int) -> list[AuditEvent]:
    """Record `count` varied events with every column filled, commit, and load them back."""
    actor, subject = _user(), uuid.uuid4()
    ids = []
    for n in range(count):
        ids.append(record(ACTIONS[n % len(ACTIONS)], actor=actor,
                          target=("thread", uuid.uuid4()), subject_id=subject,
                          outcome="ok", severity="info", detail={"n": n}).id)
    db.session.commit()
    loaded = {e.id: e for e in db.session.scalars(select(AuditEvent)
                                                   .where(AuditEvent.id.in_(ids)))}
    return [loaded[i] for i in ids]


def _seqs(db) -> list[int]:
    return list(db.session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)))


def _raw(db, statement, **params) -> None:
    """Change the table behind the ORM's back, the way someone with database access would."""
    db.session.commit()
    with db.engine.begin() as conn:
        conn.execute(statement, params)


def test_chain_verifies_after_many_records(db):
    _fill(db, 57)
    result = verify(batch_size=10)
    assert result.ok and result.count == 57 and result.first_broken_seq is None
    assert _seqs(db) == list(range(1, 58))
    head = db.session.get(AuditHead, 1)
    last = db.session.scalar(select(AuditEvent).where(AuditEvent.seq == 57))
    assert head.seq == 57 and head.last_hash == last.row_hash


def test_an_empty_trail_verifies(db):
    assert verify() == VerifyResult(True, 0)


def test_each_event_links_to_the_one_before(db):
    first, second, third = _fill(db, 3)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.row_hash and third.prev_hash == second.row_hash
    assert compute_hash(third) == third.row_hash


def test_record_flushes_in_the_callers_transaction_and_rollback_leaves_no_gap(db):
    event = record("auth.signin.failure", outcome="failure")
    assert event.id is not None and event.seq == 1  # flushed, not committed
    db.session.rollback()
    assert db.session.scalar(select(AuditEvent.id)) is None
    record("auth.signin.success", actor=_user("client"))
    db.session.commit()
    assert _seqs(db) == [1]
    assert verify().ok


def test_record_takes_role_from_actor_and_ip_and_agent_from_the_request(app, db):
    actor = _user("admin")
    agent = "Mozilla/5.0 " + "x" * 400 + "\x00"
    with app.test_request_context("/", headers={"User-Agent": agent},
                                  environ_base={"REMOTE_ADDR": "203.0.113.9"}):
        event = record("admin.audit.viewed", actor=actor, severity="high")
    db.session.commit()
    assert event.actor_id == actor.id and event.actor_role == "admin"
    ip, user_agent = origin_of(event)
    assert ip == "203.0.113.9"
    assert len(user_agent) == 255 and "\x00" not in user_agent
    assert event.severity == "high"
    assert verify().ok


def test_the_origin_is_sealed_at_rest_and_padded(app, db):
    actor = _user("client")
    with app.test_request_context("/", headers={"User-Agent": "SealedAgent/9.1"},
                                  environ_base={"REMOTE_ADDR": "198.51.100.77"}):
        event = record("auth.signin.success", actor=actor)
    db.session.commit()
    with db.engine.connect() as conn:
        raw = conn.execute(text("SELECT origin_sealed FROM audit_events WHERE seq = :s"),
                           {"s": event.seq}).scalar_one()
    raw = bytes(raw)
    assert b"198.51.100.77" not in raw and b"SealedAgent" not in raw
    assert len(raw) - 45 in (32, 64, 128, 256, 512, 1024)  # header, nonce, tag + a bucket
    assert origin_of(event) == ("198.51.100.77", "SealedAgent/9.1")


def test_a_detail_is_sealed_and_read_back(db):
    actor, subject = _user("client"), uuid.uuid4()
    event = record("message.sent", actor=actor, subject_id=subject, detail={"crisis": True})
    plain = record("message.sent", actor=actor, subject_id=subject, detail={"crisis": False})
    db.session.commit()
    assert detail_of(event) == {"crisis": True} and detail_of(plain) == {"crisis": False}
    assert len(event.detail_sealed) == len(plain.detail_sealed)
    assert event.detail_sealed != plain.detail_sealed
    assert verify().ok


@pytest.mark.parametrize("detail", [{"note": "she said something"}, {"who": "a@b.example"},
                                    {"n": 1.5}, {f"k{n}": n for n in range(17)}])
def test_a_detail_holds_no_free_text(db, detail):
    with pytest.raises(ValueError):
        record("message.sent", actor=_user("client"), detail=detail)


def test_a_chain_recomputed_without_the_key_does_not_verify(db):
    """Someone with write access to the database but not the key rewrites a row and recomputes
    every MAC after it as a plain SHA-256 chain, and as an HMAC under a key of their own."""
    _fill(db, 5)
    table = AuditEvent.__table__
    for forged in (lambda prev, row: hashlib.sha256(prev + canonical(row)).digest(),
                   lambda prev, row: hmac.new(b"k" * 32, prev + canonical(row),
                                              "sha256").digest()):
        rows = [dict(r._mapping) for r in db.session.execute(select(table).order_by(
            table.c.seq))]
        db.session.commit()
        prev = bytes(rows[1]["prev_hash"])
        with db.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update")
                         if conn.dialect.name == "sqlite" else
                         text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
            for row in rows[1:]:
                row["outcome"] = "denied" if row["seq"] == 2 else row["outcome"]
                row["prev_hash"] = prev
                row["row_hash"] = prev = forged(prev, SimpleNamespace(**row))
                conn.execute(update(table).where(table.c.seq == row["seq"]).values(
                    outcome=row["outcome"], prev_hash=row["prev_hash"],
                    row_hash=row["row_hash"]))
            conn.execute(update(AuditHead.__table__).values(last_hash=prev))
            if conn.dialect.name == "postgresql":
                conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
        result = verify()
        assert (result.ok, result.first_broken_seq) == (False, 2)
        assert "do not match" in result.reason


def test_record_without_a_request_or_an_actor(db):
    event = record("auth.signin.failure", outcome="failure")
    db.session.commit()
    assert (event.actor_id, event.actor_role, event.origin_sealed) == (None,) * 3
    assert origin_of(event) == (None, None)


def test_target_may_be_a_pair_or_a_model_instance(db):
    user = _user("client")
    by_pair = record("account.created", target=("user", user.id))
    by_row = record("account.created", target=user)
    db.session.commit()
    assert (by_pair.target_type, by_pair.target_id) == ("user", str(user.id))
    assert (by_row.target_type, by_row.target_id) == ("users", str(user.id))


def test_record_signature_has_no_free_text_field():
    parameters = set(inspect.signature(record).parameters)
    assert parameters == {"action", "actor", "target", "subject_id", "outcome", "severity",
                          "detail"}
    columns = {column.name for column in AuditEvent.__table__.columns}
    assert columns == {"id", "seq", "at", "actor_id", "actor_role", "action", "target_type",
                       "target_id", "subject_id", "origin_sealed", "detail_sealed", "outcome",
                       "severity", "prev_hash", "row_hash"}


@pytest.mark.parametrize("kwargs", [
    {"action": "Jane Doe read the thread"},
    {"action": "message.sent", "target": ("thread", "jane@example.org")},
    {"action": "message.sent", "target": ("thread", "a reason with spaces")},
    {"action": "message.sent", "target": ("Thread Subject", "1")},
    {"action": "message.sent", "subject_id": "not-a-uuid"},
    {"action": "message.sent", "outcome": "the client was upset"},
    {"action": "message.sent", "severity": "critical"},
])
def test_record_refuses_anything_but_ids_and_fixed_words(db, kwargs):
    action = kwargs.pop("action")
    with pytest.raises(ValueError):
        record(action, **kwargs)
    assert db.session.scalar(select(AuditEvent.id)) is None


def test_orm_update_of_an_audit_event_raises(db):
    (event,) = _fill(db, 1)
    event.action = "auth.signin.failure"
    with pytest.raises(AppendOnlyError):
        db.session.flush()
    db.session.rollback()
    assert verify().ok


def test_orm_delete_of_an_audit_event_raises(db):
    (event,) = _fill(db, 1)
    db.session.delete(event)
    with pytest.raises(AppendOnlyError):
        db.session.flush()
    db.session.rollback()
    assert verify().ok and verify().count == 1


@pytest.mark.parametrize("statement", [
    update(AuditEvent).values(outcome="denied"),
    delete(AuditEvent).where(AuditEvent.seq == 1),
])
def test_orm_bulk_update_and_delete_of_audit_events_raise(db, statement):
    _fill(db, 2)
    with pytest.raises(AppendOnlyError):
        db.session.execute(statement)
    db.session.rollback()
    assert verify().ok and verify().count == 2


# Tampering: every column of the first, a middle and the last row, behind the ORM's back.

def _changed(value):
    if isinstance(value, bytes):
        return bytes([value[0] ^ 1]) + value[1:]
    if isinstance(value, uuid.UUID):
        return uuid.uuid4()
    if isinstance(value, str):
        return "auth.signout" if "." in value else value[:-1] + ("x" if value[-1] != "x" else "y")
    if isinstance(value, int):
        return value + 1000
    return value + timedelta(microseconds=1)  # a datetime


TAMPERABLE = ("seq", "at", "actor_id", "actor_role", "action", "target_type", "target_id",
              "subject_id", "origin_sealed", "detail_sealed", "outcome", "severity",
              "prev_hash", "row_hash")


@pytest.mark.parametrize("column", TAMPERABLE)
@pytest.mark.parametrize("position", [1, 4, 7])
def test_tampering_with_any_column_of_any_row_is_detected_at_that_row(app, db, column, position):
    with app.test_request_context("/", headers={"User-Agent": "Firefox"},
                                  environ_base={"REMOTE_ADDR": "198.51.100.7"}):
        _fill(db, 7)
    table = AuditEvent.__table__
    original = db.session.execute(select(table.c[column]).where(table.c.seq == position))
    value = original.scalar_one()
    _raw(db, update(table).where(table.c.seq == position).values({column: _changed(value)}))
    result = verify(batch_size=3)
    assert not result.ok
    assert result.first_broken_seq == position
    assert result.count == position - 1
    assert result.reason


@pytest.mark.parametrize("column", ["actor_id", "target_id", "origin_sealed"])
def test_blanking_a_column_is_detected(app, db, column):
    with app.test_request_context("/", headers={"User-Agent": "Safari"},
                                  environ_base={"REMOTE_ADDR": "192.0.2.1"}):
        _fill(db, 3)
    _raw(db, update(AuditEvent.__table__).where(AuditEvent.__table__.c.seq == 2)
         .values({column: None}))
    assert verify().first_broken_seq == 2


def test_tampering_with_plain_sql_is_detected(db):
    _fill(db, 5)
    _raw(db, text("UPDATE audit_events SET outcome = 'denied' WHERE seq = 3"))
    result = verify()
    assert (result.ok, result.first_broken_seq) == (False, 3)


@pytest.mark.parametrize("position", [1, 5, 9])
def test_deleting_a_row_is_detected_at_its_seq(db, position):
    _fill(db, 9)
    _raw(db, text("DELETE FROM audit_events WHERE seq = :seq"), seq=position)
    result = verify(batch_size=4)
    assert not result.ok and result.first_broken_seq == position
    assert "missing" in result.reason


def test_deleting_the_newest_rows_is_caught_by_the_head(db):
    _fill(db, 4)
    _raw(db, text("DELETE FROM audit_events WHERE seq >= 3"))
    result = verify()
    assert (result.ok, result.first_broken_seq) == (False, 3)


def test_tampering_with_the_head_is_detected(db):
    _fill(db, 3)
    _raw(db, text("UPDATE audit_head SET last_hash = :h"), h=bytes(32))
    result = verify()
    assert not result.ok and result.first_broken_seq == 3


def test_an_event_beyond_the_head_is_detected(db):
    _fill(db, 2)
    _raw(db, text("UPDATE audit_head SET seq = 1"))
    result = verify()
    assert not result.ok and result.first_broken_seq == 2


def test_a_missing_head_is_recreated_from_the_chain(db):
    _fill(db, 3)
    _raw(db, text("DELETE FROM audit_head"))
    assert not verify().ok  # events without a head: reported
    db.session.rollback()
    record("auth.signout", actor=_user())
    db.session.commit()
    assert _seqs(db) == [1, 2, 3, 4]
    assert verify().ok and verify().count == 4


# Concurrency: several sessions (connections) appending at once never fork the chain.

def test_concurrent_writers_never_fork_the_chain(app, db):
    threads, per_thread = 6, 15
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def writer(index: int) -> None:
        try:
            with app.app_context():  # its own session, so its own connection
                start.wait()
                for n in range(per_thread):
                    record("message.read", actor=_user(), target=("thread", f"t{index}-{n}"))
                    if n % 5 == 4:
                        db.session.rollback()  # an aborted transaction leaves no gap
                    else:
                        db.session.commit()
                db.session.remove()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not errors, errors
    committed = threads * (per_thread - per_thread // 5)
    assert _seqs(db) == list(range(1, committed + 1))
    result = verify(batch_size=16)
    assert result.ok and result.count == committed


def test_the_first_writers_race_to_create_the_head(app, db):
    threads = 4
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with app.app_context():
                start.wait()
                record("auth.signin.success", actor=_user("client"))
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=writer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not errors, errors
    assert _seqs(db) == [1, 2, 3, 4]
    assert verify().ok


# Reading

def test_events_for_subject_lists_staff_access_newest_first(db):
    client, other = _user("client"), uuid.uuid4()
    therapist, admin = _user("therapist"), _user("admin")
    record("thread.viewed", actor=therapist, subject_id=client.id)
    record("thread.viewed", actor=client, subject_id=client.id)
    record("estimate.viewed", actor=admin, subject_id=client.id)
    record("thread.viewed", actor=therapist, subject_id=other)
    db.session.commit()
    staff = events_for_subject(client.id)
    assert [(e.action, e.actor_role) for e in staff] == [
        ("estimate.viewed", "admin"), ("thread.viewed", "therapist")]
    everyone = events_for_subject(client.id, staff_only=False)
    assert len(everyone) == 3
    assert len(events_for_subject(client.id, limit=1)) == 1


# The command

def test_audit_verify_command_reports_ok(runner, db):
    _fill(db, 4)
    result = runner.invoke(audit_verify_command)
    assert result.exit_code == 0
    assert result.output.strip() == "audit chain OK: 4 events"


def test_audit_verify_command_exits_1_when_broken(runner, db):
    _fill(db, 4)
    _raw(db, text("UPDATE audit_events SET action = 'auth.signout' WHERE seq = 2"))
    result = runner.invoke(audit_verify_command)
    assert result.exit_code == 1
    assert result.output.startswith("audit chain BROKEN at event #2: ")


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(agent=st.text(max_size=400), ip=st.text(max_size=80))
def test_any_request_headers_are_stored_so_the_chain_still_verifies(app, db, agent, ip):
    """Whatever a client sends as User-Agent or address, the stored row hashes the same."""
    # Straight into the WSGI environ, as a server or proxy would pass them, unvalidated.
    actor = _user("client")
    with app.test_request_context("/", environ_base={"HTTP_USER_AGENT": agent,
                                                     "REMOTE_ADDR": ip}):
        event = record("auth.signin.failure", actor=actor, outcome="failure")
    db.session.commit()
    ip, user_agent = origin_of(event)
    assert user_agent is None or len(user_agent) <= 255
    assert ip is None or len(ip) <= 64
    assert verify().ok
    db.session.commit()


def test_record_returns_the_row_it_wrote_without_putting_it_in_the_session(db):
    event = record("auth.signin.failure", outcome="failure")
    assert event not in db.session  # written with plain statements: nothing to flush again
    db.session.commit()
    stored = db.session.get(AuditEvent, event.id)
    assert (stored.seq, stored.action, bytes(stored.row_hash)) == (
        event.seq, event.action, bytes(event.row_hash))
