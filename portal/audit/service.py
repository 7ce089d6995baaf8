"""Write and check the audit trail.

`record()` is called by services inside their own transaction: it takes the chain head's row
lock (an UPDATE on the single `audit_head` row), so concurrent writers in other processes
queue behind it and the chain never forks; the lock is released when the caller commits or
rolls back. A rolled-back transaction leaves no event and no gap.
"""

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import has_request_context, request
from sqlalchemy import Integer, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from portal.audit.models import GENESIS_HASH, HEAD_ID, AuditEvent, AuditHead
from portal.db import utcnow
from portal.extensions import db

OUTCOMES = frozenset({"ok", "failure", "denied"})
SEVERITIES = frozenset({"info", "high"})
STAFF_ROLES = ("therapist", "admin")
# Whose actions on a client's record their access log lists: staff, and a minor's parent or
# guardian (portal.guardians), whose every look at the minor's record is shown to the minor.
LOGGED_ROLES = (*STAFF_ROLES, "guardian")

# Dotted lower-case names ("auth.signin.success"); no room for free text.
_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_-]+)+$")
# Ids only: UUIDs, integers, slugs. No spaces or "@", so no names or addresses slip in.
_TARGET_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_TARGET_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# The columns a row hash covers, in the canonical encoding. `id` is left out: it is a surrogate
# key the database assigns at insert, after the hash is computed; `seq` is the chain position.
HASHED_COLUMNS = ("seq", "at", "actor_id", "actor_role", "action", "target_type", "target_id",
                  "subject_id", "ip", "user_agent", "outcome", "severity", "prev_hash")

INSERTED_COLUMNS = (*HASHED_COLUMNS, "row_hash")

VERIFY_BATCH = 1000

# Built once: every page view records an event (see README, "Conventions for speed").
_HEAD, _EVENTS = AuditHead.__table__, AuditEvent.__table__
_BUMP_HEAD = (update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(seq=_HEAD.c.seq + 1)
              .returning(_HEAD.c.seq, _HEAD.c.last_hash))
_SET_LAST_HASH = update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(
    last_hash=bindparam("last_hash", type_=_HEAD.c.last_hash.type))
_INSERT = insert(_EVENTS).values({name: bindparam(name, type_=_EVENTS.c[name].type)
                                  for name in INSERTED_COLUMNS}).returning(_EVENTS.c.id)
# `record_many`: the head moves on by n at once, and the rows go in as one executemany.
_BUMP_HEAD_BY = (update(_HEAD).where(_HEAD.c.id == HEAD_ID)
                 .values(seq=_HEAD.c.seq + bindparam("n", type_=Integer))
                 .returning(_HEAD.c.seq, _HEAD.c.last_hash))
_INSERT_MANY = insert(_EVENTS)


# --- writing --------------------------------------------------------------------------------

def record(action: str, *, actor=None, target: tuple[str, Any] | object | None = None,
           subject_id: uuid.UUID | None = None, outcome: str = "ok",
           severity: str = "info") -> AuditEvent:
    """Append an event to the chain inside the caller's transaction (never commits).

    `actor` is a User or None; `target` is None, a `(target_type, target_id)` pair or a model
    instance (its table name and id); `subject_id` is the client whose record was touched.
    """
    if not isinstance(action, str) or len(action) > 64 or not _ACTION.match(action):
        raise ValueError("audit action must be a dotted lower-case name of at most 64 characters")
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome must be one of {sorted(OUTCOMES)}")
    if severity not in SEVERITIES:
        raise ValueError(f"audit severity must be one of {sorted(SEVERITIES)}")
    target_type, target_id = _target(target)
    actor_id, actor_role = _actor(actor)
    subject = _uuid(subject_id, "subject_id")
    ip, user_agent = _request_origin()

    # The caller's changes first, so every writer takes row locks before the head's (no
    # deadlocks on PostgreSQL); then plain statements in its transaction, without the ORM.
    db.session.flush()
    connection = db.session.connection()
    seq, prev_hash = _advance_head(connection)
    event = AuditEvent(
        seq=seq, at=utcnow(), actor_id=actor_id, actor_role=actor_role, action=action,
        target_type=target_type, target_id=target_id, subject_id=subject, ip=ip,
        user_agent=user_agent, outcome=outcome, severity=severity, prev_hash=prev_hash,
    )
    event.row_hash = compute_hash(event)
    connection.execute(_SET_LAST_HASH, {"last_hash": event.row_hash})
    event.id = connection.execute(
        _INSERT, {name: getattr(event, name) for name in INSERTED_COLUMNS}).scalar_one()
    return event  # a plain record of the row: not in the session, never updated


