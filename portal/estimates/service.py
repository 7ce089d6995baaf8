"""Good Faith Estimate rules: drafts, issuing, corrections, deadlines, delivery, billing.

Every function takes plain values and the acting user, owns its transaction (commits or raises),
and writes its audit events with ids only, so views, the CLI and tests call the same code.
Content is sealed under the client's data key; only what lists and reminders need is plain.
"""

import hashlib
import json
import uuid
from dataclasses import dataclass, replace
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import exists, func, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from portal.accounts.identity import email_of, name_of, names_of
from portal.accounts.models import Assignment, Role, User
from portal.audit import record
from portal.crypto import Context, DecryptionError, open_bytes, open_text, seal
from portal.crypto.hooks import report_decrypt_failure
from portal.db import new_id, utcnow
from portal.estimates import billing, deadlines
from portal.estimates.compliance import Problem
from portal.estimates.document import NONE_ANTICIPATED, GfeDocument, Provider
from portal.estimates.drafts import Draft, assemble, without_blank_rows
from portal.estimates.models import (
    DOCUMENT_COLUMN,
    PDF_COLUMN,
    TABLE,
    BilledAmount,
    DeliveryEvent,
    GoodFaithEstimate,
    Status,
)
from portal.estimates.pdf import render_pdf
from portal.extensions import db
from portal.mail import enqueue

# Paths the mails link to (a mail is built without a request, so no url_for).
CLIENT_PATH = "/estimates/"
STAFF_PATH = "/estimates/practice"
RENEWAL_WINDOW_DAYS = 30
RENEWAL_GRACE_DAYS = 30  # an ended recurring estimate stays on the list this long
NUMBER_PREVIEW = "(given when issued)"
ISSUE_ATTEMPTS = 5


class EstimateError(Exception):
    """A rule refused the change; the message is for the person who asked.

    `field` names the form field the refusal is about, when there is one.
    """

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotReady(EstimateError):
    """The draft has problems; `problems` lists every one."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} things to fix before this estimate can be issued.")
        self.problems = problems


class EstimateUnavailable(EstimateError):
    """The sealed content would not open or no longer matches its stored hash."""


# ------------------------------------------------------------------------------- helpers


def practice_today() -> date:
    """Return today's date in the practice's time zone."""
    zone = ZoneInfo(current_app.config["PRACTICE_TIMEZONE"])
    return utcnow().astimezone(zone).date()


def number_for(year: int, sequence: int) -> str:
    """Format a GFE number, e.g. GFE-2026-0001."""
    return f"GFE-{year}-{sequence:04d}"


def pdf_filename(estimate: GoodFaithEstimate) -> str:
    """A neutral download name: no client name, nothing clinical."""
    return f"good-faith-estimate-{estimate.number}.pdf"


def _base_url() -> str:
    return current_app.config["PORTAL_BASE_URL"].rstrip("/")


def _context(estimate_id: uuid.UUID, column: str) -> Context:
    return Context(TABLE, column, estimate_id)


def _seal_json(estimate: GoodFaithEstimate, data: dict) -> bytes:
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return seal(estimate.client_id, _context(estimate.id, DOCUMENT_COLUMN), text)


def _open_json(estimate: GoodFaithEstimate) -> dict:
    if estimate.document_sealed is None:
        return {}
    return json.loads(open_text(estimate.client_id, _context(estimate.id, DOCUMENT_COLUMN),
                                estimate.document_sealed))


def _thresholds() -> dict[str, int]:
    cfg = current_app.config
    return {"warning_cents": int(cfg.get("GFE_WARNING_THRESHOLD_CENTS", billing.WARNING_CENTS)),
            "dispute_cents": int(cfg.get("GFE_DISPUTE_THRESHOLD_CENTS", billing.DISPUTE_CENTS))}


def _mail(user: User, template: str, **context) -> None:
    address = email_of(user)
    if address:
        enqueue(user, template, to_address=address, **context)


# ------------------------------------------------------------------------- reading content


def open_draft(estimate: GoodFaithEstimate) -> Draft:
    """Open a draft's sealed content; EstimateUnavailable if it will not open.

    This is the one place a draft is opened, so a failure is audited here, once.
    """
    return _open_as(estimate, "draft", lambda data: Draft.from_dict(data) if data else Draft())


def open_document(estimate: GoodFaithEstimate) -> GfeDocument:
    """Open an issued estimate's frozen document; EstimateUnavailable if it will not open."""
    if not estimate.is_issued:
        raise EstimateError("This estimate has not been issued.")
    return _open_as(estimate, "estimate", GfeDocument.from_dict)


