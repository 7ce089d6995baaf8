"""Correcting a date that started a deadline, and the history that keeps the original.

Once saved, the date a client asked for an estimate, the date a service was scheduled and the
date of that service (45 CFR 149.610(b)(1)(ii)), and a correction's next scheduled service
(45 CFR 149.610(b)(1)(vii)), are read-only: the builder ignores them. A correction names a
reason from a fixed list, may carry a note (sealed under the client), writes one
DeadlineCorrection row per date it changes (never changed or deleted), recomputes the due date
and is audited with the reason as a fixed word in the action's name. The original deadline (the
first correction's old due date) still shows as met or missed.
"""

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select

from portal import practice
from portal.accounts.identity import names_of
from portal.accounts.models import User
from portal.audit import record
from portal.audit.catalogue import declare
from portal.crypto import context_for, open_text_safe, seal
from portal.db import new_id, utcnow
from portal.errors import RuleError
from portal.estimates import deadlines
from portal.estimates.drafting import SCHEDULING, deadline_of, locked_dates
from portal.estimates.models import (
    CORRECTION_REASONS,
    TABLE,
    DeadlineCorrection,
    GoodFaithEstimate,
)
from portal.extensions import db

# The stored keys are fixed by a CHECK constraint; these are only the words staff read.
REASON_LABELS = {
    "typed_wrong_date": "The date was entered wrongly",
    "client_corrected": "The client gave a different date",
    "rescheduled": "The service was moved to another day",
    "withdrawn": "Withdrawn: the request or the booking was cancelled",
}
ACTIONS = {reason: f"estimate.deadline_corrected.{reason}" for reason in CORRECTION_REASONS}
NEXT_SERVICE_RECORDED = "estimate.next_service.recorded"
WORKED = "Worked on one of your Good Faith Estimates"  # the words of estimates' other actions
NOTE_MAX = 500
PAST_DAYS = 366
AHEAD_DAYS = 3 * 366

FIELD_LABELS = {
    "requested_on": "Date the client asked for an estimate",
    "scheduled_on": "Date the service was scheduled",
    "service_date": "Date of the first scheduled service",
}
NEXT_SERVICE_LABEL = "Next scheduled service"


def declare_actions() -> None:
    """Word the corrections in the client's access log (called from the feature's init_app)."""
    for action in (*ACTIONS.values(), NEXT_SERVICE_RECORDED):
        declare(action, WORKED)


def field_label(estimate: GoodFaithEstimate, field: str) -> str:
    if field == "service_date" and estimate.supersedes_id is not None:
        return NEXT_SERVICE_LABEL
    return FIELD_LABELS[field]


def correctable(estimate: GoodFaithEstimate) -> frozenset[str]:
    """The dates of this draft a correction may change (the recorded ones that started a
    deadline); a correction's scheduling date is the day its next service was recorded, not a
    date of its own to correct."""
    if not estimate.is_draft:
        return frozenset()
    locked = locked_dates(estimate)
    if estimate.supersedes_id is not None:
        locked = locked - {"scheduled_on"}
    return locked


def _check_new_value(estimate: GoodFaithEstimate, field: str, value: date, today: date) -> None:
    if getattr(estimate, field) == value:
        raise RuleError("That is the date already recorded.", field="new_date")
    if value > today + timedelta(days=AHEAD_DAYS) or value < today - timedelta(days=PAST_DAYS):
        raise RuleError("That date is out of range — please check the year.", field="new_date")
    if field in ("requested_on", "scheduled_on") and value > today:
        raise RuleError("This date cannot be in the future.", field="new_date")
    if field == "scheduled_on" and value > estimate.service_date:
        raise RuleError("The scheduling date cannot be after the service date.", field="new_date")
    if field == "service_date":
        if estimate.supersedes_id is not None and value < today:
            raise RuleError("The next scheduled service is today or later.", field="new_date")
        if value < estimate.scheduled_on:
            raise RuleError("The service date is before the day it was scheduled.",
                            field="new_date")


def correct_date(actor: User, estimate: GoodFaithEstimate, *, field: str,
                 new_value: date | None, reason: str, note: str = "") -> list[DeadlineCorrection]:
    """Correct one recorded deadline date of a draft, with a reason; keep the history.

    `withdrawn` clears the date (for a scheduling: both of its dates) and needs no new date;
    every other reason needs a new date. Writes a DeadlineCorrection row for each date that
    changes, the due date before and after, an audit event with the reason in its name, and
    commits. RuleError (with the form field) when the rule refuses.
    """
    if field not in correctable(estimate):
        raise RuleError("That date is not recorded on this draft, so there is nothing to "
                        "correct.")
    if reason not in CORRECTION_REASONS:
        raise RuleError("Choose why the date is being corrected.", field="reason")
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise RuleError(f"Keep the note to {NOTE_MAX} characters.", field="note")
    today = practice.today()
    if reason == "withdrawn":
        if new_value is not None:
            raise RuleError("A withdrawn date is cleared: leave the new date empty, or choose "
                            "another reason.", field="new_date")
        changes = {f: None for f in (SCHEDULING if field in SCHEDULING else (field,))}
    else:
        if new_value is None:
            raise RuleError("Enter the corrected date, or choose “withdrawn” to clear it.",
                            field="new_date")
        _check_new_value(estimate, field, new_value, today)
        changes = {field: new_value}
    dates = {f: getattr(estimate, f) for f in ("requested_on", *SCHEDULING)}
    old_due = estimate.due_date
    dates.update(changes)
    new_due = deadline_of(estimate, **dates)
    at = utcnow()
    rows = []
    for name, value in changes.items():
        old = getattr(estimate, name)
        if old == value:
            continue
        row = DeadlineCorrection(
            id=new_id(), estimate_id=estimate.id, client_id=estimate.client_id, field=name,
            old_value=old, new_value=value, old_due_date=old_due, new_due_date=new_due,
            reason=reason, corrected_at=at, corrected_by_id=actor.id)
        if note:
            row.note_sealed = seal(estimate.client_id,
                                   context_for(DeadlineCorrection.note_sealed, row.id), note)
        db.session.add(row)
        rows.append(row)
        setattr(estimate, name, value)
    estimate.due_date = new_due
    estimate.updated_at = at
    record(ACTIONS[reason], actor=actor, target=(TABLE, estimate.id),
           subject_id=estimate.client_id)
    db.session.commit()
    return rows


