"""Good Faith Estimates at rest: sealed content, plain columns only for lists and reminders.

Plain: client and therapist ids, status, dates, the GFE number and the PDF's
keyed digest (an HMAC under a key kept outside the database, so it cannot be used to test
guesses at the content). Sealed under the client's data key: the whole document (names,
date of birth, address, providers, line items, diagnosis codes) and the frozen PDF bytes. The
total is not stored apart from the document: it is the sum of the document's lines
(`totals.total_of`). Billed amounts are sealed under the estimate's client's key.

Once issued an estimate is frozen. A mapper guard refuses any change to its content (the sealed
blobs may only be re-sealed to the same plaintext, which is what key rotation does) and any
delete; bulk UPDATE statements may only touch the delivery and billing columns, and bulk DELETE
is refused outright.
"""

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    event,
    inspect,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.crypto import DecryptionError, context_for, open_bytes, sealed_column
from portal.db import new_id, utcnow
from portal.db.guards import HistoryWords, bulk_target, keep_as_history
from portal.extensions import db


class Status(enum.StrEnum):
    DRAFT = "draft"
    ISSUED = "issued"
    SUPERSEDED = "superseded"


class FrozenEstimateError(RuntimeError):
    """Raised when code tries to change or delete an issued Good Faith Estimate."""


TABLE = "good_faith_estimates"


class GoodFaithEstimate(db.Model):
    """One estimate for one client: a draft, then issued (frozen), perhaps later superseded."""

    __tablename__ = TABLE
    __table_args__ = (
        UniqueConstraint("issue_year", "sequence", name="uq_good_faith_estimates_year_sequence"),
        CheckConstraint("status IN ('draft', 'issued', 'superseded')", name="status"),
        CheckConstraint("download_count >= 0", name="download_count_not_negative"),
        CheckConstraint(
            "status = 'draft' OR (number IS NOT NULL AND pdf_digest IS NOT NULL "
            "AND pdf_sealed IS NOT NULL AND issue_date IS NOT NULL)",
            name="issued_is_complete"),
        Index("ix_good_faith_estimates_client_status", "client_id", "status"),
        Index("ix_good_faith_estimates_status_due", "status", "due_date"),
        Index("ix_good_faith_estimates_status_period_end", "status", "period_end"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    therapist_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(16), default=Status.DRAFT)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Numbering: GFE-<issue_year>-<sequence, 4 digits>, given when issued.
    number: Mapped[str | None] = mapped_column(String(24), unique=True)
    issue_year: Mapped[int | None]
    sequence: Mapped[int | None]
    issue_date: Mapped[date | None] = mapped_column(Date)
    issued_at: Mapped[datetime | None]
    issued_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))

    # What lists and reminders need, copied from the document when saved or issued. The
    # total is not copied (it would be readable at rest): totals.total_of opens the document.
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    recurring: Mapped[bool] = mapped_column(default=False)

    # Deadlines (45 CFR 149.610(b)(1)(ii)): when scheduled and for when, or when requested.
    scheduled_on: Mapped[date | None] = mapped_column(Date)
    service_date: Mapped[date | None] = mapped_column(Date)
    requested_on: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)

    # Corrections and renewals: history stays, linked both ways.
    supersedes_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey(f"{TABLE}.id", ondelete="RESTRICT"), unique=True)
    superseded_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey(f"{TABLE}.id", ondelete="RESTRICT"), unique=True)
    renews_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey(f"{TABLE}.id", ondelete="RESTRICT"), index=True)

    # Sealed content (owner: the client).
    # Rotation loads these rows (load_rows), so its re-sealing passes through the freeze
    # guard below, which checks the plaintext is unchanged.
    document_sealed: Mapped[bytes | None] = sealed_column(owner="client_id", load_rows=True)
    pdf_sealed: Mapped[bytes | None] = sealed_column(owner="client_id", load_rows=True)
    # Hex HMAC-SHA256 of the row id and the PDF under the "estimate-pdf" subkey of
    # PORTAL_INDEX_KEY (content.pdf_digest); the download checks it.
    pdf_digest: Mapped[str | None] = mapped_column(String(64))

    # Evidence of delivery (may change after issue).
    first_viewed_at: Mapped[datetime | None]
    download_count: Mapped[int] = mapped_column(default=0)
    last_downloaded_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]

    # The billed-versus-estimate level, for lists: ok, warning, dispute_eligible.
    billing_level: Mapped[str] = mapped_column(String(24), default="ok")

    @property
    def is_draft(self) -> bool:
        return self.status == Status.DRAFT

    @property
    def is_issued(self) -> bool:
        return self.status in (Status.ISSUED, Status.SUPERSEDED)

    def __repr__(self) -> str:  # ids and status only, never content
        return f"<GoodFaithEstimate {self.id} {self.status}>"


