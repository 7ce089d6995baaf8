"""Minors, their parents or guardians, and what a guardian may see.

Pennsylvania (Act 147 of 2004) lets a minor of 14 or over consent to outpatient mental-health
treatment; who consented decides what a guardian sees. The date of birth is sealed under the
minor's key; the plain columns (who consented, when a link began and ended) are what access
checks and lists need, and say nothing of the treatment.
"""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.crypto import sealed_column
from portal.db import new_id, utcnow
from portal.extensions import db

CONSENT_BY = ("minor", "guardian")
END_REASONS = ("turned_18", "unlinked", "no_longer_minor")
SHARE_KINDS = ("estimate",)


class Minor(db.Model):
    """A client who is a minor: their date of birth and who consented to treatment."""

    __tablename__ = "minors"
    __table_args__ = (CheckConstraint("consent_by IN ('minor', 'guardian')", name="consent_by"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), unique=True)
    date_of_birth_sealed: Mapped[bytes] = sealed_column(owner="client_id")
    consent_by: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))
    updated_at: Mapped[datetime | None]


class Guardianship(db.Model):
    """A guardian's link to one minor client. Ended, never deleted: the history stays."""

    __tablename__ = "guardianships"
    __table_args__ = (
        CheckConstraint("end_reason IS NULL OR end_reason IN "
                        "('turned_18', 'unlinked', 'no_longer_minor')", name="end_reason"),
        Index("ix_guardianships_guardian_ended", "guardian_id", "ended_at"),
        Index("ix_guardianships_minor_ended", "minor_id", "ended_at"),
        # One live link per guardian and minor.
        Index("uq_guardianships_live", "guardian_id", "minor_id", unique=True,
              postgresql_where=text("ended_at IS NULL"), sqlite_where=text("ended_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    guardian_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    minor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))
    ended_at: Mapped[datetime | None]
    ended_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))
    end_reason: Mapped[str | None] = mapped_column(String(24))


class GuardianShare(db.Model):
    """Something of a minor's that the minor or their therapist chose to show a guardian.

    Needed only when the minor consented to treatment themselves; withdrawn, never deleted.
    Conversations are never shareable: `kind` allows estimates only.
    """

    __tablename__ = "guardian_shares"
    __table_args__ = (
        CheckConstraint("kind IN ('estimate')", name="kind"),
        Index("ix_guardian_shares_link_item", "guardianship_id", "kind", "item_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    guardianship_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("guardianships.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(16))
    item_id: Mapped[uuid.UUID]
    shared_at: Mapped[datetime] = mapped_column(default=utcnow)
    shared_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))
