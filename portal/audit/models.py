"""The audit trail: an append-only, MAC-chained log of who did what to which record.

Rows hold ids, never content: no names, emails, subjects, message text or reasons. Each row's
MAC (HMAC-SHA256 under the "audit-chain" subkey of PORTAL_INDEX_KEY, kept outside the
database) covers the previous row's, so editing, deleting or reordering a row breaks the chain
at that row, and someone who can write to the database but lacks the key cannot compute a new
one. `AuditHead` is a single row that serializes appends across processes and remembers the
newest MAC, so deleting the newest rows is noticed too.

Where a request came from (IP address and user agent, `origin_sealed`) and an event's
`detail_sealed` (a small dict, e.g. whether a message was crisis-flagged) are sealed under the
actor's data key, or the subject's when nobody acted. Both are plain
LargeBinary columns, not `sealed_column`s: rotation must never rewrite an audit row (the MAC
covers the blobs), so a retired data key keeps opening them; shredding a person's key makes
their part of the trail unreadable, as it should.
"""

import uuid
from datetime import datetime

from sqlalchemy import Index, LargeBinary, String, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.db import utcnow
from portal.db.guards import bulk_target
from portal.extensions import db

GENESIS_HASH = bytes(32)
HEAD_ID = 1


class AppendOnlyError(RuntimeError):
    """Raised when code tries to change or delete an audit event."""


class AuditEvent(db.Model):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_actor_id", "actor_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(unique=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[uuid.UUID | None]
    actor_role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    subject_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    origin_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    detail_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    severity: Mapped[str] = mapped_column(String(8), default="info")
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    row_hash: Mapped[bytes] = mapped_column(LargeBinary(32))

    def __repr__(self) -> str:
        return f"<AuditEvent #{self.seq} {self.action} {self.outcome}>"


class AuditHead(db.Model):
    """The chain's newest position and hash; one row (id=1), locked by every append."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


@event.listens_for(AuditEvent, "before_update")
def _refuse_update(mapper, connection, target) -> None:
    raise AppendOnlyError("audit events are append-only; they cannot be changed")


@event.listens_for(AuditEvent, "before_delete")
def _refuse_delete(mapper, connection, target) -> None:
    raise AppendOnlyError("audit events are append-only; they cannot be deleted")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(orm_execute_state) -> None:
    """Refuse `update()` / `delete()` of audit events through a session (no mapper events fire)."""
    if bulk_target(orm_execute_state, (AuditEvent,)) is not None:
        raise AppendOnlyError("audit events are append-only; bulk update and delete are refused")