def _open_as(estimate: GoodFaithEstimate, what: str, parse):
    """Open the sealed JSON and parse it; a failure to decrypt is audited, and either failure
    becomes EstimateUnavailable ("This {what} could not be opened.")."""
    try:
        return parse(_open_json(estimate))
    except DecryptionError as error:
        report_decrypt_failure(estimate.client_id, _context(estimate.id, DOCUMENT_COLUMN),
                               error.reason)
        raise EstimateUnavailable(f"This {what} could not be opened.") from None
    except (ValueError, KeyError, TypeError):
        raise EstimateUnavailable(f"This {what} could not be opened.") from None


def open_pdf(estimate: GoodFaithEstimate) -> bytes:
    """Open the frozen PDF and check it against the stored SHA-256."""
    if not estimate.is_issued or estimate.pdf_sealed is None:
        raise EstimateError("This estimate has not been issued.")
    try:
        pdf = open_bytes(estimate.client_id, _context(estimate.id, PDF_COLUMN),
                         estimate.pdf_sealed)
    except DecryptionError as error:
        report_decrypt_failure(estimate.client_id, _context(estimate.id, PDF_COLUMN),
                               error.reason)
        raise EstimateUnavailable("This estimate could not be opened.") from None
    if hashlib.sha256(pdf).hexdigest() != estimate.pdf_sha256:
        raise EstimateUnavailable("This estimate's PDF does not match its record.")
    return pdf


def display_status(estimate: GoodFaithEstimate, today: date | None = None) -> str:
    """Return draft, current, superseded or expired (an issued estimate whose period ended)."""
    if estimate.status == Status.DRAFT:
        return "draft"
    if estimate.status == Status.SUPERSEDED:
        return "superseded"
    today = today or practice_today()
    if estimate.period_end is not None and estimate.period_end < today:
        return "expired"
    return "current"


# ---------------------------------------------------------------------------------- drafts


def due_for(*, scheduled_on: date | None, service_date: date | None,
            requested_on: date | None) -> date | None:
    """Return when the estimate is due, or None when nothing starts the clock."""
    if scheduled_on is None or service_date is None:
        scheduled_on = service_date = None
    if scheduled_on is None and requested_on is None:
        return None
    return deadlines.due_date(scheduled_on=scheduled_on, service_date=service_date,
                              requested_on=requested_on)


def start_draft(actor: User, client: User, *, draft: Draft | None = None,
                supersedes: GoodFaithEstimate | None = None,
                renews: GoodFaithEstimate | None = None,
                requested_on: date | None = None) -> GoodFaithEstimate:
    """Create a draft for a client (blank but for the name, or copied from an issued one)."""
    if client.role != Role.CLIENT:
        raise EstimateError("Estimates are for clients.")
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
        draft = Draft(client_legal_name=name_of(client), separately_scheduled=NONE_ANTICIPATED)
    _store_draft(estimate, draft)
    db.session.add(estimate)
    db.session.flush()
    record("estimate.draft.created", actor=actor, target=(TABLE, estimate.id),
           subject_id=client.id)
    return estimate


def _store_draft(estimate: GoodFaithEstimate, draft: Draft) -> None:
    estimate.document_sealed = _seal_json(estimate, draft.to_dict())
    estimate.period_start = draft.period_start
    estimate.period_end = draft.period_end
    estimate.total_cents = draft.total_cents
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
    """Save a draft as it is (incomplete is fine); blank rows are dropped."""
    if not estimate.is_draft:
        raise EstimateError("An issued estimate cannot be changed.")
    draft = without_blank_rows(draft)
    _store_draft(estimate, draft)
    estimate.scheduled_on = scheduled_on if service_date else None
    estimate.service_date = service_date if scheduled_on else None
    estimate.requested_on = requested_on
    estimate.due_date = due_for(scheduled_on=estimate.scheduled_on,
                                service_date=estimate.service_date, requested_on=requested_on)
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
                                  issue_date=issue_date or practice_today())
    return Review(draft, document, problems)


def _next_sequence(year: int) -> int:
    current = db.session.scalar(select(func.max(GoodFaithEstimate.sequence))
                                .where(GoodFaithEstimate.issue_year == year))
    return (current or 0) + 1


