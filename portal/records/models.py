"""Requests for a copy or an amendment of the record, and disclosures made outside the portal.

Everything a person wrote here is sealed under the client's data key: what was asked for,
the reasons for an extension or a denial, a disclosure's recipient, content and purpose.
Plain: ids, kinds, states and dates, which the deadlines and lists need.
"""

import uuid
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.crypto import sealed_column
from portal.db import new_id, utcnow
from portal.extensions import db

REQUEST_KINDS = ("copy", "amendment")
REQUEST_STATES = ("open", "fulfilled", "denied", "withdrawn")


class RecordRequest(db.Model):
    """A client's request for a copy (45 CFR 164.524) or an amendment (164.526) of what the
    portal does not hold; due 30 days after it arrives, extendable once by 30 with a reason."""

    __tablename__ = "record_requests"
    __table_args__ = (
        CheckConstraint("kind IN ('copy', 'amendment')", name="kind"),
        CheckConstraint("status IN ('open', 'fulfilled', 'denied', 'withdrawn')",
                        name="status"),
        Index("ix_record_requests_status_due", "status", "due_on"),
        Index("ix_record_requests_client_requested", "client_id", "requested_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    received_on: Mapped[date] = mapped_column(Date)  # the practice's day it arrived
    due_on: Mapped[date] = mapped_column(Date)
    # Who recorded it: the client, or staff writing down a request made on paper.
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))
    details_sealed: Mapped[bytes | None] = sealed_column(owner="client_id")
    extended_to: Mapped[date | None] = mapped_column(Date)
    extended_at: Mapped[datetime | None]
    extended_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))
    extension_reason_sealed: Mapped[bytes | None] = sealed_column(owner="client_id")
    closed_at: Mapped[datetime | None]
    closed_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))
    outcome_sealed: Mapped[bytes | None] = sealed_column(owner="client_id")  # why denied, etc.


class Disclosure(db.Model):
    """A disclosure of the client's information made outside the portal (164.528): recorded
    by staff, shown to the client for six years, never deleted (a mistaken one is voided)."""

    __tablename__ = "disclosures"
    __table_args__ = (
        Index("ix_disclosures_client_disclosed", "client_id", "disclosed_on"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    disclosed_on: Mapped[date] = mapped_column(Date)
    recipient_sealed: Mapped[bytes] = sealed_column(owner="client_id")
    content_sealed: Mapped[bytes] = sealed_column(owner="client_id")  # what was disclosed
    purpose_sealed: Mapped[bytes] = sealed_column(owner="client_id")  # purpose or legal basis
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))
    voided_at: Mapped[datetime | None]
    voided_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))