class BilledAmount(db.Model):
    """An amount billed by one provider of an issued estimate (by position in its document).

    Entries are never deleted; a mistyped one is voided, so the history stays. The amount
    (cents, as decimal text) and the date on the bill (ISO text) are sealed under the
    estimate's client's key; `amount_cents` and `bill_date` are not columns: billing
    opens them onto the bills it reads (totals.open_bills).
    """

    __tablename__ = "gfe_billed_amounts"
    __table_args__ = (
        CheckConstraint("provider_position >= 0", name="provider_position_not_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    estimate_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{TABLE}.id", ondelete="RESTRICT"), index=True)
    provider_position: Mapped[int]
    amount_sealed: Mapped[bytes] = sealed_column(owner=lambda: _bill_owner())
    amount_cents = None  # int, opened by totals.open_bills (never stored)
    bill_date_sealed: Mapped[bytes] = sealed_column(owner=lambda: _bill_owner())
    bill_date = None  # date, opened by totals.open_bills (never stored)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))
    voided_at: Mapped[datetime | None]
    voided_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))


def _bill_owner():
    """A billed amount is sealed under its estimate's client's key."""
    return (select(GoodFaithEstimate.client_id)
            .where(GoodFaithEstimate.id == BilledAmount.estimate_id).scalar_subquery())


class DeliveryEvent(db.Model):
    """When a client opened, downloaded or acknowledged an estimate: evidence of delivery."""

    __tablename__ = "gfe_delivery_events"
    __table_args__ = (
        CheckConstraint("kind IN ('viewed', 'downloaded', 'acknowledged')", name="kind"),
        Index("ix_gfe_delivery_events_estimate_at", "estimate_id", "at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    estimate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{TABLE}.id",
                                                              ondelete="RESTRICT"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id",
                                                                 ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow)


CORRECTION_REASONS = ("typed_wrong_date", "client_corrected", "rescheduled", "withdrawn")


class DeadlineCorrection(db.Model):
    """A correction to a date that started a deadline (requested_on, scheduled_on,
    service_date): the recorded dates are read-only, so each change is a row here, with the
    due date before and after, and the first row's old due date is the original deadline."""

    __tablename__ = "gfe_deadline_corrections"
    __table_args__ = (
        CheckConstraint("field IN ('requested_on', 'scheduled_on', 'service_date')",
                        name="field"),
        CheckConstraint(
            "reason IN ('typed_wrong_date', 'client_corrected', 'rescheduled', 'withdrawn')",
            name="reason"),
        Index("ix_gfe_deadline_corrections_estimate_at", "estimate_id", "corrected_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    estimate_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{TABLE}.id", ondelete="RESTRICT"))
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    field: Mapped[str] = mapped_column(String(16))
    old_value: Mapped[date | None] = mapped_column(Date)
    new_value: Mapped[date | None] = mapped_column(Date)
    old_due_date: Mapped[date | None] = mapped_column(Date)
    new_due_date: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(24))
    note_sealed: Mapped[bytes | None] = sealed_column(owner="client_id")  # optional words
    corrected_at: Mapped[datetime] = mapped_column(default=utcnow)
    corrected_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))


# Key rotation re-seals the note (the same words); nothing else ever moves.
keep_as_history(DeadlineCorrection, FrozenEstimateError, HistoryWords(
    changed="a deadline correction is history: it is never changed",
    deleted="a deadline correction is history: it is never deleted",
    bulk="a deadline correction is history: it is never deleted"),
    may_change=frozenset({"note_sealed"}), bulk_updates=True)


