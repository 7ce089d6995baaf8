"""The accounting of disclosures (45 CFR 164.528): disclosures of a client's information made
outside the portal, recorded by staff, shown to the client for six years, in the export.

Staff (the assigned therapist or an administrator) record the date, the recipient, what was
disclosed and the purpose or legal basis, all sealed under the client's key. Disclosures that
164.528(a)(1) exempts (treatment, payment, health care operations, to the client themselves,
with their authorization...) need not be recorded, and the form says so.

A disclosure is never deleted: a mistaken one is voided (who and when), and the mapper
refuses a delete, one at a time or in bulk, as `portal.ops.holds` does for legal holds.
Audited with ids and fixed words only: `disclosure.recorded`, `disclosure.voided`.
"""

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select

from portal import practice
from portal.accounts.models import Role, User
from portal.audit import record
from portal.crypto import context_for, open_text_safe, preload_keys, seal
from portal.db import new_id, utcnow
from portal.db.guards import HistoryWords, keep_as_history
from portal.errors import RuleError
from portal.extensions import db
from portal.records.access import may_see
from portal.records.models import Disclosure

YEARS_SHOWN = 6  # 164.528(a): the accounting covers the six years before the request
RECIPIENT_MAX = 300
TEXT_MAX = 2000


class DisclosureHistoryError(RuntimeError):
    """A change that would rewrite the accounting of disclosures (a delete, an un-void)."""


def years_before(day: date, years: int) -> date:
    """The same day `years` earlier (28 February for a 29 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def shown_since(today: date | None = None) -> date:
    """The first day the client's accounting shows: six years before today at the practice."""
    return years_before(today or practice.today(), YEARS_SHOWN)


@dataclass(frozen=True)
class DisclosureView:
    """One disclosure with its sealed fields opened (pages and the record export)."""

    id: uuid.UUID
    client_id: uuid.UUID
    disclosed_on: date
    recipient: str
    content: str
    purpose: str
    recorded_at: datetime
    recorded_by_id: uuid.UUID | None
    voided_at: datetime | None
    voided_by_id: uuid.UUID | None

    @property
    def voided(self) -> bool:
        return self.voided_at is not None


def _open(row: Disclosure, field, blob: bytes) -> str:
    return open_text_safe(row.client_id, context_for(field, row.id), blob)


def view_of(row: Disclosure) -> DisclosureView:
    return DisclosureView(
        id=row.id, client_id=row.client_id, disclosed_on=row.disclosed_on,
        recipient=_open(row, Disclosure.recipient_sealed, row.recipient_sealed),
        content=_open(row, Disclosure.content_sealed, row.content_sealed),
        purpose=_open(row, Disclosure.purpose_sealed, row.purpose_sealed),
        recorded_at=row.recorded_at, recorded_by_id=row.recorded_by_id,
        voided_at=row.voided_at, voided_by_id=row.voided_by_id)


def disclosures_for(client_id: uuid.UUID, since: date | None = None, *,
                    include_voided: bool = False) -> list[DisclosureView]:
    """The client's disclosures on or after `since` (every one when None), newest first,
    opened. Voided ones are left out unless `include_voided` (staff see them, struck out)."""
    query = select(Disclosure).where(Disclosure.client_id == client_id)
    if since is not None:
        query = query.where(Disclosure.disclosed_on >= since)
    if not include_voided:
        query = query.where(Disclosure.voided_at.is_(None))
    rows = list(db.session.scalars(query.order_by(Disclosure.disclosed_on.desc(),
                                                  Disclosure.recorded_at.desc())))
    if rows:
        preload_keys([client_id])
    return [view_of(row) for row in rows]


def for_client(client_id: uuid.UUID) -> list[DisclosureView]:
    """What the client sees: every disclosure of the last six years, not voided."""
    return disclosures_for(client_id, shown_since())


# ----------------------------------------------------------------------------- changing


def _staff(actor: User | None, client: User) -> None:
    if actor is None or not actor.is_staff or not may_see(actor, client.id):
        raise RuleError("Only the client's therapist or an administrator can record a "
                        "disclosure.")
    if client.role != Role.CLIENT:
        raise RuleError("A disclosure is recorded on a client's record.")


def _text(value: str | None, field: str, missing: str, limit: int) -> str:
    text = (value or "").strip()
    if not text:
        raise RuleError(missing, field)
    if len(text) > limit:
        raise RuleError(f"Please keep this under {limit} characters (it is {len(text)}).",
                        field)
    return text


def record_disclosure(actor: User, client: User, *, disclosed_on: date | None,
                      recipient: str | None, content: str | None,
                      purpose: str | None) -> Disclosure:
    """Record a disclosure made outside the portal (audited `disclosure.recorded`)."""
    try:
        _staff(actor, client)
        today = practice.today()
        if disclosed_on is None:
            raise RuleError("Enter the date it was disclosed.", "disclosed_on")
        if disclosed_on > today:
            raise RuleError("The date cannot be in the future.", "disclosed_on")
        if disclosed_on < shown_since(today):
            raise RuleError(f"The accounting covers the last {YEARS_SHOWN} years; this date "
                            "is earlier.", "disclosed_on")
        values = {
            "recipient": _text(recipient, "recipient", "Enter who received it.", RECIPIENT_MAX),
            "content": _text(content, "content", "Describe what was disclosed.", TEXT_MAX),
            "purpose": _text(purpose, "purpose", "Enter the purpose or the legal basis.",
                             TEXT_MAX),
        }
        row = Disclosure(id=new_id(), client_id=client.id, disclosed_on=disclosed_on,
                         recorded_at=utcnow(), recorded_by_id=actor.id)
        for name, text in values.items():
            column = getattr(Disclosure, f"{name}_sealed")
            setattr(row, f"{name}_sealed", seal(client.id, context_for(column, row.id), text))
        db.session.add(row)
        db.session.flush()
        record("disclosure.recorded", actor=actor, target=("disclosure", row.id),
               subject_id=client.id)
        db.session.commit()
        return row
    except Exception:
        db.session.rollback()
        raise


def void(actor: User, row: Disclosure) -> Disclosure:
    """Void a disclosure recorded by mistake; it stays, marked (audited `disclosure.voided`)."""
    try:
        db.session.refresh(row, with_for_update=True)
        client = db.session.get(User, row.client_id)
        _staff(actor, client)
        if row.voided_at is not None:
            raise RuleError("This disclosure was already voided.")
        row.voided_at = utcnow()
        row.voided_by_id = actor.id
        record("disclosure.voided", actor=actor, target=("disclosure", row.id),
               subject_id=row.client_id)
        db.session.commit()
        return row
    except Exception:
        db.session.rollback()
        raise


# ----------------------------------------------------------------------------- guards

# A void sets its columns once; key rotation re-seals the sealed ones (same text, new key),
# in bulk statements too.
keep_as_history(Disclosure, DisclosureHistoryError, HistoryWords(
    changed="a recorded disclosure is history: only a void is recorded",
    undone="a voided disclosure stays voided",
    deleted="a disclosure is voided, never deleted",
    bulk="disclosures are voided one at a time, never deleted"),
    may_change=frozenset({"voided_at", "voided_by_id", "recipient_sealed", "content_sealed",
                          "purpose_sealed"}),
    set_once="voided_at", bulk_updates=True)
