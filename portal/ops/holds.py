"""Legal holds: while a client's record is held (a dispute, litigation, an investigation),
the retention purge leaves it alone, however old it is.

An administrator places a hold with a reason from `HOLD_REASONS` and releases it when the
matter ends. A hold is released, never deleted: the mapper refuses to delete one (and a bulk
delete through the session), and a released hold stays released, so the history of holds
stays with the record. Both changes are audited, ids and fixed words only: the reason is part
of the action's name (`legal_hold.placed.<reason>`), never free text.

Placing a hold takes the client's row lock first, as a purge does, so a purge that runs at
the same moment either finishes before the hold or sees it.
"""

import uuid
from collections.abc import Iterable

from sqlalchemy import select

from portal.accounts.models import HOLD_REASONS, LegalHold, Role, User
from portal.accounts.service import lock_users
from portal.audit import record
from portal.db import utcnow
from portal.db.guards import HistoryWords, keep_as_history
from portal.errors import RuleError
from portal.extensions import db

# How each reason reads on the administrator's page (the stored value is the key).
REASON_LABELS = {
    "dispute": "A dispute",
    "litigation": "Litigation",
    "investigation": "An investigation",
}


class HoldHistoryError(RuntimeError):
    """A change that would rewrite the history of legal holds (a delete, an un-release)."""


# ----------------------------------------------------------------------------- reading


def open_holds(client_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, LegalHold]:
    """Each client's oldest open hold, for many clients in one query (clients without one
    are absent)."""
    ids = list(dict.fromkeys(client_ids))
    found: dict[uuid.UUID, LegalHold] = {}
    for start in range(0, len(ids), 500):
        for hold in db.session.scalars(
                select(LegalHold).where(LegalHold.client_id.in_(ids[start:start + 500]),
                                        LegalHold.released_at.is_(None))
                .order_by(LegalHold.placed_at, LegalHold.id)):
            found.setdefault(hold.client_id, hold)
    return found


def open_hold(client_id: uuid.UUID) -> LegalHold | None:
    """The client's oldest open hold, or None."""
    return open_holds([client_id]).get(client_id)


def history(client_id: uuid.UUID) -> list[LegalHold]:
    """Every hold ever placed on the client's record, newest first."""
    return list(db.session.scalars(
        select(LegalHold).where(LegalHold.client_id == client_id)
        .order_by(LegalHold.placed_at.desc(), LegalHold.id)))


def shred_refusal(owner_id: uuid.UUID) -> str | None:
    """A `hooks.shred_guards` check: a held record's keys are never shredded."""
    hold = open_hold(owner_id)
    if hold is None:
        return None
    return (f"the record is under a legal hold ({REASON_LABELS[hold.reason].lower()}, "
            f"since {hold.placed_at:%Y-%m-%d}); release the hold first")


# ----------------------------------------------------------------------------- changing


def _check(actor: User, client: User) -> None:
    if actor is None or actor.role != Role.ADMIN:
        raise RuleError("Only a practice administrator can place or release a legal hold.")
    if client.role != Role.CLIENT:
        raise RuleError("A legal hold is placed on a client's record.")


def place(actor: User, client: User, reason: str | None) -> LegalHold:
    """Place a hold on a client's record (audited `legal_hold.placed.<reason>`)."""
    try:
        _check(actor, client)
        if reason not in HOLD_REASONS:
            raise RuleError("Choose why the record is held.", "reason")
        lock_users(client.id)  # a purge of this client waits, then sees the hold
        same = db.session.scalar(select(LegalHold.id).where(
            LegalHold.client_id == client.id, LegalHold.reason == reason,
            LegalHold.released_at.is_(None)))
        if same is not None:
            raise RuleError(f"This record is already held for {REASON_LABELS[reason].lower()}.",
                            "reason")
        hold = LegalHold(client_id=client.id, reason=reason, placed_at=utcnow(),
                         placed_by_id=actor.id)
        db.session.add(hold)
        db.session.flush()
        record(f"legal_hold.placed.{reason}", actor=actor, target=("legal_hold", hold.id),
               subject_id=client.id, severity="high")
        db.session.commit()
        return hold
    except Exception:
        db.session.rollback()
        raise


def release(actor: User, client: User, hold_id: uuid.UUID | None) -> LegalHold:
    """Release one open hold of this client (audited `legal_hold.released`)."""
    try:
        _check(actor, client)
        lock_users(client.id)
        hold = db.session.get(LegalHold, hold_id) if hold_id is not None else None
        if hold is None or hold.client_id != client.id:
            raise RuleError("That hold is not on this record.")
        if hold.released_at is not None:
            raise RuleError("That hold was already released.")
        hold.released_at = utcnow()
        hold.released_by_id = actor.id
        record("legal_hold.released", actor=actor, target=("legal_hold", hold.id),
               subject_id=client.id, severity="high")
        db.session.commit()
        return hold
    except Exception:
        db.session.rollback()
        raise


# ----------------------------------------------------------------------------- guards

# Only a release moves: released_at (from empty to a time) and who released it.
keep_as_history(LegalHold, HoldHistoryError, HistoryWords(
    changed="a legal hold is history: only its release is recorded",
    undone="a released legal hold stays released",
    deleted="a legal hold is released, never deleted",
    bulk="bulk changes to legal holds are refused; release one at a time"),
    may_change=frozenset({"released_at", "released_by_id"}), set_once="released_at")
