"""audit trail: keyed row MACs, sealed IP address, user agent and detail

Revision ID: b7a1e0c0d017
Revises: 89830c32800d
Create Date: 2026-12-03 07:00:00

Until now each row's hash was a plain SHA-256 chain, and the IP address and user agent of
every event were readable. This revision, which needs the portal's keys (`flask --app wsgi db
upgrade` has them; see portal/crypto/migrating.py):

1. checks the old chain first and stops, changing nothing, if it is broken (re-keying a broken
   chain would hide the break);
2. seals each row's IP address and user agent under its actor's data key (`origin_sealed`);
3. rewrites the rows that said a message was crisis-flagged: the flag becomes a sealed detail
   of the message's own `message.sent` row (every send gets one, flagged or not) and the row
   of its own goes; an acknowledgement and an escalation take the ordinary actions the
   messaging feature writes for them now, with a sealed detail;
4. makes `emergency.*` rows name nobody: their subject becomes the client's keyed stand-in
   and a conversation or a file they name moves into the sealed detail, the grant becomes the
   target;
5. numbers the rows again and MACs every one with HMAC-SHA256 under the "audit-chain" subkey
   of PORTAL_INDEX_KEY, so a database writer without the key cannot recompute the chain.

The downgrade does the reverse (unkeyed SHA-256 chain, plaintext origin, separate crisis rows;
an acknowledgement or escalation keeps the conversation as its target, not the message).
"""
import hashlib
import json
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from portal.crypto.migrating import MigrationKeys  # the one part of portal a revision uses

revision = 'b7a1e0c0d017'
down_revision = '89830c32800d'
branch_labels = None
depends_on = None

GENESIS = bytes(32)
OLD_COLUMNS = ("seq", "at", "actor_id", "actor_role", "action", "target_type", "target_id",
               "subject_id", "ip", "user_agent", "outcome", "severity", "prev_hash")
NEW_COLUMNS = ("seq", "at", "actor_id", "actor_role", "action", "target_type", "target_id",
               "subject_id", "origin_sealed", "detail_sealed", "outcome", "severity",
               "prev_hash")
FLAGGED = "message.crisis_flagged"
# The old crisis actions, and what the messaging feature records for each now (about the
# conversation, with the detail every such event carries): marking a flag "seen and acted
# on" is a view of the conversation like any other, an escalation a notice like any other.
RENAMED = {
    "message.crisis_acknowledged": ("thread.viewed", {"crisis_acknowledged": True}),
    "message.crisis_escalated": ("message.notice_queued", {"kind": "escalation"}),
}
VIEWED = "thread.viewed"  # every view's detail says whether it acknowledged a flag
EMERGENCY_PREFIX = "emergency."
EMERGENCY_INDEX = "emergency-index"

TRIGGERS = {
    "postgresql": (
        """
        CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """,
        """
        CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
        """,
        """
        CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()
        """,
    ),
    "sqlite": (
        """
        CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END
        """,
        """
        CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END
        """,
    ),
}
DROP_TRIGGERS = {
    "postgresql": ("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events",
                   "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events"),
    "sqlite": ("DROP TRIGGER IF EXISTS audit_events_no_update",
               "DROP TRIGGER IF EXISTS audit_events_no_delete"),
}


def _events(*extra):
    return sa.table(
        "audit_events", sa.column("id", sa.Integer()), sa.column("seq", sa.Integer()),
        sa.column("at", sa.DateTime(timezone=True)), sa.column("actor_id", sa.Uuid()),
        sa.column("actor_role", sa.String()), sa.column("action", sa.String()),
        sa.column("target_type", sa.String()), sa.column("target_id", sa.String()),
        sa.column("subject_id", sa.Uuid()), sa.column("outcome", sa.String()),
        sa.column("severity", sa.String()), sa.column("prev_hash", sa.LargeBinary()),
        sa.column("row_hash", sa.LargeBinary()), *extra)


HEAD = sa.table("audit_head", sa.column("id", sa.Integer()), sa.column("seq", sa.Integer()),
                sa.column("last_hash", sa.LargeBinary()))
USERS = sa.table("users", sa.column("id", sa.Uuid()))
MESSAGES = sa.table("messages", sa.column("id", sa.Uuid()), sa.column("thread_id", sa.Uuid()))
GRANTS = sa.table("emergency_access_grants", sa.column("id", sa.Uuid()),
                  sa.column("admin_id", sa.Uuid()), sa.column("client_id", sa.Uuid()),
                  sa.column("created_at", sa.DateTime(timezone=True)),
                  sa.column("expires_at", sa.DateTime(timezone=True)),
                  sa.column("ended_at", sa.DateTime(timezone=True)))


