"""The estimates panel on the therapist dashboard: due, overdue, renewals, billing flags."""

from datetime import date, timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import aliased

from portal import practice
from portal.accounts.models import Role, User
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


def dashboard_panel(user: User) -> dict:
    """What the estimates panel on the therapist dashboard shows (ids, dates, names)."""
    if user is None or user.role not in (Role.THERAPIST, Role.ADMIN):
        return {"estimates_panel": None}
    today = practice.today()
    due = list(db.session.scalars(
        select(GoodFaithEstimate)
        .where(staff_scope(user), GoodFaithEstimate.status == Status.DRAFT,
               GoodFaithEstimate.due_date.is_not(None), GoodFaithEstimate.due_date <= today)
        .order_by(GoodFaithEstimate.due_date, GoodFaithEstimate.created_at)))
    renewals = list(db.session.scalars(_renewal_candidates(user, today)))
    flagged = list(db.session.scalars(
        select(GoodFaithEstimate)
        .where(staff_scope(user), GoodFaithEstimate.status != Status.DRAFT,
               GoodFaithEstimate.billing_level != "ok")
        .order_by(GoodFaithEstimate.updated_at.desc()).limit(20)))
    names = client_names(due + renewals + flagged)
    return {"estimates_panel": {
        "today": today,
        "due_today": [e for e in due if e.due_date == today],
        "overdue": [e for e in due if e.due_date < today],
        "renewals": renewals,
        "flagged": flagged,
        "names": names,
    }}