def record_many(events: list[tuple[str, tuple[str, Any] | object | None, uuid.UUID | None]],
                *, actor=None, outcome: str = "ok", severity: str = "info") -> int:
    """Append several events by one actor, as `record()` would one by one, in a fixed number
    of statements however many there are (a page listing 50 clients records 50 looks).

    `events` are (action, target, subject_id) triples, appended in order; returns how many.
    """
    if not events:
        return 0
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome must be one of {sorted(OUTCOMES)}")
    if severity not in SEVERITIES:
        raise ValueError(f"audit severity must be one of {sorted(SEVERITIES)}")
    checked = []
    for action, target, subject_id in events:
        if not isinstance(action, str) or len(action) > 64 or not _ACTION.match(action):
            raise ValueError("audit action must be a dotted lower-case name of at most 64 "
                             "characters")
        checked.append((action, *_target(target), _uuid(subject_id, "subject_id")))
    actor_id, actor_role = _actor(actor)
    ip, user_agent = _request_origin()

    db.session.flush()
    connection = db.session.connection()
    row = connection.execute(_BUMP_HEAD_BY, {"n": len(checked)}).first()
    if row is None:
        _create_head()
        row = connection.execute(_BUMP_HEAD_BY, {"n": len(checked)}).one()
    seq, prev_hash = row.seq - len(checked), bytes(row.last_hash)
    at = utcnow()
    rows = []
    for action, target_type, target_id, subject in checked:
        seq += 1
        event = AuditEvent(
            seq=seq, at=at, actor_id=actor_id, actor_role=actor_role, action=action,
            target_type=target_type, target_id=target_id, subject_id=subject, ip=ip,
            user_agent=user_agent, outcome=outcome, severity=severity, prev_hash=prev_hash)
        event.row_hash = prev_hash = compute_hash(event)
        rows.append({name: getattr(event, name) for name in INSERTED_COLUMNS})
    connection.execute(_SET_LAST_HASH, {"last_hash": prev_hash})
    connection.execute(_INSERT_MANY, rows)
    return len(rows)


def _advance_head(connection) -> tuple[int, bytes]:
    """Take the head's row lock and move it on by one; return (new seq, previous hash)."""
    row = connection.execute(_BUMP_HEAD).first()
    if row is None:
        _create_head()
        row = connection.execute(_BUMP_HEAD).one()
    return row.seq, bytes(row.last_hash)


