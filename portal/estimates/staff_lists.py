"""What staff see listed: the estimates they look after and the clients they write for."""

import uuid

from sqlalchemy import func, select, true

from portal.accounts.display import person_label
from portal.accounts.identity import name_of, names_of, pronouns_by_id, pronouns_of
from portal.accounts.models import Assignment, Role, User
from portal.estimates.models import GoodFaithEstimate, Status
from portal.extensions import db


def staff_scope(user: User):
    """SQL condition for the estimates this member of staff may see (admins: all)."""
    if user.role == Role.ADMIN:
        return true()
    if user.role == Role.THERAPIST:
        return GoodFaithEstimate.client_id.in_(
            select(Assignment.client_id).where(Assignment.therapist_id == user.id))
    return GoodFaithEstimate.id.is_(None)  # nothing


def clients_for(user: User) -> list[User]:
    """The clients a member of staff may write estimates for."""
    if user.role == Role.ADMIN:
        query = select(User).where(User.role == Role.CLIENT)
    elif user.role == Role.THERAPIST:
        query = (select(User).join(Assignment, Assignment.client_id == User.id)
                 .where(Assignment.therapist_id == user.id))
    else:
        return []
    return list(db.session.scalars(query.where(User.active.is_(True))
                                   .order_by(User.created_at)))


def staff_estimates(user: User, *, client_id: uuid.UUID | None = None, limit: int = 50,
                    offset: int = 0) -> tuple[list[GoodFaithEstimate], bool]:
    """Return one page of estimates (drafts first, then newest) and whether more follow."""
    query = select(GoodFaithEstimate).where(staff_scope(user))
    if client_id is not None:
        query = query.where(GoodFaithEstimate.client_id == client_id)
    query = query.order_by(
        (GoodFaithEstimate.status == Status.DRAFT).desc(),
        GoodFaithEstimate.due_date.is_(None), GoodFaithEstimate.due_date,
        func.coalesce(GoodFaithEstimate.issued_at, GoodFaithEstimate.created_at).desc(),
        GoodFaithEstimate.id,
    ).offset(offset).limit(limit + 1)
    rows = list(db.session.scalars(query))
    return rows[:limit], len(rows) > limit


def client_names(estimates: list[GoodFaithEstimate]) -> dict[uuid.UUID, str]:
    """The clients of a list of estimates as staff see them named, with their pronouns (one
    key query; one statement for the pronouns)."""
    ids = {e.client_id for e in estimates}
    if not ids:
        return {}
    users = list(db.session.scalars(select(User).where(User.id.in_(ids))))
    names = names_of(users)
    pronouns = pronouns_by_id(ids)
    return {i: person_label(name, pronouns.get(i, "")) for i, name in names.items()}


def client_name(estimate: GoodFaithEstimate) -> str:
    """The client's name, with their pronouns, for a staff page about one estimate."""
    client = db.session.get(User, estimate.client_id)
    return person_label(name_of(client), pronouns_of(client))