def issue(actor: User, estimate_id: uuid.UUID) -> GoodFaithEstimate:
    """Freeze a draft: number it, render and seal its PDF, store the hash, tell the client.

    Raises NotReady with every problem when the check fails, and EstimateUnavailable when
    the draft will not open (nothing is changed either way). A correction supersedes the
    estimate it replaces in the same transaction. Numbers are unique per year; two people
    issuing at once both succeed (the loser of the race retries with the next number).
    """
    for attempt in range(ISSUE_ATTEMPTS):
        estimate = db.session.get(GoodFaithEstimate, estimate_id)
        if estimate is None or not estimate.is_draft:
            raise EstimateError("Only a draft can be issued.")
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
    today = practice_today()
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
            raise EstimateError("The estimate this corrects has already been replaced.")
    pdf = render_pdf(document)
    estimate.number = number
    estimate.issue_year, estimate.sequence = year, sequence
    estimate.issue_date = today
    estimate.issued_at = utcnow()
    estimate.issued_by_id = actor.id
    estimate.document_sealed = _seal_json(estimate, document.to_dict())
    estimate.pdf_sealed = seal(estimate.client_id, _context(estimate.id, PDF_COLUMN), pdf)
    estimate.pdf_sha256 = hashlib.sha256(pdf).hexdigest()
    estimate.period_start, estimate.period_end = document.period_start, document.period_end
    estimate.total_cents = document.total_cents
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
        _mail(client, "estimate_issued", link=f"{_base_url()}{CLIENT_PATH}")


def discard_draft(actor: User, estimate: GoodFaithEstimate) -> None:
    """Delete a draft that will not be issued (issued estimates are never deleted)."""
    if not estimate.is_draft:
        raise EstimateError("An issued estimate is never deleted.")
    client_id, estimate_id = estimate.client_id, estimate.id
    db.session.delete(estimate)
    record("estimate.draft.discarded", actor=actor, target=(TABLE, estimate_id),
           subject_id=client_id)
    db.session.commit()


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


def start_correction(actor: User, estimate: GoodFaithEstimate) -> GoodFaithEstimate:
    """Start the draft that will replace an issued estimate (or return the one under way)."""
    if not may_correct(estimate):
        raise EstimateError("Only the current estimate can be corrected.")
    return _start_follow_up(actor, estimate, "correction", Draft.from_document)


def start_renewal(actor: User, estimate: GoodFaithEstimate) -> GoodFaithEstimate:
    """Start next period's estimate from an issued one: same care, dates moved on."""
    if not may_renew(estimate):
        raise EstimateError("Only the current estimate of a recurring service can be "
                            "renewed.")
    return _start_follow_up(actor, estimate, "renewal", _next_period)


def _next_period(document: GfeDocument) -> Draft:
    """A renewal's content: the same care over a period as long, starting the day after."""
    start = document.period_end + timedelta(days=1)
    length = document.period_end - document.period_start
    return replace(Draft.from_document(document), period_start=start,
                   period_end=start + length)


def _start_follow_up(actor: User, estimate: GoodFaithEstimate, kind: str,
                     draft_from) -> GoodFaithEstimate:
    """Start a correction or renewal draft, linked to `estimate`, from its frozen document.

    Corrections and renewals share one rule: at most one open draft of each kind per
    estimate, so a second click (or a colleague) returns the draft already under way instead
    of starting a rival copy.
    """
    existing = open_follow_up(estimate, kind=kind)
    if existing is not None:
        return existing
    client = db.session.get(User, estimate.client_id)
    draft = draft_from(open_document(estimate))
    link = {"supersedes": estimate} if kind == "correction" else {"renews": estimate}
    follow = start_draft(actor, client, draft=draft, **link)
    db.session.commit()
    return follow


# ---------------------------------------------------------------------------------- clients


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
        raise EstimateError("Only clients request estimates.")
    pending = open_requests(client)
    if pending:
        return pending[0], False
    today = practice_today()
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
    link = f"{_base_url()}/estimates/{draft.id}/edit"
    for therapist in _therapists_of(client.id):
        if therapist.active:
            _mail(therapist, "estimate_requested", link=link)
    db.session.commit()
    return draft, True


def _therapists_of(client_id: uuid.UUID) -> list[User]:
    return list(db.session.scalars(
        select(User).join(Assignment, Assignment.therapist_id == User.id)
        .where(Assignment.client_id == client_id).order_by(User.created_at)))


def record_view(user: User, estimate: GoodFaithEstimate) -> bool:
    """Record the client's first look at an issued estimate (once); True the first time."""
    if user.id != estimate.client_id or not estimate.is_issued:
        return False
    return _mark_once(user, estimate, "first_viewed_at", kind="viewed", action="estimate.viewed")


