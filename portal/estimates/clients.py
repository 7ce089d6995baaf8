"""What a client sees and asks for: their issued estimates, and asking for a new one."""

import uuid

from sqlalchemy import select

from portal import practice
from portal.accounts.models import Assignment, Role, User
from portal.audit import record
from portal.db import utcnow
from portal.errors import RuleError
from portal.estimates.drafting import due_for, start_draft
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
        draft.due_date = due_for(scheduled_on=draft.scheduled_on, service_date=draft.service_date,
                                 requested_on=today)
        draft.updated_at = utcnow()
    record("estimate.requested", actor=client, target=(TABLE, draft.id), subject_id=client.id)
    for therapist in told_of_requests(client):
        notify(therapist, "estimate_requested", f"/estimates/{draft.id}/edit")
    db.session.commit()
    return draft, True


def told_of_requests(client: User) -> list[User]:
    """Who is told when this client asks for an estimate: their active therapists (none
    when no therapist is assigned, and the page must then say so)."""
    return [t for t in _therapists_of(client.id) if t.active]


def _therapists_of(client_id: uuid.UUID) -> list[User]:
    return list(db.session.scalars(
        select(User).join(Assignment, Assignment.therapist_id == User.id)
        .where(Assignment.client_id == client_id).order_by(User.created_at)))
