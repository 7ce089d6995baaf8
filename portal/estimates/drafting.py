"""Writing a draft: starting one, saving it as it is, checking it, discarding it.

Every function takes plain values and the acting user, owns its transaction (commits or
raises), and writes its audit events with ids only.
"""

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from portal import practice
from portal.accounts.identity import legal_name_of
from portal.accounts.models import Role, User
from portal.audit import record
from portal.db import new_id, utcnow
from portal.errors import RuleError
from portal.estimates import deadlines
from portal.estimates.compliance import Problem
from portal.estimates.content import open_draft, seal_json
from portal.estimates.document import NONE_ANTICIPATED, GfeDocument
from portal.estimates.drafts import Draft, assemble, without_blank_rows
from portal.estimates.models import TABLE, DeadlineCorrection, GoodFaithEstimate, Status
from portal.extensions import db

NUMBER_PREVIEW = "(given when issued)"
SCHEDULING = ("scheduled_on", "service_date")
DEADLINE_DATES = ("requested_on", *SCHEDULING)


def due_for(*, scheduled_on: date | None, service_date: date | None,
            requested_on: date | None) -> date | None:
    """Return when the estimate is due, or None when nothing starts the clock."""
    if scheduled_on is None or service_date is None:
        scheduled_on = service_date = None
    if scheduled_on is None and requested_on is None:
        return None
    return deadlines.due_date(scheduled_on=scheduled_on, service_date=service_date,
                              requested_on=requested_on)


def deadline_of(estimate: GoodFaithEstimate, *, scheduled_on: date | None,
                service_date: date | None, requested_on: date | None) -> date | None:
    """Return when this draft is due with these dates, by the rule that applies to it.

    A new estimate: 45 CFR 149.610(b)(1)(ii) (due_for). A correction of an issued estimate
    (45 CFR 149.610(b)(1)(vii)): one business day before the next scheduled service, which
    its service_date holds; a client's request on it still counts 3 business days.
    """
    if estimate.supersedes_id is None:
        return due_for(scheduled_on=scheduled_on, service_date=service_date,
                       requested_on=requested_on)
    candidates = []
    if service_date is not None:
        candidates.append(deadlines.correction_due(service_date))
    if requested_on is not None:
        candidates.append(deadlines.due_date(requested_on=requested_on))
    return min(candidates, default=None)


def locked_dates(estimate: GoodFaithEstimate) -> frozenset[str]:
    """The recorded dates that started a deadline: read-only in the builder, changed only by a
    correction (portal.estimates.corrections), so a deadline cannot be erased by saving.

    A request always starts one; a scheduling only when it made an estimate due (the service
    3 or more business days away); a correction's next service always does.
    """
    locked = set()
    if estimate.requested_on is not None:
        locked.add("requested_on")
    if estimate.scheduled_on is not None and estimate.service_date is not None and (
            estimate.supersedes_id is not None
            or due_for(scheduled_on=estimate.scheduled_on, service_date=estimate.service_date,
                       requested_on=None) is not None):
        locked.update(SCHEDULING)
    return frozenset(locked)


def has_deadline_history(estimate: GoodFaithEstimate) -> bool:
    """Whether a date of this estimate was ever corrected (that history is never deleted)."""
    return db.session.scalar(select(DeadlineCorrection.id).where(
        DeadlineCorrection.estimate_id == estimate.id).limit(1)) is not None


def start_draft(actor: User | None, client: User, *, draft: Draft | None = None,
                supersedes: GoodFaithEstimate | None = None,
                renews: GoodFaithEstimate | None = None,
                requested_on: date | None = None) -> GoodFaithEstimate:
    """Create a draft for a client (blank but for the name, or copied from an issued one).

    Flushes but does not commit: the caller's transaction decides.
    """
    if client.role != Role.CLIENT:
        raise RuleError("Estimates are for clients.")
    estimate = GoodFaithEstimate(
        id=new_id(), client_id=client.id, status=Status.DRAFT,
        therapist_id=actor.id if actor is not None and actor.role == Role.THERAPIST else None,
        created_by_id=actor.id if actor is not None else None,
        supersedes_id=supersedes.id if supersedes else None,
        renews_id=renews.id if renews else None,
        requested_on=requested_on,
        due_date=due_for(scheduled_on=None, service_date=None, requested_on=requested_on),
    )
    if draft is None:
        draft = Draft(client_legal_name=legal_name_of(client),
                      separately_scheduled=NONE_ANTICIPATED)
    _store_draft(estimate, draft)
    db.session.add(estimate)
    db.session.flush()
    record("estimate.draft.created", actor=actor, target=(TABLE, estimate.id),
           subject_id=client.id)
    return estimate


