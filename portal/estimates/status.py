"""What an estimate's status reads as to people: draft, current, superseded or expired."""

from datetime import date

from portal import practice
from portal.estimates.models import GoodFaithEstimate, Status


def display_status(estimate: GoodFaithEstimate, today: date | None = None) -> str:
    """Return draft, current, superseded or expired (an issued estimate whose period ended)."""
    if estimate.status == Status.DRAFT:
        return "draft"
    if estimate.status == Status.SUPERSEDED:
        return "superseded"
    today = today or practice.today()
    if estimate.period_end is not None and estimate.period_end < today:
        return "expired"
    return "current"
