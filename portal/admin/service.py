"""What the admin screens read: accounts by role, the therapists to choose from, the audit trail.

Names are sealed, so each read decrypts only the names its page shows.
"""

import uuid

from sqlalchemy import func, select

from portal.accounts.identity import names_of
from portal.accounts.models import Role, User
from portal.audit import AuditEvent, VerifyResult, verify
from portal.estimates.models import GoodFaithEstimate, Status
from portal.extensions import db

RECENT_EVENTS = 100


def account(user_id: uuid.UUID) -> User | None:
    return db.session.get(User, user_id)


def people(role: str | None = None) -> tuple[list[User], dict[uuid.UUID, str]]:
    """Every account, or those of one role, by role then name; with their names."""
    query = select(User)
    if role in set(Role):
        query = query.where(User.role == role)
    found = list(db.session.scalars(query.order_by(User.role, User.created_at)))
    names = names_of(found)
    found.sort(key=lambda p: (p.role, names[p.id].casefold()))
    return found, names


def therapist_choices() -> list[tuple[str, str]]:
    """The active therapists as (id, name) pairs, by name."""
    therapists = list(db.session.scalars(select(User).where(User.role == Role.THERAPIST,
                                                            User.active.is_(True))))
    names = names_of(therapists)
    return sorted(((str(t.id), names[t.id]) for t in therapists),
                  key=lambda pair: pair[1].casefold())


def recent_events(limit: int = RECENT_EVENTS) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())
                                   .limit(limit)))


def check_chain() -> VerifyResult:
    """Walk the whole audit chain (its cost grows with the trail: run on request only)."""
    return verify()


def estimates_in_progress(client_ids: list[uuid.UUID], therapist_id: uuid.UUID
                          ) -> dict[uuid.UUID, int]:
    """Draft Good Faith Estimates this therapist has for these clients, by client (what a
    handover shows at stake; messaging does not import estimates, so the admin counts)."""
    if not client_ids:
        return {}
    rows = db.session.execute(
        select(GoodFaithEstimate.client_id, func.count())
        .where(GoodFaithEstimate.client_id.in_(client_ids),
               GoodFaithEstimate.therapist_id == therapist_id,
               GoodFaithEstimate.status == Status.DRAFT)
        .group_by(GoodFaithEstimate.client_id))
    return {client_id: int(count) for client_id, count in rows}
