"""Corrections and renewals: the drafts that follow an issued estimate, linked to it.

Both share one rule: at most one open draft of each kind per estimate, so a second click (or
a colleague) returns the draft already under way instead of starting a rival copy.
"""

from dataclasses import replace
from datetime import date, timedelta

from sqlalchemy import select

from portal import practice
from portal.accounts.models import User
from portal.errors import RuleError
from portal.estimates.content import open_document
from portal.estimates.corrections import set_next_service
from portal.estimates.document import GfeDocument
from portal.estimates.drafting import start_draft
from portal.estimates.drafts import Draft
from portal.estimates.models import GoodFaithEstimate, Status
from portal.extensions import db


def open_follow_up(estimate: GoodFaithEstimate, *, kind: str) -> GoodFaithEstimate | None:
    """Return the open draft correcting (kind="correction") or renewing this estimate."""
    column = (GoodFaithEstimate.supersedes_id if kind == "correction"
              else GoodFaithEstimate.renews_id)
    return db.session.scalar(select(GoodFaithEstimate).where(
        column == estimate.id, GoodFaithEstimate.status == Status.DRAFT))


def may_correct(estimate: GoodFaithEstimate) -> bool:
    """Only the current estimate is corrected: a superseded one already has its replacement."""
    return estimate.status == Status.ISSUED


def may_renew(estimate: GoodFaithEstimate) -> bool:
    """Only the current estimate of a recurring service is renewed (as the staff page offers):
    a superseded one would copy outdated content, and a one-off has no next period."""
    return estimate.status == Status.ISSUED and estimate.recurring


def start_correction(actor: User, estimate: GoodFaithEstimate, *,
                     next_service: date | None = None) -> GoodFaithEstimate:
    """Start the draft that will replace an issued estimate (or return the one under way).

    A correction is due no later than one business day before the next scheduled service
    (45 CFR 149.610(b)(1)(vii)): `next_service` when given, else the issued estimate's service
    date when it is still ahead; with neither, it has no date yet and is due before the next
    session is booked (the builder says so and asks for the date).
    """
    if not may_correct(estimate):
        raise RuleError("Only the current estimate can be corrected.")
    if next_service is None and estimate.service_date is not None \
            and estimate.service_date >= practice.today():
        next_service = estimate.service_date
    return _start_follow_up(actor, estimate, "correction", Draft.from_document,
                            next_service=next_service)


def start_renewal(actor: User, estimate: GoodFaithEstimate) -> GoodFaithEstimate:
    """Start next period's estimate from an issued one: same care, dates moved on."""
    if not may_renew(estimate):
        raise RuleError("Only the current estimate of a recurring service can be renewed.")
    return _start_follow_up(actor, estimate, "renewal", _next_period)


def _next_period(document: GfeDocument) -> Draft:
    """A renewal's content: the same care over a period as long, starting the day after."""
    start = document.period_end + timedelta(days=1)
    length = document.period_end - document.period_start
    return replace(Draft.from_document(document), period_start=start,
                   period_end=start + length)


def _start_follow_up(actor: User, estimate: GoodFaithEstimate, kind: str,
                     draft_from, next_service: date | None = None) -> GoodFaithEstimate:
    """Start a correction or renewal draft, linked to `estimate`, from its frozen document."""
    existing = open_follow_up(estimate, kind=kind)
    if existing is not None:
        return existing
    client = db.session.get(User, estimate.client_id)
    draft = draft_from(open_document(estimate))
    link = {"supersedes": estimate} if kind == "correction" else {"renews": estimate}
    follow = start_draft(actor, client, draft=draft, **link)
    if next_service is not None:
        try:
            set_next_service(follow, next_service)
        except RuleError:
            db.session.rollback()  # the draft just flushed goes too
            raise
    db.session.commit()
    return follow


def linked(estimate: GoodFaithEstimate) -> dict[str, GoodFaithEstimate | None]:
    """The estimates linked to this one: what it replaced, what replaced it, renewals."""
    get = db.session.get
    return {
        "supersedes": get(GoodFaithEstimate, estimate.supersedes_id)
        if estimate.supersedes_id else None,
        "superseded_by": get(GoodFaithEstimate, estimate.superseded_by_id)
        if estimate.superseded_by_id else None,
        "renews": get(GoodFaithEstimate, estimate.renews_id) if estimate.renews_id else None,
        "correction_draft": open_follow_up(estimate, kind="correction")
        if may_correct(estimate) else None,
        "renewal_draft": open_follow_up(estimate, kind="renewal")
        if may_renew(estimate) else None,
    }
