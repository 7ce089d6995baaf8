"""Write and check the audit trail.

`record()` is called by services inside their own transaction: it takes the chain head's row
lock (an UPDATE on the single `audit_head` row), so concurrent writers in other processes
queue behind it and the chain never forks; the lock is released when the caller commits or
rolls back. A rolled-back transaction leaves no event and no gap.
"""

import hmac
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
from portal.crypto.blind_index import pseudonym
from portal.crypto.envelope import crypto_state, current_key
from portal.crypto.errors import DecryptionError
from portal.crypto.sealing import Context, open_text, seal
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

# The columns a row's MAC covers, in the canonical encoding. `id` is left out: it is a surrogate
# key the database assigns at insert, after the MAC is computed; `seq` is the chain position.
HASHED_COLUMNS = ("seq", "at", "actor_id", "actor_role", "action", "target_type", "target_id",
                  "subject_id", "origin_sealed", "detail_sealed", "outcome", "severity",
                  "prev_hash")
MAC_KEY = "audit-chain"  # the subkey of PORTAL_INDEX_KEY that keys the chain
# Whose emergency grant an `emergency.*` event concerns is a keyed stand-in for the client's
# id (portal.messaging.emergency), so the row names nobody to a thief; the client's access
# log finds those events through the same stand-in.
EMERGENCY_INDEX = "emergency-index"
# A detail holds flags and ids, like the rest of the row (sealed, but still no free text).
_DETAIL_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{0,64}$")
DETAIL_MAX = 16

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
           severity: str = "info", detail: dict[str, Any] | None = None) -> AuditEvent:
    """Append an event to the chain inside the caller's transaction (never commits).

    `actor` is a User or None; `target` is None, a `(target_type, target_id)` pair or a model
    instance (its table name and id); `subject_id` is the client whose record was touched.
    `detail` is a small dict of flags and ids that must not be readable at rest (whether a
    message was crisis-flagged): sealed in the row, read back with `detail_of`.
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
    origin = _request_origin()
    detail_text = _detail_text(detail)
    detail_owner = actor_id or subject
    if detail_text is not None and detail_owner is None:
        raise ValueError("an audit detail needs an actor or a subject to seal it under")
    _warm_keys(detail_owner if origin else None, detail_owner if detail_text else None)

    # The caller's changes first, so every writer takes row locks before the head's (no
    # deadlocks on PostgreSQL); then plain statements in its transaction, without the ORM.
    db.session.flush()
    connection = db.session.connection()
    seq, prev_hash = _advance_head(connection)
    event = AuditEvent(
        seq=seq, at=utcnow(), actor_id=actor_id, actor_role=actor_role, action=action,
        target_type=target_type, target_id=target_id, subject_id=subject,
        origin_sealed=_seal_origin(detail_owner, seq, origin),
        detail_sealed=(None if detail_text is None
                       else seal(detail_owner, detail_context(seq), detail_text)),
        outcome=outcome, severity=severity, prev_hash=prev_hash,
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
    origin = _request_origin()
    _warm_keys(actor_id if origin else None, None)

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
            target_type=target_type, target_id=target_id, subject_id=subject,
            origin_sealed=_seal_origin(actor_id, seq, origin), detail_sealed=None,
            outcome=outcome, severity=severity, prev_hash=prev_hash)
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


def _request_origin() -> tuple[str | None, str | None] | None:
    """(IP address, user agent) of the request being answered; None outside a request."""
    if not has_request_context():
        return None
    origin = (_clean(request.remote_addr, 64), _clean(request.headers.get("User-Agent"), 255))
    return origin if origin != (None, None) else None


def origin_context(seq: int) -> Context:
    """Where a row's sealed origin lives: the row is named by its chain position (its `id`
    is assigned by the database after the MAC is computed)."""
    return Context("audit_events", "origin", uuid.UUID(int=seq))


def detail_context(seq: int) -> Context:
    return Context("audit_events", "detail", uuid.UUID(int=seq))


def _warm_keys(*owners: uuid.UUID | None) -> None:
    """Load (or create) the data keys the row will be sealed under before the head's lock is
    taken, so no SELECT of a key runs while every other writer waits for that lock."""
    for owner in owners:
        if owner is not None:
            current_key(owner)


def _seal_origin(owner: uuid.UUID | None, seq: int,
                 origin: tuple[str | None, str | None] | None) -> bytes | None:
    """The request's IP address and user agent, sealed under the actor's key, or the
    subject's when nobody is signed in (an event with neither keeps no origin: there is
    nobody whose key could seal it)."""
    if origin is None or owner is None:
        return None
    return seal(owner, origin_context(seq), json.dumps(list(origin)))


def _detail_text(detail: dict[str, Any] | None) -> str | None:
    if detail is None:
        return None
    if not isinstance(detail, dict) or len(detail) > DETAIL_MAX:
        raise ValueError(f"an audit detail is a dict of at most {DETAIL_MAX} entries")
    for key, value in detail.items():
        if not isinstance(key, str) or not _DETAIL_VALUE.match(key):
            raise ValueError("an audit detail's keys are short names")
        if isinstance(value, uuid.UUID):
            continue
        if value is not None and not isinstance(value, bool | int) and not (
                isinstance(value, str) and _DETAIL_VALUE.match(value)):
            raise ValueError("an audit detail holds flags, numbers and ids, never text")
    return json.dumps({key: str(value) if isinstance(value, uuid.UUID) else value
                       for key, value in detail.items()}, sort_keys=True, separators=(",", ":"))


def detail_of(row) -> dict[str, Any] | None:
    """The opened detail of an audit row (a model or a plain row): None when it has none or it
    will not open (a shredded key)."""
    owner = row.actor_id or row.subject_id
    if row.detail_sealed is None or owner is None:
        return None
    try:
        return json.loads(open_text(owner, detail_context(row.seq), row.detail_sealed))
    except DecryptionError:
        return None


def origin_of(row) -> tuple[str | None, str | None]:
    """(IP address, user agent) an audit row was recorded from; (None, None) when unknown."""
    owner = row.actor_id or row.subject_id
    if row.origin_sealed is None or owner is None:
        return None, None
    try:
        ip, agent = json.loads(open_text(owner, origin_context(row.seq), row.origin_sealed))
    except (DecryptionError, ValueError):
        return None, None
    return ip, agent


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
    """Return the row's MAC: HMAC-SHA256, under the audit chain's key, of the previous row's
    MAC and the row's canonical encoding. Without PORTAL_INDEX_KEY nobody can compute it."""
    return mac(crypto_state().subkey(MAC_KEY), event)


def mac(key: bytes, event) -> bytes:
    """`compute_hash` under a given key (a migration re-keys the chain with it)."""
    return hmac.new(key, bytes(event.prev_hash) + canonical(event), "sha256").digest()


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
    subject = _uuid(subject_id, "subject_id")
    stmt = select(AuditEvent).where(AuditEvent.subject_id.in_(subject_ids(subject)))
    if staff_only:
        stmt = stmt.where(AuditEvent.actor_role.in_(LOGGED_ROLES))
    stmt = stmt.order_by(AuditEvent.seq.desc()).limit(limit).offset(offset)
    return list(db.session.scalars(stmt))


def subject_ids(client_id: uuid.UUID) -> list[uuid.UUID]:
    """The subject ids under which a client's events are recorded: their id, and the keyed
    stand-in that emergency-access events use instead (see EMERGENCY_INDEX)."""
    return [client_id, pseudonym(EMERGENCY_INDEX, client_id)]


def event_count() -> int:
    """Return how many events the trail holds."""
    return db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0