# ------------------------------------------------------------------------ the freeze guard

# Columns that may change after issue: delivery evidence, billing level, and the one-way
# status move issued -> superseded with its link.
MUTABLE_AFTER_ISSUE = frozenset({
    "status", "superseded_by_id", "first_viewed_at", "download_count", "last_downloaded_at",
    "acknowledged_at", "billing_level", "updated_at",
})
SEALED_COLUMNS = frozenset({"document_sealed", "pdf_sealed"})
BULK_UPDATABLE = MUTABLE_AFTER_ISSUE - {"status", "superseded_by_id"}


def _stored_row(connection, target: GoodFaithEstimate):
    """Read the row as the database holds it now (what the last flush wrote)."""
    table = GoodFaithEstimate.__table__
    return connection.execute(select(table).where(table.c.id == target.id)).mappings().first()


def _same_plaintext(target: GoodFaithEstimate, attr: str, old: bytes | None,
                    new: bytes | None) -> bool:
    """A sealed column may be re-sealed (key rotation) only to the very same plaintext."""
    if old is None or new is None:
        return old is new
    context = context_for(getattr(GoodFaithEstimate, attr), target.id)
    try:
        return (open_bytes(target.client_id, context, bytes(new))
                == open_bytes(target.client_id, context, bytes(old)))
    except DecryptionError:
        return False


def _normalized(value):
    return bytes(value) if isinstance(value, memoryview | bytearray) else value


@event.listens_for(GoodFaithEstimate, "before_update")
def _refuse_changes_to_issued(mapper, connection, target: GoodFaithEstimate) -> None:
    stored = _stored_row(connection, target)
    if stored is None or stored["status"] == Status.DRAFT:
        return
    loaded = inspect(target).dict  # attributes not loaded are not being changed
    for attr in mapper.column_attrs:
        key, column = attr.key, attr.columns[0]
        if key in MUTABLE_AFTER_ISSUE or key not in loaded:
            continue
        new, old = _normalized(loaded[key]), _normalized(stored[column.name])
        if new == old:
            continue
        if key in SEALED_COLUMNS and _same_plaintext(target, key, old, new):
            continue
        raise FrozenEstimateError(f"an issued Good Faith Estimate cannot be changed ({key})")
    status = loaded.get("status", stored["status"])
    if status != stored["status"] and not (
            stored["status"] == Status.ISSUED and status == Status.SUPERSEDED):
        raise FrozenEstimateError("an issued Good Faith Estimate can only become superseded")
    link = loaded.get("superseded_by_id", stored["superseded_by_id"])
    if stored["superseded_by_id"] is not None and link != stored["superseded_by_id"]:
        raise FrozenEstimateError("a superseded Good Faith Estimate keeps its replacement")


@event.listens_for(GoodFaithEstimate, "before_delete")
def _refuse_delete_of_issued(mapper, connection, target: GoodFaithEstimate) -> None:
    stored = _stored_row(connection, target)
    if stored is not None and stored["status"] != Status.DRAFT:
        raise FrozenEstimateError("an issued Good Faith Estimate is never deleted")


@event.listens_for(BilledAmount, "before_delete")
def _refuse_delete_of_bill(mapper, connection, target: BilledAmount) -> None:
    raise FrozenEstimateError("billed amounts are voided, never deleted")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(orm_execute_state) -> None:
    """Bulk statements skip the mapper guard, so allow only safe ones on the estimates table."""
    model = bulk_target(orm_execute_state, (GoodFaithEstimate, BilledAmount, DeliveryEvent))
    if model is None:
        return
    if orm_execute_state.is_delete:
        raise FrozenEstimateError("bulk delete of Good Faith Estimate records is refused")
    if model is not GoodFaithEstimate:
        return
    keys = {getattr(key, "key", getattr(key, "name", str(key)))
            for key in (orm_execute_state.statement._values or {})}
    if not keys or not keys <= BULK_UPDATABLE:
        raise FrozenEstimateError(
            "bulk update of Good Faith Estimates may only touch delivery and billing columns")
