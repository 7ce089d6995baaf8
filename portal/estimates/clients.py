"""What a client sees and asks for: their issued estimates, and asking for a new one."""

import uuid
from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import aliased

from portal import practice
from portal.accounts.identity import names_of
from portal.accounts.models import Assignment, Role, User
from portal.accounts.service import covering_clinicians
from portal.audit import record
from portal.db import utcnow
from portal.errors import RuleError
from portal.estimates.drafting import deadline_of, start_draft
from portal.estimates.models import TABLE, GoodFaithEstimate, Status
from portal.estimates.notices import notify
from portal.extensions import db


def client_estimates(client: User) -> list[GoodFaithEstimate]:
    """Every estimate issued to a client, newest first (drafts never)."""
    return list(db.session.scalars(
        select(GoodFaithEstimate)
        .where(GoodFaithEstimate.client_id == client.id,
               GoodFaithEstimate.status != Status.DRAFT)
        .order_by(GoodFaithEstimate.issued_at.desc(), GoodFaithEstimate.sequence.desc())))


def open_requests(client: User) -> list[GoodFaithEstimate]:
    """Drafts started by a request and not yet issued (the client sees only the dates)."""
    return list(db.session.scalars(
        select(GoodFaithEstimate)
        .where(GoodFaithEstimate.client_id == client.id,
               GoodFaithEstimate.status == Status.DRAFT,
               GoodFaithEstimate.requested_on.is_not(None))
        .order_by(GoodFaithEstimate.requested_on)))


def request_estimate(client: User) -> tuple[GoodFaithEstimate, bool]:
    """Ask for an estimate: starts the 3-business-day clock and tells the therapists.

    Returns (the draft, whether this was a new request). A second request while one is open
    changes nothing and sends nothing.
    """
    if client.role != Role.CLIENT:
        raise RuleError("Only clients request estimates.")
    pending = open_requests(client)
    if pending:
        return pending[0], False
    today = practice.today()
    draft = db.session.scalar(
        select(GoodFaithEstimate)
        .where(GoodFaithEstimate.client_id == client.id, GoodFaithEstimate.status == Status.DRAFT)
        .order_by(GoodFaithEstimate.created_at.desc()).limit(1))
    if draft is None:
        draft = start_draft(None, client, requested_on=today)
    else:
        draft.requested_on = today
        draft.due_date = deadline_of(draft, scheduled_on=draft.scheduled_on,
                                     service_date=draft.service_date, requested_on=today)
        draft.updated_at = utcnow()
    record("estimate.requested", actor=client, target=(TABLE, draft.id), subject_id=client.id)
    for therapist in told_of_requests(client):
        notify(therapist, "estimate_requested", f"/estimates/{draft.id}/edit")
    db.session.commit()
    return draft, True


@dataclass(frozen=True)
class Routing:
    """Who prepares this client's requested estimate (45 CFR 149.610(b)(1)(ii)): `kind` is
    "therapist", "covering" (no therapist: the practice's covering clinicians), "admin" (no
    covering clinician either: the administrators) or "nobody" (no active staff at all)."""

    kind: str
    people: list[User]

    def names(self) -> list[str]:
        names = names_of(self.people)
        return [names[person.id] for person in self.people]

    def names_text(self) -> str:
        """The names as a sentence says them: "A", "A and B", "A, B and C"."""
        names = self.names()
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def request_routing(client: User) -> Routing:
    """Who is told of this client's requests and prepares them: their active therapists; with
    none, the covering clinicians; with none of those, the active administrators."""
    therapists = [t for t in _therapists_of(client.id) if t.active]
    if therapists:
        return Routing("therapist", therapists)
    covering = covering_clinicians()
    if covering:
        return Routing("covering", covering)
    admins = list(db.session.scalars(
        select(User).where(User.role == Role.ADMIN, User.active).order_by(User.created_at)))
    return Routing("admin", admins) if admins else Routing("nobody", [])


def without_therapist(client_id_column):
    """SQL condition: the client has no active therapist assigned (so a request of theirs goes
    to the covering clinicians, who then look after it)."""
    therapist = aliased(User)
    return ~exists().where(Assignment.client_id == client_id_column,
                           Assignment.therapist_id == therapist.id, therapist.active.is_(True))


def covers_for(user: User, client_id: uuid.UUID) -> bool:
    """Whether this therapist, a covering clinician, looks after this client's estimates
    because the client has no active therapist."""
    if user.role != Role.THERAPIST or not user.covering or not user.active:
        return False
    return bool(db.session.scalar(select(without_therapist(client_id))))


def told_of_requests(client: User) -> list[User]:
    """Who is told when this client asks for an estimate (request_routing); empty only when
    the practice has no active staff at all, and the page must then say so."""
    return request_routing(client).people


def _therapists_of(client_id: uuid.UUID) -> list[User]:
    return list(db.session.scalars(
        select(User).join(Assignment, Assignment.therapist_id == User.id)
        .where(Assignment.client_id == client_id).order_by(User.created_at)))