def _utc(value):
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _canonical(row: dict, columns) -> bytes:
    """portal.audit.service.canonical, written out: the chain's on-disk format."""
    values = {}
    for name in columns:
        value = row[name]
        if isinstance(value, datetime):
            value = _utc(value).astimezone(UTC).isoformat(timespec="microseconds")
        elif isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, bytes | bytearray | memoryview):
            value = bytes(value).hex()
        values[name] = value
    return json.dumps(values, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")


def _sha256(prev: bytes, row: dict) -> bytes:
    return hashlib.sha256(prev + _canonical(row, OLD_COLUMNS)).digest()


def _context_id(seq: int) -> uuid.UUID:
    return uuid.UUID(int=seq)


def _load(bind, columns) -> list[dict]:
    events = _events(*(sa.column(name, sa.LargeBinary() if name.endswith("_sealed")
                                 else sa.String()) for name in columns))
    return [dict(row._mapping) for row in bind.execute(
        sa.select(events).order_by(events.c.seq))]


def _replace_all(bind, rows: list[dict], columns) -> None:
    events = _events(*(sa.column(name, sa.LargeBinary() if name.endswith("_sealed")
                                 else sa.String()) for name in columns))
    bind.execute(sa.delete(events))
    keep = ("id", "seq", "at", "actor_id", "actor_role", "action", "target_type", "target_id",
            "subject_id", "outcome", "severity", "prev_hash", "row_hash", *columns)
    for start in range(0, len(rows), 500):
        bind.execute(sa.insert(events), [{k: row[k] for k in keep}
                                         for row in rows[start:start + 500]])
    last = rows[-1] if rows else None
    bind.execute(sa.update(HEAD).where(HEAD.c.id == 1).values(
        seq=last["seq"] if last else 0, last_hash=last["row_hash"] if last else GENESIS))


def _check_old_chain(rows: list[dict]) -> None:
    prev = GENESIS
    for expected, row in enumerate(rows, start=1):
        if row["seq"] != expected or bytes(row["prev_hash"]) != prev \
                or _sha256(prev, row) != bytes(row["row_hash"]):
            raise RuntimeError(
                f"the audit chain is broken at event #{row['seq']}: run `portal audit-verify` "
                "on the version before this upgrade and investigate; re-keying it now would "
                "hide the break (nothing was changed)")
        prev = bytes(row["row_hash"])


def _grant_for(grants, row) -> uuid.UUID | None:
    """The grant an emergency event was made under: the actor's grant for that client that
    was open at the event's time (the newest such, should two overlap)."""
    at = _utc(row["at"])
    open_then = [grant for grant in grants.get((row["actor_id"], row["subject_id"]), ())
                 if _utc(grant.created_at) <= at <= _utc(grant.ended_at or grant.expires_at)]
    return max(open_then, key=lambda g: _utc(g.created_at)).id if open_then else None


def _set_triggers(install: bool) -> None:
    dialect = op.get_bind().dialect.name
    for statement in (TRIGGERS if install else DROP_TRIGGERS).get(dialect, ()):
        op.execute(statement)


def upgrade():
    bind = op.get_bind()
    rows = _load(bind, ("ip", "user_agent"))
    _check_old_chain(rows)  # before any change: SQLite's DDL here is not transactional
    _set_triggers(False)
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin_sealed', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('detail_sealed', sa.LargeBinary(), nullable=True))
    if rows:
        keys = MigrationKeys(bind)
        grants: dict = {}
        for grant in bind.execute(sa.select(GRANTS)):
            grants.setdefault((grant.admin_id, grant.client_id), []).append(grant)
        sends = {row["target_id"]: row for row in rows
                 if row["action"] == "message.sent" and row["target_type"] == "message"}
        details: dict[int, dict] = {id(row): {"crisis": False} for row in sends.values()}
        details.update({id(row): {"crisis_acknowledged": False} for row in rows
                        if row["action"] == VIEWED})
        thread_of = {str(m.id): str(m.thread_id) for m in bind.execute(sa.select(MESSAGES))}
        kept = []
        for row in rows:
            action = row["action"]
            if action == FLAGGED:
                sent = sends.get(row["target_id"])
                if sent is not None:
                    details[id(sent)]["crisis"] = True
                    continue  # the send's own row says it now
                row["action"] = "message.sent"
                details[id(row)] = {"crisis": True}
            elif action in RENAMED:
                row["action"], detail = RENAMED[action]
                row["severity"] = "info"  # "high" would pick them out
                if row["target_type"] == "message" and row["target_id"] in thread_of:
                    row["target_type"], row["target_id"] = "thread", thread_of[row["target_id"]]
                details[id(row)] = dict(detail)
            elif action.startswith(EMERGENCY_PREFIX) and row["subject_id"] is not None:
                detail = {}
                if row["target_type"] not in (None, "emergency_grant"):
                    detail[row["target_type"]] = row["target_id"]
                    grant_id = _grant_for(grants, row)
                    row["target_type"] = "emergency_grant" if grant_id else None
                    row["target_id"] = str(grant_id) if grant_id else None
                detail["client"] = str(row["subject_id"])
                details[id(row)] = detail
                row["subject_id"] = uuid.UUID(bytes=keys.digest(
                    EMERGENCY_INDEX, row["subject_id"].bytes)[:16])
            kept.append(row)
        prev = GENESIS
        for seq, row in enumerate(kept, start=1):
            row["seq"] = seq
            origin = [row.pop("ip"), row.pop("user_agent")]
            row["origin_sealed"] = (
                keys.seal(row["actor_id"], "audit_events", "origin", _context_id(seq),
                          json.dumps(origin))
                if row["actor_id"] is not None and origin != [None, None] else None)
            detail = details.get(id(row))
            owner = row["actor_id"] or row["subject_id"]
            row["detail_sealed"] = (
                keys.seal(owner, "audit_events", "detail", _context_id(seq),
                          json.dumps(detail, sort_keys=True, separators=(",", ":")))
                if detail is not None else None)
            row["prev_hash"] = prev
            row["row_hash"] = prev = keys.digest("audit-chain", prev + _canonical(row,
                                                                                NEW_COLUMNS))
        _replace_all(bind, kept, ("origin_sealed", "detail_sealed"))
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('user_agent')
        batch_op.drop_column('ip')
    _set_triggers(True)


def downgrade():
    bind = op.get_bind()
    _set_triggers(False)
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ip', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('user_agent', sa.String(length=255), nullable=True))
    rows = _load(bind, ("origin_sealed", "detail_sealed"))
    if rows:
        keys = MigrationKeys(bind)
        flagged_action = {new: (old, next(iter(flag))) for old, (new, flag) in RENAMED.items()}
        out = []
        for row in rows:
            seq = row["seq"]
            origin = [None, None]
            if row["origin_sealed"] is not None:
                origin = json.loads(keys.open_text(row["actor_id"], "audit_events", "origin",
                                                   _context_id(seq), row["origin_sealed"]))
            detail = {}
            if row["detail_sealed"] is not None:
                detail = json.loads(keys.open_text(row["actor_id"] or row["subject_id"],
                                                   "audit_events", "detail", _context_id(seq),
                                                   row["detail_sealed"]))
            row["ip"], row["user_agent"] = origin
            if row["action"].startswith(EMERGENCY_PREFIX) and "client" in detail:
                row["subject_id"] = uuid.UUID(detail.pop("client"))
                for target_type in ("thread", "attachment", "message"):
                    if target_type in detail:
                        row["target_type"], row["target_id"] = target_type, detail[target_type]
            elif row["action"] in flagged_action:
                old, key = flagged_action[row["action"]]
                if detail.get(key) is True or detail.get(key) == "escalation":
                    row["action"] = old  # about the conversation now, not its message
                    if old == "message.crisis_escalated":
                        row["severity"] = "high"
            out.append(row)
            if row["action"] == "message.sent" and detail.get("crisis"):
                out.append({**row, "action": FLAGGED, "severity": "high"})
        prev = GENESIS
        for seq, row in enumerate(out, start=1):
            row["seq"], row["prev_hash"] = seq, prev
            row["origin_sealed"] = row["detail_sealed"] = None
            row["row_hash"] = prev = _sha256(prev, row)
        for index, row in enumerate(out):  # the split rows need ids of their own
            row["id"] = index + 1
        _replace_all(bind, out, ("ip", "user_agent"))
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('detail_sealed')
        batch_op.drop_column('origin_sealed')
    _set_triggers(True)
