"""Minors and their guardians: ages, links, what a guardian may see, and the end at 18.

Pennsylvania, Act 147 of 2004 (35 P.S. § 10101.1): a minor of 14 or over may consent to
outpatient mental-health treatment themselves, and then holds the rights over its records; a
parent or guardian may consent for a minor under 18. The portal's rules:

- A guardian never sees a minor's conversations, in any state (their own conversations with the
  minor's therapist are theirs: `portal.messaging`).
- Consent by the guardian: the guardian sees the minor's issued Good Faith Estimates (they
  pay). Consent by the minor (14 or over): the guardian sees only what the minor or the
  therapist shares explicitly (`GuardianShare`).
- Access ends the day the minor turns 18: every check below compares the date of birth with
  the practice's today, so it ends on the day even before the daily job (`end_links_of_adults`,
  a deliver-mail task) writes the end down, tells the guardian and audits it.

The date of birth is sealed under the minor's key; it is opened only here.
"""

import uuid
from datetime import date, datetime

from sqlalchemy import select, update

from portal import practice
from portal.accounts.models import Role, User
from portal.accounts.service import create_user
from portal.audit import record
from portal.crypto import DecryptionError, context_for, open_text, preload_keys, seal
from portal.db import new_id, utcnow
from portal.errors import RuleError
from portal.extensions import db
from portal.guardians.models import GuardianShare, Guardianship, Minor
from portal.mail import enqueue

ADULT_AGE = 18
SELF_CONSENT_AGE = 14
ENDED_TEMPLATE = "guardian_access_ended"


# --- ages ------------------------------------------------------------------------------

def birthday(born: date, years: int) -> date:
    """The day someone born on `born` turns `years` (a 29 February birthday: 1 March)."""
    try:
        return born.replace(year=born.year + years)
    except ValueError:
        return date(born.year + years, 3, 1)


def age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def is_adult(born: date, day: date | None = None) -> bool:
    return (day or practice.today()) >= birthday(born, ADULT_AGE)


# --- the minor's details -----------------------------------------------------------------

def minor_of(client_id: uuid.UUID) -> Minor | None:
    return db.session.scalar(select(Minor).where(Minor.client_id == client_id))


def date_of_birth(minor: Minor) -> date | None:
    """The minor's date of birth, or None when it cannot be opened (treated as no access)."""
    try:
        text = open_text(minor.client_id, context_for(Minor.date_of_birth_sealed, minor.id),
                         minor.date_of_birth_sealed)
    except DecryptionError:
        return None
    return date.fromisoformat(text)


def is_minor_today(minor: Minor | None, day: date | None = None) -> bool:
    if minor is None:
        return False
    born = date_of_birth(minor)
    return born is not None and not is_adult(born, day)


def record_minor(actor: User, client: User, *, born: date, consent_by: str) -> Minor:
    """Say a client is a minor, with their date of birth and who consented to treatment."""
    if client.role != Role.CLIENT:
        raise RuleError("Only a client can be recorded as a minor.")
    if consent_by not in ("minor", "guardian"):
        raise RuleError("Please choose who consented to treatment.", field="consent_by")
    today = practice.today()
    if born >= today:
        raise RuleError("The date of birth must be in the past.", field="date_of_birth")
    if is_adult(born, today):
        raise RuleError("By this date of birth the client is 18 or over, so not a minor.",
                        field="date_of_birth")
    if consent_by == "minor" and age_on(born, today) < SELF_CONSENT_AGE:
        raise RuleError("A minor can consent to treatment themselves from age 14 (Act 147 "
                        "of 2004). Under 14, a parent or guardian consents.", field="consent_by")
    minor = minor_of(client.id)
    action = "minor.updated"
    if minor is None:
        minor = Minor(id=new_id(), client_id=client.id, recorded_by_id=actor.id)
        action = "minor.recorded"
    else:
        minor.updated_at = utcnow()
    # Sealed before the row joins the session: sealing may read the key, and that query's
    # autoflush must not insert a row without its date of birth.
    minor.date_of_birth_sealed = seal(client.id, context_for(Minor.date_of_birth_sealed,
                                                             minor.id), born.isoformat())
    minor.consent_by = consent_by
    db.session.add(minor)
    record(action, actor=actor, target=("user", client.id), subject_id=client.id)
    db.session.commit()
    return minor