def record_download(user: User, estimate: GoodFaithEstimate) -> None:
    """Record a PDF download: the client's count as delivery evidence; everyone's audited."""
    now = utcnow()
    if user.id == estimate.client_id:
        db.session.execute(
            update(GoodFaithEstimate).where(GoodFaithEstimate.id == estimate.id)
            .values(download_count=GoodFaithEstimate.download_count + 1,
                    last_downloaded_at=now),
            execution_options={"synchronize_session": False})
        db.session.add(DeliveryEvent(estimate_id=estimate.id, user_id=user.id,
                                     kind="downloaded", at=now))
    record("estimate.downloaded", actor=user, target=(TABLE, estimate.id),
           subject_id=estimate.client_id)
    db.session.commit()


def acknowledge(user: User, estimate: GoodFaithEstimate) -> bool:
    """The client confirms they received the estimate (optional; once, timestamped)."""
    if user.id != estimate.client_id or not estimate.is_issued:
        raise EstimateError("Only the client can acknowledge their estimate.")
    return _mark_once(user, estimate, "acknowledged_at", kind="acknowledged",
                      action="estimate.acknowledged")


def _mark_once(user: User, estimate: GoodFaithEstimate, column: str, *, kind: str,
               action: str) -> bool:
    """Stamp a once-only delivery column and log it; False if it was already stamped.

    Delivery evidence must say when something first happened, so the stamp is set by one
    conditional UPDATE (only while the column is empty): a double click or two open tabs
    cannot both win, and only the winner adds the delivery event and the audit record, with
    the same timestamp as the column.

    The UPDATE runs in a SAVEPOINT, so losing (or an error) undoes only that statement: the
    caller's own pending work stays in its transaction (uncommitted, for the caller to commit
    or discard). SQLite honours the SAVEPOINT because `portal.db.transactions` has SQLAlchemy,
    not the driver, begin each transaction.
    """
    now = utcnow()
    with db.session.begin_nested() as savepoint:
        result = db.session.execute(
            update(GoodFaithEstimate)
            .where(GoodFaithEstimate.id == estimate.id,
                   getattr(GoodFaithEstimate, column).is_(None))
            .values({column: now}),
            execution_options={"synchronize_session": False})
        if result.rowcount != 1:
            savepoint.rollback()
            return False
    db.session.add(DeliveryEvent(estimate_id=estimate.id, user_id=user.id, kind=kind, at=now))
    record(action, actor=user, target=(TABLE, estimate.id), subject_id=estimate.client_id)
    db.session.commit()
    return True


def delivery_events(estimate: GoodFaithEstimate) -> list[DeliveryEvent]:
    """The client's views, downloads and acknowledgement, oldest first."""
    return list(db.session.scalars(
        select(DeliveryEvent).where(DeliveryEvent.estimate_id == estimate.id)
        .order_by(DeliveryEvent.at)))


# ---------------------------------------------------------------------------------- billing


@dataclass(frozen=True)
class ProviderBilling:
    """One provider's estimate against what was billed, with the dispute window if it applies."""

    position: int
    provider: Provider
    estimated_cents: int
    billed_cents: int
    overage_cents: int
    level: str
    last_bill_date: date | None
    dispute_deadline: date | None


@dataclass(frozen=True)
class BillingSummary:
    providers: list[ProviderBilling]
    bills: list[BilledAmount]
    level: str

    @property
    def disputable(self) -> list[ProviderBilling]:
        return [p for p in self.providers if p.level == "dispute_eligible"]

    @property
    def has_bills(self) -> bool:
        return any(b.voided_at is None for b in self.bills)


def billing_summary(estimate: GoodFaithEstimate, document: GfeDocument) -> BillingSummary:
    """Compare billed with estimated per provider (never per line) under the configured levels."""
    bills = list(db.session.scalars(
        select(BilledAmount).where(BilledAmount.estimate_id == estimate.id)
        .order_by(BilledAmount.bill_date, BilledAmount.recorded_at)))
    live = [b for b in bills if b.voided_at is None]
    totals = document.provider_totals()
    keys = [str(i) for i in range(len(document.providers))]
    estimated = {key: totals.get(p.npi, 0) for key, p in zip(keys, document.providers,
                                                              strict=True)}
    billed: dict[str, int] = {}
    last: dict[str, date] = {}
    for bill in live:
        key = str(bill.provider_position)
        billed[key] = billed.get(key, 0) + bill.amount_cents
        last[key] = max(last.get(key, bill.bill_date), bill.bill_date)
    results = billing.compare(estimated, billed, **_thresholds())
    providers = []
    for result in results:
        position = int(result.provider)
        if not 0 <= position < len(document.providers):
            continue
        bill_date = last.get(result.provider)
        deadline = (billing.dispute_deadline(bill_date)
                    if result.level == "dispute_eligible" and bill_date else None)
        providers.append(ProviderBilling(
            position, document.providers[position], result.estimated_cents,
            result.billed_cents, result.overage_cents, result.level, bill_date, deadline))
    level = billing.worst_level(results)
    return BillingSummary(providers, bills, level)