def _create_head() -> None:
    """Insert the head row if it is missing, continuing any chain already in the table.

    Two first writers may race here: INSERT ... ON CONFLICT DO NOTHING lets one win and the
    other wait for it (PostgreSQL) or find it (SQLite), and both then lock the same row.
    """
    last = db.session.execute(
        select(AuditEvent.seq, AuditEvent.row_hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    values = {"id": HEAD_ID, "seq": last.seq if last else 0,
              "last_hash": bytes(last.row_hash) if last else GENESIS_HASH}
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(AuditHead.__table__).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(AuditHead.__table__).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"audit trail: unsupported database {dialect}")
    db.session.execute(stmt)


def _actor(actor) -> tuple[uuid.UUID | None, str | None]:
    if actor is None or getattr(actor, "is_anonymous", False):
        return None, None
    role = getattr(actor, "role", None)
    return _uuid(actor.id, "actor id"), (str(role) if role is not None else None)


def _target(target) -> tuple[str | None, str | None]:
    if target is None:
        return None, None
    if isinstance(target, tuple):
        if len(target) != 2:
            raise ValueError("audit target must be a (target_type, target_id) pair")
        target_type, target_id = target
    elif hasattr(target, "__tablename__") and hasattr(target, "id"):
        target_type, target_id = target.__tablename__, target.id
    else:
        raise TypeError("audit target must be None, a (type, id) pair or a model instance")
    target_type = str(target_type)
    target_id = None if target_id is None else str(target_id)
    if not _TARGET_TYPE.match(target_type):
        raise ValueError("audit target type must be a short lower-case name")
    if target_id is not None and not _TARGET_ID.match(target_id):
        raise ValueError("audit target id must be an id (letters, digits, '-', '_', '.', ':')")
    return target_type, target_id


def _uuid(value, what: str) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValueError(f"audit {what} must be a UUID") from None


def _request_origin() -> tuple[str | None, str | None]:
    if not has_request_context():
        return None, None
    ip = request.remote_addr
    agent = request.headers.get("User-Agent")
    return (_clean(ip, 64), _clean(agent, 255))


def _clean(value: str | None, limit: int) -> str | None:
    if not value:
        return None
    return _CONTROL.sub("", value)[:limit] or None


# --- hashing --------------------------------------------------------------------------------

def canonical(event) -> bytes:
    """Encode the hashed columns as JSON with sorted keys, times in UTC with microseconds."""
    values: dict[str, Any] = {}
    for name in HASHED_COLUMNS:
        value = getattr(event, name)
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat(timespec="microseconds")
        elif isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, bytes | bytearray | memoryview):
            value = bytes(value).hex()
        values[name] = value
    return json.dumps(values, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")


def compute_hash(event) -> bytes:
    """Return SHA-256 over the previous hash and the row's canonical encoding."""
    return hashlib.sha256(bytes(event.prev_hash) + canonical(event)).digest()


# --- checking -------------------------------------------------------------------------------

@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    count: int
    first_broken_seq: int | None = None
    reason: str | None = None


def _rows_after(seq: int, batch: int) -> list:
    # Plain rows, not ORM objects: the walk must not fill (or disturb) the caller's session.
    table = AuditEvent.__table__
    stmt = select(table).where(table.c.seq > seq).order_by(table.c.seq).limit(batch)
    return list(db.session.execute(stmt))


def _head():
    table = AuditHead.__table__
    return db.session.execute(select(table).where(table.c.id == HEAD_ID)).first()


def verify(batch_size: int = VERIFY_BATCH) -> VerifyResult:
    """Walk the chain in seq order, a batch at a time, and report the first break."""
    expected, prev_hash, count = 1, GENESIS_HASH, 0
    while True:
        rows = _rows_after(expected - 1, batch_size)
        if not rows:
            head = _head()
            if head is None:
                if count:
                    return VerifyResult(False, count, expected - 1, "the chain head is missing")
                return VerifyResult(True, 0)
            if head.seq < expected - 1:
                return VerifyResult(False, count, head.seq + 1,
                                    f"event #{head.seq + 1} is beyond the chain head")
            if head.seq > expected - 1:
                # Events committed while we walked show up now; anything else is missing.
                if _rows_after(expected - 1, 1):
                    continue
                return VerifyResult(False, count, expected,
                                    f"event #{expected} is missing (the chain head is "
                                    f"at #{head.seq})")
            if bytes(head.last_hash) != prev_hash:
                return VerifyResult(False, count, max(expected - 1, 1),
                                    "the chain head's hash does not match the last event")
            return VerifyResult(True, count)
        for row in rows:
            if row.seq != expected:
                if row.seq > expected:
                    return VerifyResult(False, count, expected, f"event #{expected} is missing")
                return VerifyResult(False, count, row.seq,
                                    f"event #{row.seq} is out of sequence")
            if bytes(row.prev_hash) != prev_hash:
                return VerifyResult(False, count, row.seq,
                                    "its previous hash does not match the event before it")
            if compute_hash(row) != bytes(row.row_hash):
                return VerifyResult(False, count, row.seq, "its contents do not match its hash")
            prev_hash, expected, count = bytes(row.row_hash), expected + 1, count + 1


# --- reading --------------------------------------------------------------------------------

def events_for_subject(subject_id: uuid.UUID, staff_only: bool = True,
                       limit: int = 200, offset: int = 0) -> list[AuditEvent]:
    """Return the newest events touching one client's record (by default only what staff and
    guardians did, `LOGGED_ROLES`), skipping the `offset` newest."""
    stmt = select(AuditEvent).where(AuditEvent.subject_id == _uuid(subject_id, "subject_id"))
    if staff_only:
        stmt = stmt.where(AuditEvent.actor_role.in_(LOGGED_ROLES))
    stmt = stmt.order_by(AuditEvent.seq.desc()).limit(limit).offset(offset)
    return list(db.session.scalars(stmt))


def event_count() -> int:
    """Return how many events the trail holds."""
    return db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0
