"""Requests for a copy or an amendment of what the portal does not hold (session notes live
in the practice's other systems): recorded here with their deadline, so nothing is missed.

Deadlines, counted from the practice's day the request arrived (`received_on`):

- a copy (access, 45 CFR 164.524(b)(2)): act within 30 days; one extension of at most 30
  days, with a written reason given to the client before the first 30 days end;
- an amendment (45 CFR 164.526(b)(2)): act within 60 days; one extension of at most 30 days,
  on the same terms.

`due_on` is the first deadline, `extended_to` the one extension. A request is open until an
administrator marks it fulfilled or denied (a denial needs a written reason, which the client
sees with their rights), or the client withdraws it. Everything the client or staff wrote is
sealed under the client's key; the audit carries ids and fixed words only
(`record_request.made.copy`, `record_request.extended`, ...), and the client's email says
only that something changed.
"""

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import Date, bindparam, func, or_, select

from portal import practice
from portal.accounts.identity import email_of, names_by_id
from portal.accounts.models import Assignment, Role, User
from portal.audit import record
from portal.audit.looks import CLIENT_LISTED, Look
from portal.crypto import context_for, open_text_safe, preload_keys, seal
from portal.db import new_id, utcnow
from portal.errors import RuleError
from portal.extensions import db
from portal.mail import enqueue
from portal.records import disclosures
from portal.records.models import REQUEST_KINDS, RecordRequest

# Days to act, and the one extension, per kind (see the module docstring for the rules).
DAYS_TO_ACT = {"copy": 30, "amendment": 60}
EXTENSION_DAYS = 30
WARN_DAYS = 7  # staff are warned this many days before the deadline

KIND_LABELS = {"copy": "A copy of my record", "amendment": "A change to my record"}
KIND_NAMES = {"copy": "a copy of your record", "amendment": "a change (amendment) to your record"}
STATUS_LABELS = {"open": "Open", "fulfilled": "Done", "denied": "Not granted",
                 "withdrawn": "Withdrawn"}

DETAILS_MAX = 4000
REASON_MAX = 2000
MAIL_TEMPLATE = "record_request_update"


# ----------------------------------------------------------------------------- rules


def first_due(kind: str, received_on: date) -> date:
    """The first deadline: 30 days for a copy (164.524(b)(2)), 60 for an amendment
    (164.526(b)(2))."""
    return received_on + timedelta(days=DAYS_TO_ACT[kind])


def due_date(found: RecordRequest) -> date:
    """The deadline that holds now: the extension's, once there is one."""
    return found.extended_to or found.due_on


@dataclass(frozen=True)
class RequestView:
    """One request with what people wrote opened (for pages and the export)."""

    id: uuid.UUID
    client_id: uuid.UUID
    kind: str
    status: str
    received_on: date
    requested_at: datetime
    due_on: date
    extended_to: date | None
    extended_at: datetime | None
    closed_at: datetime | None
    recorded_by_id: uuid.UUID | None
    extended_by_id: uuid.UUID | None
    closed_by_id: uuid.UUID | None
    details: str
    extension_reason: str
    outcome: str
    today: date

    @property
    def due(self) -> date:
        return self.extended_to or self.due_on

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    @property
    def days_left(self) -> int:
        return (self.due - self.today).days

    @property
    def overdue(self) -> bool:
        return self.is_open and self.days_left < 0

    @property
    def due_soon(self) -> bool:
        return self.is_open and 0 <= self.days_left <= WARN_DAYS

    @property
    def may_extend(self) -> bool:
        return self.is_open and self.extended_to is None and self.today <= self.due_on

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind]

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def by_staff(self) -> bool:
        return self.recorded_by_id is not None and self.recorded_by_id != self.client_id


def _opened(found: RecordRequest, field, blob: bytes | None) -> str:
    if blob is None:
        return ""
    return open_text_safe(found.client_id, context_for(field, found.id), blob)


