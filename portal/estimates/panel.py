"""The estimates panel on the therapist dashboard: due, overdue, requests from the day they
arrive, corrections of issued estimates, renewals, billing flags."""

from datetime import date, timedelta

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import aliased

from portal import practice
from portal.accounts.models import Role, User
from portal.estimates.clients import without_therapist
from portal.estimates.models import GoodFaithEstimate, Status
from portal.estimates.staff_lists import client_names, staff_scope
from portal.extensions import db

RENEWAL_WINDOW_DAYS = 30
RENEWAL_GRACE_DAYS = 30  # an ended recurring estimate stays on the list this long


def _renewal_candidates(user: User, today: date):
    renewal = aliased(GoodFaithEstimate)
    return (
        select(GoodFaithEstimate)
        .where(staff_scope(user), GoodFaithEstimate.status == Status.ISSUED,
               GoodFaithEstimate.recurring.is_(True),
               GoodFaithEstimate.period_end <= today + timedelta(days=RENEWAL_WINDOW_DAYS),
               GoodFaithEstimate.period_end >= today - timedelta(days=RENEWAL_GRACE_DAYS),
               ~exists().where(renewal.renews_id == GoodFaithEstimate.id,
                               renewal.status != Status.DRAFT))
        .order_by(GoodFaithEstimate.period_end)
    )


def _drafts_scope(user: User):
    """The drafts this person looks after: staff_scope, and for a covering clinician the
    clients with no therapist too (their requests are routed there)."""
    if user.role == Role.THERAPIST and user.covering and user.active:
        return or_(staff_scope(user), without_therapist(GoodFaithEstimate.client_id))
    return staff_scope(user)


def dashboard_panel(user: User) -> dict:
    """What the estimates panel on the therapist dashboard shows (ids, dates, names).

    Requests (45 CFR 149.610(b)(1)(ii)) and corrections of issued estimates (45 CFR
    149.610(b)(1)(vii)) show from the day they start, not only once they are due.
    """
    if user is None or user.role not in (Role.THERAPIST, Role.ADMIN):
        return {"estimates_panel": None}
    today = practice.today()
    drafts = select(GoodFaithEstimate).where(_drafts_scope(user),
                                             GoodFaithEstimate.status == Status.DRAFT)
    due = list(db.session.scalars(
        drafts.where(GoodFaithEstimate.due_date.is_not(None), GoodFaithEstimate.due_date <= today)
        .order_by(GoodFaithEstimate.due_date, GoodFaithEstimate.created_at)))
    coming = list(db.session.scalars(
        drafts.where(or_(GoodFaithEstimate.requested_on.is_not(None),
                         GoodFaithEstimate.supersedes_id.is_not(None)),
                     or_(GoodFaithEstimate.due_date.is_(None),
                         GoodFaithEstimate.due_date > today))
        .order_by(GoodFaithEstimate.due_date.is_(None), GoodFaithEstimate.due_date,
                  GoodFaithEstimate.created_at)))
    corrections = [e for e in coming if e.supersedes_id is not None]
    requested = [e for e in coming if e.supersedes_id is None]
    originals = _numbers({e.supersedes_id for e in due + corrections if e.supersedes_id})
    renewals = list(db.session.scalars(_renewal_candidates(user, today)))
    flagged = list(db.session.scalars(
        select(GoodFaithEstimate)
        .where(staff_scope(user), GoodFaithEstimate.status != Status.DRAFT,
               GoodFaithEstimate.billing_level != "ok")
        .order_by(GoodFaithEstimate.updated_at.desc()).limit(20)))
    names = client_names(due + coming + renewals + flagged)
    return {"estimates_panel": {
        "today": today,
        "requested": requested,
        "corrections": corrections,
        "corrects": originals,
        "due_today": [e for e in due if e.due_date == today],
        "overdue": [e for e in due if e.due_date < today],
        "renewals": renewals,
        "flagged": flagged,
        "names": names,
    }}


def _numbers(ids: set) -> dict:
    """The numbers of the issued estimates that drafts correct, by id (one query)."""
    if not ids:
        return {}
    found = db.session.execute(select(GoodFaithEstimate.id, GoodFaithEstimate.number)
                               .where(GoodFaithEstimate.id.in_(ids)))
    return {estimate_id: number for estimate_id, number in found}