def _store_draft(estimate: GoodFaithEstimate, draft: Draft) -> None:
    estimate.document_sealed = seal_json(estimate, draft.to_dict())
    estimate.period_start = draft.period_start
    estimate.period_end = draft.period_end
    estimate.recurring = (draft.sessions_max or draft.sessions_min or 0) > 1
    estimate.updated_at = utcnow()


def create_draft(actor: User, client: User) -> GoodFaithEstimate:
    """Start a new, blank estimate for a client."""
    estimate = start_draft(actor, client)
    db.session.commit()
    return estimate


def save_draft(actor: User, estimate: GoodFaithEstimate, draft: Draft, *,
               scheduled_on: date | None = None, service_date: date | None = None,
               requested_on: date | None = None) -> GoodFaithEstimate:
    """Save a draft as it is (incomplete is fine); blank rows are dropped.

    A date that started a deadline keeps its recorded value whatever is passed (a correction
    changes it, with a reason and history), and a correction's next service date is recorded
    by corrections.record_next_service, never typed here.
    """
    if not estimate.is_draft:
        raise RuleError("An issued estimate cannot be changed.")
    locked = locked_dates(estimate)
    if estimate.supersedes_id is not None or "scheduled_on" in locked:
        scheduled_on, service_date = estimate.scheduled_on, estimate.service_date
    if "requested_on" in locked:
        requested_on = estimate.requested_on
    draft = without_blank_rows(draft)
    _store_draft(estimate, draft)
    estimate.scheduled_on = scheduled_on if service_date else None
    estimate.service_date = service_date if scheduled_on else None
    estimate.requested_on = requested_on
    estimate.due_date = deadline_of(estimate, scheduled_on=estimate.scheduled_on,
                                    service_date=estimate.service_date,
                                    requested_on=requested_on)
    record("estimate.draft.saved", actor=actor, target=(TABLE, estimate.id),
           subject_id=estimate.client_id)
    db.session.commit()
    return estimate


@dataclass(frozen=True)
class Review:
    """A draft checked for issuing: the document it would become and every problem."""

    draft: Draft
    document: GfeDocument | None
    problems: list[Problem]

    @property
    def ready(self) -> bool:
        return not self.problems and self.document is not None


def review(estimate: GoodFaithEstimate, *, number: str = NUMBER_PREVIEW,
           issue_date: date | None = None) -> Review:
    """Run the whole check on a draft without changing anything.

    EstimateUnavailable (already audited) if the draft will not open.
    """
    draft = open_draft(estimate)
    document, problems = assemble(draft, gfe_number=number,
                                  issue_date=issue_date or practice.today(),
                                  service_date=estimate.service_date)
    return Review(draft, document, problems)


def discard_draft(actor: User, estimate: GoodFaithEstimate) -> None:
    """Delete a draft that will not be issued (issued estimates are never deleted)."""
    if not estimate.is_draft:
        raise RuleError("An issued estimate is never deleted.")
    if locked_dates(estimate) or has_deadline_history(estimate):
        raise RuleError("This draft records a deadline, so it is kept with its history. If the "
                        "estimate is no longer needed, correct the date with the reason "
                        "“withdrawn”: the draft then stays, with no deadline.")
    client_id, estimate_id = estimate.client_id, estimate.id
    db.session.delete(estimate)
    record("estimate.draft.discarded", actor=actor, target=(TABLE, estimate_id),
           subject_id=client_id)
    db.session.commit()