def view_of(found: RecordRequest, today: date | None = None) -> RequestView:
    return RequestView(
        id=found.id, client_id=found.client_id, kind=found.kind, status=found.status,
        received_on=found.received_on, requested_at=found.requested_at, due_on=found.due_on,
        extended_to=found.extended_to, extended_at=found.extended_at,
        closed_at=found.closed_at, recorded_by_id=found.recorded_by_id,
        extended_by_id=found.extended_by_id, closed_by_id=found.closed_by_id,
        details=_opened(found, RecordRequest.details_sealed, found.details_sealed),
        extension_reason=_opened(found, RecordRequest.extension_reason_sealed,
                                 found.extension_reason_sealed),
        outcome=_opened(found, RecordRequest.outcome_sealed, found.outcome_sealed),
        today=today or practice.today())


def _views(rows: list[RecordRequest]) -> list[RequestView]:
    preload_keys(list({r.client_id for r in rows}))
    today = practice.today()
    return [view_of(r, today) for r in rows]


# ----------------------------------------------------------------------------- reading


def requests_of(client_id: uuid.UUID) -> list[RequestView]:
    """Every request of this client, newest first, opened."""
    return _views(list(db.session.scalars(
        select(RecordRequest).where(RecordRequest.client_id == client_id)
        .order_by(RecordRequest.received_on.desc(), RecordRequest.requested_at.desc(),
                  RecordRequest.id))))


def _scope(user: User):
    """The requests this member of staff looks after: every one for an administrator, the
    assigned clients' for a therapist."""
    if user.role == Role.ADMIN:
        return True
    return RecordRequest.client_id.in_(
        select(Assignment.client_id).where(Assignment.therapist_id == user.id))


def open_requests(user: User, *, within_days: int | None = None) -> list[RequestView]:
    """Open requests this member of staff looks after, the nearest deadline first (only
    those due within `within_days`, overdue included, when it is given)."""
    if user is None or user.role not in (Role.ADMIN, Role.THERAPIST):
        return []
    due = func.coalesce(RecordRequest.extended_to, RecordRequest.due_on)
    query = select(RecordRequest).where(RecordRequest.status == "open", _scope(user))
    if within_days is not None:
        query = query.where(due <= practice.today() + timedelta(days=within_days))
    return _views(list(db.session.scalars(query.order_by(due, RecordRequest.requested_at))))


# Runs on every page an administrator opens (the navigation's badge): built once.
_DUE_SOON_COUNT = (
    select(func.count()).select_from(RecordRequest)
    .where(RecordRequest.status == "open",
           or_(RecordRequest.extended_to <= bindparam("until", type_=Date),
               (RecordRequest.extended_to.is_(None))
               & (RecordRequest.due_on <= bindparam("until", type_=Date)))))


def due_soon_count(user) -> int | None:
    """For an administrator's navigation: open requests due within WARN_DAYS or overdue."""
    if user is None or getattr(user, "role", None) != Role.ADMIN:
        return None
    until = practice.today() + timedelta(days=WARN_DAYS)
    return db.session.scalar(_DUE_SOON_COUNT, {"until": until}) or None


def dashboard_panel(user) -> dict:
    """The therapist dashboard's warning: open requests of their clients due within
    WARN_DAYS days, or overdue."""
    if user is None or user.role not in (Role.THERAPIST, Role.ADMIN):
        return {"record_requests_panel": None}
    soon = open_requests(user, within_days=WARN_DAYS)
    names = names_by_id({r.client_id for r in soon}) if soon else {}
    return {"record_requests_panel": {"requests": soon, "names": names,
                                      "warn_days": WARN_DAYS}}


def panel_looks(shown: dict) -> list[Look]:
    """The clients the dashboard warning names, for the dashboard's looks."""
    names = (shown.get("record_requests_panel") or {}).get("names") or {}
    return [Look(CLIENT_LISTED, None, client_id) for client_id in names]


# ----------------------------------------------------------------------------- changing


