"""Policy versions (immutable once published) and clients' acceptances of them.

A version's text, effective date and summary are what clients accepted, so nothing may change
them after publication: a mapper guard refuses ORM updates and deletes of either table, and a
session hook refuses bulk `update()` / `delete()` statements. A correction is a new version.
Foreign keys to users are RESTRICT, like the other records kept for the practice: accounts are
deactivated, never deleted, so no cascade can change these rows either.
"""

import uuid
from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.crypto.fields import sealed_column
from portal.db import new_id, utcnow
from portal.db.guards import bulk_target
from portal.extensions import db

SLUG_MAX = 40
SUMMARY_MAX = 500
TEXT_MAX = 100_000


class PolicyImmutableError(RuntimeError):
    """Raised when code tries to change or delete a published version or an acceptance."""


class PolicyVersion(db.Model):
    """One published text of a policy: number, effective date, summary, Markdown and its hash."""

    __tablename__ = "policy_versions"
    __table_args__ = (
        UniqueConstraint("slug", "number", name="uq_policy_versions_slug_number"),
        CheckConstraint("number >= 1", name="number_positive"),
        Index("ix_policy_versions_slug_effective", "slug", "effective_date"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(SLUG_MAX))
    number: Mapped[int]
    effective_date: Mapped[date] = mapped_column(Date)
    summary: Mapped[str] = mapped_column(String(SUMMARY_MAX))
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64))
    requires_acceptance: Mapped[bool] = mapped_column(default=False)
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))

    def __repr__(self) -> str:
        return f"<PolicyVersion {self.slug} v{self.number}>"


class PolicyAcceptance(db.Model):
    """A client's acceptance of one version: who, which text (by hash), when and from where."""

    __tablename__ = "policy_acceptances"
    __table_args__ = (
        UniqueConstraint("user_id", "version_id", name="uq_policy_acceptances_user_version"),
        Index("ix_policy_acceptances_user_slug", "user_id", "slug"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("policy_versions.id", ondelete="RESTRICT"), index=True)
    slug: Mapped[str] = mapped_column(String(SLUG_MAX))
    number: Mapped[int]
    text_hash: Mapped[str] = mapped_column(String(64))
    accepted_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Where it was accepted from: sealed under the client's key (an IP address is a HIPAA
    # identifier), opened for the version's admin page (service.acceptances_for_version).
    ip_sealed: Mapped[bytes | None] = sealed_column(owner="user_id")

    def __repr__(self) -> str:  # ids only
        return f"<PolicyAcceptance {self.user_id} {self.slug} v{self.number}>"


_GUARDED = (PolicyVersion, PolicyAcceptance)


def _changed_columns(target) -> list[str]:
    state = inspect(target)
    return [attr.key for attr in state.attrs if attr.history.has_changes()]


@event.listens_for(PolicyVersion, "before_update")
@event.listens_for(PolicyAcceptance, "before_update")
def _refuse_update(mapper, connection, target) -> None:
    changed = _changed_columns(target)
    if changed:
        raise PolicyImmutableError(
            f"{mapper.class_.__name__} is immutable once written "
            f"(tried to change {', '.join(sorted(changed))}); publish a new version instead")


@event.listens_for(PolicyVersion, "before_delete")
@event.listens_for(PolicyAcceptance, "before_delete")
def _refuse_delete(mapper, connection, target) -> None:
    raise PolicyImmutableError(f"{mapper.class_.__name__} rows cannot be deleted")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(orm_execute_state) -> None:
    """Refuse `update()` / `delete()` of policy rows through a session (no mapper events fire)."""
    model = bulk_target(orm_execute_state, _GUARDED)
    if model is not None:
        raise PolicyImmutableError(
            f"{model.__name__} rows are immutable; bulk update and delete are refused")
