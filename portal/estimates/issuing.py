"""Issuing a draft: number it, freeze its document and PDF, supersede what it corrects.

Numbers are unique per year (GFE-2026-0001); two people issuing at once both succeed, the
loser of the race retrying with the next number.
"""

import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal import practice
from portal.accounts.models import User
from portal.audit import record
from portal.db import utcnow
from portal.errors import RuleError
from portal.estimates.compliance import Problem
from portal.estimates.content import pdf_digest, seal_json, seal_pdf
from portal.estimates.drafting import review
from portal.estimates.models import TABLE, GoodFaithEstimate, Status
from portal.estimates.notices import notify
from portal.estimates.pdf import render_pdf
from portal.extensions import db

CLIENT_PATH = "/estimates/"  # where the "your estimate is ready" mail links
ISSUE_ATTEMPTS = 5


class NotReady(RuleError):
    """The draft has problems; `problems` lists every one (the review page shows them)."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} things to fix before this estimate can be issued.")
        self.problems = problems


def number_for(year: int, sequence: int) -> str:
    """Format a GFE number, e.g. GFE-2026-0001."""
    return f"GFE-{year}-{sequence:04d}"


def _next_sequence(year: int) -> int:
    current = db.session.scalar(select(func.max(GoodFaithEstimate.sequence))
                                .where(GoodFaithEstimate.issue_year == year))
    return (current or 0) + 1


def issue(actor: User, estimate_id: uuid.UUID) -> GoodFaithEstimate:
    """Freeze a draft: number it, render and seal its PDF, store the hash, tell the client.

    Raises NotReady with every problem when the check fails, and EstimateUnavailable when
    the draft will not open (nothing is changed either way). A correction supersedes the
    estimate it replaces in the same transaction.
    """
    for attempt in range(ISSUE_ATTEMPTS):
        estimate = db.session.get(GoodFaithEstimate, estimate_id)
        if estimate is None or not estimate.is_draft:
            raise RuleError("Only a draft can be issued.")
        try:
            _issue_once(actor, estimate)
            db.session.commit()
            return estimate
        except IntegrityError:
            db.session.rollback()
            if attempt == ISSUE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _issue_once(actor: User, estimate: GoodFaithEstimate) -> None:
    today = practice.today()
    year = today.year
    sequence = _next_sequence(year)
    number = number_for(year, sequence)
    checked = review(estimate, number=number, issue_date=today)
    if not checked.ready:
        raise NotReady(checked.problems)
    document = checked.document
    assert document is not None
    previous = None
    if estimate.supersedes_id is not None:
        previous = db.session.get(GoodFaithEstimate, estimate.supersedes_id)
        if previous is None or previous.status != Status.ISSUED:
            raise RuleError("The estimate this corrects has already been replaced.")
    pdf = render_pdf(document)
    estimate.number = number
    estimate.issue_year, estimate.sequence = year, sequence
    estimate.issue_date = today
    estimate.issued_at = utcnow()
    estimate.issued_by_id = actor.id
    estimate.document_sealed = seal_json(estimate, document.to_dict())
    estimate.pdf_sealed = seal_pdf(estimate, pdf)
    estimate.pdf_digest = pdf_digest(estimate.id, pdf)
    estimate.period_start, estimate.period_end = document.period_start, document.period_end
    estimate.recurring = document.sessions_max > 1
    estimate.status = Status.ISSUED
    estimate.updated_at = utcnow()
    db.session.flush()  # the number's uniqueness is decided here
    record("estimate.issued", actor=actor, target=(TABLE, estimate.id),
           subject_id=estimate.client_id)
    if previous is not None:
        previous.status = Status.SUPERSEDED
        previous.superseded_by_id = estimate.id
        previous.updated_at = utcnow()
        record("estimate.superseded", actor=actor, target=(TABLE, previous.id),
               subject_id=previous.client_id)
    client = db.session.get(User, estimate.client_id)
    if client is not None and client.active:
        notify(client, "estimate_issued", CLIENT_PATH)