def _text(value: str | None, *, field: str, missing: str, limit: int) -> str:
    text = (value or "").strip()
    if not text:
        raise RuleError(missing, field)
    if len(text) > limit:
        raise RuleError(f"Please keep this under {limit} characters "
                        f"(it is {len(text)}).", field)
    return text


def _lock(found: RecordRequest) -> RecordRequest:
    db.session.refresh(found, with_for_update=True)
    return found


def _notify(found: RecordRequest) -> None:
    """Tell the client something changed (no detail in the mail: they read it signed in)."""
    client = db.session.get(User, found.client_id)
    if client is None or not client.active:
        return
    address = email_of(client)
    if address:
        base = current_app.config["PORTAL_BASE_URL"].rstrip("/")
        enqueue(client, MAIL_TEMPLATE, to_address=address,
                link=f"{base}/record/requests/{found.id}")


def make(actor: User, client: User, kind: str | None, details: str | None, *,
         received_on: date | None = None) -> RecordRequest:
    """Record a request for a copy or an amendment, made by the client in the portal or on
    paper (recorded by staff, with the day it arrived). Audited `record_request.made.<kind>`."""
    try:
        if client is None or client.role != Role.CLIENT:
            raise RuleError("A request is made for a client's record.")
        if actor is None or not (actor.id == client.id or actor.is_staff):
            raise RuleError("Only the client or the practice can record a request.")
        if kind not in REQUEST_KINDS:
            raise RuleError("Choose what you are asking for.", "kind")
        text = _text(details, field="details", limit=DETAILS_MAX,
                     missing="Please say what you are asking for." if actor.id == client.id
                     else "Write down what the client asked for.")
        today = practice.today()
        if received_on is None or actor.id == client.id:
            received_on = today
        if received_on > today:
            raise RuleError("The day it arrived cannot be in the future.", "received_on")
        if received_on < today - timedelta(days=DAYS_TO_ACT[kind] + EXTENSION_DAYS):
            raise RuleError("That is longer ago than the time to act on it. Record the day "
                            "it actually arrived.", "received_on")
        found = RecordRequest(id=new_id(), client_id=client.id, kind=kind, status="open",
                              requested_at=utcnow(), received_on=received_on,
                              due_on=first_due(kind, received_on), recorded_by_id=actor.id)
        found.details_sealed = seal(client.id, context_for(RecordRequest.details_sealed,
                                                           found.id), text)
        db.session.add(found)
        db.session.flush()
        record(f"record_request.made.{kind}", actor=actor, target=("record_request", found.id),
               subject_id=client.id)
        db.session.commit()
        return found
    except Exception:
        db.session.rollback()
        raise


def _staff_check(actor: User, found: RecordRequest) -> None:
    if actor is None or actor.role != Role.ADMIN:
        raise RuleError("Only a practice administrator can act on a request.")
    if found.status != "open":
        raise RuleError(f"This request is already {STATUS_LABELS[found.status].lower()}.")


def extend(actor: User, found: RecordRequest, reason: str | None) -> RecordRequest:
    """The one extension of 30 days, with the written reason the client sees; only before
    the first deadline has passed (164.524(b)(2), 164.526(b)(2)). Audited
    `record_request.extended`; the client is emailed."""
    try:
        _lock(found)
        _staff_check(actor, found)
        if found.extended_to is not None:
            raise RuleError("This request was already extended once; it cannot be extended "
                            "again.")
        if practice.today() > found.due_on:
            raise RuleError("The deadline has passed, so it can no longer be extended.")
        text = _text(reason, field="reason", limit=REASON_MAX,
                     missing="Write the reason for the delay; the client reads it.")
        found.extended_to = found.due_on + timedelta(days=EXTENSION_DAYS)
        found.extended_at = utcnow()
        found.extended_by_id = actor.id
        found.extension_reason_sealed = seal(
            found.client_id, context_for(RecordRequest.extension_reason_sealed, found.id), text)
        record("record_request.extended", actor=actor, target=("record_request", found.id),
               subject_id=found.client_id)
        _notify(found)
        db.session.commit()
        return found
    except Exception:
        db.session.rollback()
        raise