def record_bill(actor: User, estimate: GoodFaithEstimate, *, provider_position: int,
                amount_cents: int, bill_date: date) -> BillingSummary:
    """Record an amount billed by one provider of an issued estimate and re-check the levels."""
    if not estimate.is_issued:
        raise EstimateError("Bills are recorded against an issued estimate.")
    if not isinstance(amount_cents, int) or amount_cents < 0:
        raise EstimateError("The amount cannot be negative.", field="amount")
    document = open_document(estimate)
    if not 0 <= provider_position < len(document.providers):
        raise EstimateError("Choose a provider listed on the estimate.", field="provider")
    db.session.add(BilledAmount(estimate_id=estimate.id, provider_position=provider_position,
                                amount_cents=amount_cents, bill_date=bill_date,
                                recorded_by_id=actor.id))
    db.session.flush()
    record("estimate.bill.recorded", actor=actor, target=(TABLE, estimate.id),
           subject_id=estimate.client_id)
    return _update_level(actor, estimate, document)


def void_bill(actor: User, estimate: GoodFaithEstimate, bill_id: uuid.UUID) -> BillingSummary:
    """Void a mistyped billed amount (it stays in the history, struck through).

    Only on an issued estimate, and only if its document opens (EstimateUnavailable
    otherwise): both are checked before anything changes.
    """
    if not estimate.is_issued:
        raise EstimateError("Bills are voided only on an issued estimate.")
    document = open_document(estimate)
    bill = db.session.scalar(select(BilledAmount).where(
        BilledAmount.id == bill_id, BilledAmount.estimate_id == estimate.id))
    if bill is None or bill.voided_at is not None:
        raise EstimateError("That billed amount is not on this estimate.")
    bill.voided_at = utcnow()
    bill.voided_by_id = actor.id
    db.session.flush()
    record("estimate.bill.voided", actor=actor, target=(TABLE, estimate.id),
           subject_id=estimate.client_id)
    return _update_level(actor, estimate, document)


def _update_level(actor: User, estimate: GoodFaithEstimate,
                  document: GfeDocument) -> BillingSummary:
    summary = billing_summary(estimate, document)
    if summary.level != estimate.billing_level:
        if summary.level == "dispute_eligible":
            record("estimate.dispute_eligible", actor=actor, target=(TABLE, estimate.id),
                   subject_id=estimate.client_id, severity="high")
        estimate.billing_level = summary.level
        estimate.updated_at = utcnow()
    db.session.commit()
    return summary


# --------------------------------------------------------------------- staff lists, panel


def _scope(user: User):
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
    query = select(GoodFaithEstimate).where(_scope(user))
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
    """Open the clients' names of a list of estimates with one key query."""
    ids = {e.client_id for e in estimates}
    if not ids:
        return {}
    users = list(db.session.scalars(select(User).where(User.id.in_(ids))))
    return names_of(users)


def _renewal_candidates(user: User, today: date):
    renewal = aliased(GoodFaithEstimate)
    return (
        select(GoodFaithEstimate)
        .where(_scope(user), GoodFaithEstimate.status == Status.ISSUED,
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
    today = practice_today()
    due = list(db.session.scalars(
        select(GoodFaithEstimate)
        .where(_scope(user), GoodFaithEstimate.status == Status.DRAFT,
               GoodFaithEstimate.due_date.is_not(None), GoodFaithEstimate.due_date <= today)
        .order_by(GoodFaithEstimate.due_date, GoodFaithEstimate.created_at)))
    renewals = list(db.session.scalars(_renewal_candidates(user, today)))
    flagged = list(db.session.scalars(
        select(GoodFaithEstimate)
        .where(_scope(user), GoodFaithEstimate.status != Status.DRAFT,
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


def follow_ups(estimate: GoodFaithEstimate) -> dict[str, GoodFaithEstimate | None]:
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