def record_next_service(actor: User, estimate: GoodFaithEstimate, next_service: date) -> None:
    """Record when a correction's next service is (once; later changes are corrections), which
    makes it due one business day before (45 CFR 149.610(b)(1)(vii))."""
    if not estimate.is_draft or estimate.supersedes_id is None:
        raise RuleError("Only a correction of an issued estimate has a next service to record.")
    if estimate.service_date is not None:
        raise RuleError("The next service is recorded already: correct it instead.")
    set_next_service(estimate, next_service)
    record(NEXT_SERVICE_RECORDED, actor=actor, target=(TABLE, estimate.id),
           subject_id=estimate.client_id)
    db.session.commit()


def set_next_service(estimate: GoodFaithEstimate, next_service: date) -> None:
    """Put the next scheduled service on a correction draft and its due date (no commit)."""
    today = practice.today()
    if next_service < today:
        raise RuleError("The next scheduled service is today or later.", field="next_service")
    if next_service > today + timedelta(days=AHEAD_DAYS):
        raise RuleError("That date is out of range — please check the year.",
                        field="next_service")
    estimate.scheduled_on, estimate.service_date = today, next_service
    estimate.due_date = deadline_of(estimate, scheduled_on=today, service_date=next_service,
                                    requested_on=estimate.requested_on)
    estimate.updated_at = utcnow()


# ---------------------------------------------------------------------------- the history


@dataclass(frozen=True)
class Correction:
    """One correction as staff read it."""

    field_label: str
    old_value: date | None
    new_value: date | None
    old_due: date | None
    new_due: date | None
    reason: str
    reason_label: str
    note: str
    corrected_at: datetime
    corrected_by: str


@dataclass(frozen=True)
class DeadlineHistory:
    """The original deadline, what changed it, and whether it was kept.

    kept: "met" (issued on or before the original deadline), "missed" (issued after it, or
    not issued and the day has passed), "open" (still time), "withdrawn" (cleared before it
    was due, never issued), or None when there was never a deadline.
    """

    original_due: date | None
    corrections: list[Correction]
    kept: str | None

    @property
    def corrected(self) -> bool:
        return bool(self.corrections)


def history(estimate: GoodFaithEstimate) -> DeadlineHistory:
    """The deadline history of an estimate (one query for the rows, one for the names)."""
    rows = list(db.session.scalars(
        select(DeadlineCorrection).where(DeadlineCorrection.estimate_id == estimate.id)
        .order_by(DeadlineCorrection.corrected_at, DeadlineCorrection.id)))
    original = rows[0].old_due_date if rows else estimate.due_date
    kept = deadlines.deadline_kept(original, estimate.issue_date, practice.today())
    if kept == "open" and estimate.due_date is None and estimate.is_draft:
        kept = "withdrawn"
    names = _names({row.corrected_by_id for row in rows if row.corrected_by_id})
    corrections = [
        Correction(
            field_label=field_label(estimate, row.field), old_value=row.old_value,
            new_value=row.new_value, old_due=row.old_due_date, new_due=row.new_due_date,
            reason=row.reason, reason_label=REASON_LABELS.get(row.reason, row.reason),
            note=open_text_safe(row.client_id, context_for(DeadlineCorrection.note_sealed,
                                                           row.id), row.note_sealed)
            if row.note_sealed is not None else "",
            corrected_at=row.corrected_at,
            corrected_by=names.get(row.corrected_by_id, "Someone at the practice"))
        for row in rows
    ]
    return DeadlineHistory(original, corrections, kept)


def _names(ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    return names_of(list(db.session.scalars(select(User).where(User.id.in_(ids)))))


def withdrawn_request(client: User) -> DeadlineCorrection | None:
    """The latest request of this client that the practice recorded as withdrawn, while its
    draft has no new request (so the client's page can say so instead of going quiet)."""
    return db.session.scalar(
        select(DeadlineCorrection)
        .join(GoodFaithEstimate, GoodFaithEstimate.id == DeadlineCorrection.estimate_id)
        .where(DeadlineCorrection.client_id == client.id,
               DeadlineCorrection.field == "requested_on",
               DeadlineCorrection.reason == "withdrawn",
               GoodFaithEstimate.status == "draft",
               GoodFaithEstimate.requested_on.is_(None))
        .order_by(DeadlineCorrection.corrected_at.desc()).limit(1))