# --- links -------------------------------------------------------------------------------

def link(actor: User, guardian: User, client: User) -> Guardianship:
    """Link a guardian's account to a minor client (refused for an adult or a non-guardian)."""
    if guardian.role != Role.GUARDIAN:
        raise RuleError("Only a parent or guardian account can be linked to a minor.")
    if client.role != Role.CLIENT or not is_minor_today(minor_of(client.id)):
        raise RuleError("Record the client as a minor (with their date of birth) first.")
    if live_link(guardian.id, client.id) is not None:
        raise RuleError("This guardian is already linked to this client.")
    row = Guardianship(id=new_id(), guardian_id=guardian.id, minor_id=client.id,
                       created_by_id=actor.id)
    db.session.add(row)
    db.session.flush()
    record("guardianship.linked", actor=actor, target=("guardianship", row.id),
           subject_id=client.id)
    db.session.commit()
    return row


def unlink(actor: User, row: Guardianship) -> None:
    """End a link by hand (a change of custody, a mistake): kept, never deleted."""
    if not _end(row, reason="unlinked", by=actor):
        raise RuleError("This link has already ended.")
    record("guardianship.ended.unlinked", actor=actor, target=("guardianship", row.id),
           subject_id=row.minor_id)
    db.session.commit()


def _end(row: Guardianship, *, reason: str, by: User | None) -> bool:
    """Compare-and-set: only the caller whose UPDATE ended the link goes on to say so."""
    changed = db.session.execute(
        update(Guardianship)
        .where(Guardianship.id == row.id, Guardianship.ended_at.is_(None))
        .values(ended_at=utcnow(), end_reason=reason, ended_by_id=by.id if by else None)
        .execution_options(synchronize_session="fetch")).rowcount
    return changed == 1


def _live(rows: list[Guardianship], day: date | None = None) -> list[Guardianship]:
    if not rows:
        return []
    minors = {m.client_id: m for m in db.session.scalars(
        select(Minor).where(Minor.client_id.in_({r.minor_id for r in rows})))}
    preload_keys(list(minors))
    return [r for r in rows if is_minor_today(minors.get(r.minor_id), day)]


def live_link(guardian_id: uuid.UUID, client_id: uuid.UUID,
              day: date | None = None) -> Guardianship | None:
    """The guardian's live link to this minor, or None (ended, or the minor is 18 today)."""
    row = db.session.scalar(select(Guardianship).where(
        Guardianship.guardian_id == guardian_id, Guardianship.minor_id == client_id,
        Guardianship.ended_at.is_(None)))
    return (_live([row], day) or [None])[0] if row else None


def live_links(guardian_id: uuid.UUID, day: date | None = None) -> list[Guardianship]:
    """The guardian's live links, oldest first."""
    rows = list(db.session.scalars(select(Guardianship).where(
        Guardianship.guardian_id == guardian_id, Guardianship.ended_at.is_(None))
        .order_by(Guardianship.created_at)))
    return _live(rows, day)


def live_minor_ids(guardian_id: uuid.UUID, day: date | None = None) -> list[uuid.UUID]:
    return [r.minor_id for r in live_links(guardian_id, day)]


def guardians_of(client_id: uuid.UUID, day: date | None = None) -> list[Guardianship]:
    """The live links to this minor (for staff pages)."""
    rows = list(db.session.scalars(select(Guardianship).where(
        Guardianship.minor_id == client_id, Guardianship.ended_at.is_(None))
        .order_by(Guardianship.created_at)))
    return _live(rows, day)


def links_history(client_id: uuid.UUID) -> list[Guardianship]:
    """Every link to this minor, live or ended, newest first."""
    return list(db.session.scalars(select(Guardianship).where(
        Guardianship.minor_id == client_id).order_by(Guardianship.created_at.desc())))


def links_of_guardian(guardian_id: uuid.UUID) -> list[Guardianship]:
    """Every link of this guardian, live or ended, newest first (for the admin's page)."""
    return list(db.session.scalars(select(Guardianship).where(
        Guardianship.guardian_id == guardian_id).order_by(Guardianship.created_at.desc())))


def live_ids(rows: list[Guardianship], day: date | None = None) -> set[uuid.UUID]:
    """Which of these links are live today (not ended, and the minor not yet 18)."""
    return {r.id for r in _live([r for r in rows if r.ended_at is None], day)}