def _close(actor: User, found: RecordRequest, status: str, note: str) -> RecordRequest:
    """Close it as fulfilled or denied with the note sealed, audited
    `record_request.<status>`, the client emailed; commits."""
    found.status = status
    found.closed_at = utcnow()
    found.closed_by_id = actor.id
    if note:
        found.outcome_sealed = seal(found.client_id,
                                    context_for(RecordRequest.outcome_sealed, found.id), note)
    record(f"record_request.{status}", actor=actor, target=("record_request", found.id),
           subject_id=found.client_id)
    _notify(found)
    db.session.commit()
    return found


def fulfil(actor: User, found: RecordRequest, note: str | None = None) -> RecordRequest:
    """Mark it done (with an optional note for the client: how the copy was sent...).
    Audited `record_request.fulfilled`; the client is emailed."""
    try:
        _lock(found)
        _staff_check(actor, found)
        text = (note or "").strip()
        if len(text) > REASON_MAX:
            raise RuleError(f"Please keep this under {REASON_MAX} characters.", "note")
        return _close(actor, found, "fulfilled", text)
    except Exception:
        db.session.rollback()
        raise


def deny(actor: User, found: RecordRequest, reason: str | None) -> RecordRequest:
    """Deny it with the written reason the client sees beside their rights (164.524(d),
    164.526(d)). Audited `record_request.denied`; the client is emailed."""
    try:
        _lock(found)
        _staff_check(actor, found)
        text = _text(reason, field="reason", limit=REASON_MAX,
                     missing="Write the reason; the client reads it with their rights.")
        return _close(actor, found, "denied", text)
    except Exception:
        db.session.rollback()
        raise


def withdraw(actor: User, found: RecordRequest) -> RecordRequest:
    """The client withdraws their own open request. Audited `record_request.withdrawn`."""
    try:
        _lock(found)
        if actor is None or actor.id != found.client_id:
            raise RuleError("Only the client can withdraw their request.")
        if found.status != "open":
            raise RuleError(f"This request is already {STATUS_LABELS[found.status].lower()}.")
        found.status = "withdrawn"
        found.closed_at = utcnow()
        found.closed_by_id = actor.id
        record("record_request.withdrawn", actor=actor, target=("record_request", found.id),
               subject_id=found.client_id)
        db.session.commit()
        return found
    except Exception:
        db.session.rollback()
        raise


def clients_to_choose(user: User) -> list[uuid.UUID]:
    """The clients whose record this member of staff may open here: every active client for
    an administrator, the assigned ones for a therapist (oldest account first)."""
    if user is None or user.role not in (Role.ADMIN, Role.THERAPIST):
        return []
    query = select(User.id).where(User.role == Role.CLIENT, User.active.is_(True))
    if user.role == Role.THERAPIST:
        query = query.where(User.id.in_(
            select(Assignment.client_id).where(Assignment.therapist_id == user.id)))
    return list(db.session.scalars(query.order_by(User.created_at, User.id)))


def seed_demo(by_email: dict) -> None:
    """Demo data: Alex asked for a copy (open) and a change written down at the front desk,
    extended once; one disclosure to a court is on their accounting."""
    client = by_email.get("alex@example.org")
    therapist, admin = by_email.get("colleen@coeo.example"), by_email.get("admin@coeo.example")
    if client is None or therapist is None or admin is None:
        return
    today = practice.today()
    make(client, client, "copy", "My session notes from last year, on paper please.")
    change = make(therapist, client, "amendment", "Asked at the front desk: the intake form "
                  "lists an old emergency contact.", received_on=today - timedelta(days=50))
    extend(admin, change, "We are checking the intake form with the billing office; you "
                          "will hear from us within the month.")
    disclosures.record_disclosure(
        therapist, client, disclosed_on=today - timedelta(days=90),
        recipient="Montgomery County Court of Common Pleas",
        content="Dates of attendance, January to March", purpose="Subpoena signed by a judge")