def guardian_accounts() -> list[User]:
    """The active parent or guardian accounts (to choose one to link)."""
    return list(db.session.scalars(select(User).where(
        User.role == Role.GUARDIAN, User.active.is_(True)).order_by(User.created_at)))


def invite_guardian(actor: User, client: User, *, name: str, email: str) -> Guardianship:
    """Invite a new parent or guardian (their own account, invited like a client) and link
    them to this minor. The minor is checked first, so a refusal creates no account."""
    if client.role != Role.CLIENT or not is_minor_today(minor_of(client.id)):
        raise RuleError("Record the client as a minor (with their date of birth) first.")
    guardian, _ = create_user(actor, role=Role.GUARDIAN, name=name, email=email)
    return link(actor, guardian, client)


# --- what a guardian sees ----------------------------------------------------------------

def guardian_consented(client_id: uuid.UUID) -> bool:
    """Did a parent or guardian consent to this minor's treatment? (False: the minor did.)"""
    minor = minor_of(client_id)
    return minor is not None and minor.consent_by == "guardian"


def shared_ids(row: Guardianship, kind: str) -> set[uuid.UUID]:
    """Items of this kind shared with this guardian and not withdrawn."""
    return set(db.session.scalars(select(GuardianShare.item_id).where(
        GuardianShare.guardianship_id == row.id, GuardianShare.kind == kind,
        GuardianShare.withdrawn_at.is_(None))))


def may_see_estimate(row: Guardianship, estimate_id: uuid.UUID) -> bool:
    """A guardian sees an issued estimate when they consented, or when it was shared."""
    return guardian_consented(row.minor_id) or estimate_id in shared_ids(row, "estimate")


def share(actor: User, row: Guardianship, kind: str, item_id: uuid.UUID) -> GuardianShare:
    """Show a guardian one item (the minor or their therapist decides; the caller checks who)."""
    if kind != "estimate":
        raise RuleError("Only a Good Faith Estimate can be shared with a guardian.")
    if item_id in shared_ids(row, kind):
        raise RuleError("This is already shared.")
    item = GuardianShare(id=new_id(), guardianship_id=row.id, kind=kind, item_id=item_id,
                         shared_by_id=actor.id)
    db.session.add(item)
    record(f"guardian_share.{kind}.shared", actor=actor, target=(kind, item_id),
           subject_id=row.minor_id)
    db.session.commit()
    return item


def withdraw(actor: User, row: Guardianship, kind: str, item_id: uuid.UUID) -> None:
    changed = db.session.execute(
        update(GuardianShare)
        .where(GuardianShare.guardianship_id == row.id, GuardianShare.kind == kind,
               GuardianShare.item_id == item_id, GuardianShare.withdrawn_at.is_(None))
        .values(withdrawn_at=utcnow(), withdrawn_by_id=actor.id)
        .execution_options(synchronize_session=False)).rowcount
    if not changed:
        raise RuleError("This is not shared.")
    record(f"guardian_share.{kind}.withdrawn", actor=actor, target=(kind, item_id),
           subject_id=row.minor_id)
    db.session.commit()


# --- the daily end at 18 -----------------------------------------------------------------

def end_links_of_adults(now: datetime | None = None) -> int:
    """End every live link whose minor has turned 18; tell the guardian (a deliver-mail task).

    Safe when several loops run it: each link is ended by a compare-and-set, and only the
    loop that ended it audits and queues the notice, in the same transaction.
    """
    day = practice.today() if now is None else now.astimezone(practice.zone()).date()
    rows = list(db.session.scalars(select(Guardianship).where(Guardianship.ended_at.is_(None))))
    live = {r.id for r in _live(rows, day)}
    ended = 0
    for row in rows:
        if row.id in live:
            continue
        minor = minor_of(row.minor_id)
        born = date_of_birth(minor) if minor is not None else None
        if born is None:  # unreadable or missing: no access (the checks above), but not "18"
            continue
        if not _end(row, reason="turned_18", by=None):
            continue
        record("guardianship.ended.turned_18", actor=None, target=("guardianship", row.id),
               subject_id=row.minor_id)
        guardian = db.session.get(User, row.guardian_id)
        if guardian is not None and guardian.active:
            enqueue(guardian, ENDED_TEMPLATE, link=None)
        db.session.commit()
        ended += 1
    return ended
