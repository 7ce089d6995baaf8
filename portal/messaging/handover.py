"""Care handover: when a therapist leaves a client's care, their conversations go to someone.

Removing a therapist from a client, or deactivating a therapist, first shows what is at stake
(`stakes`, `therapist_stakes`) and then moves every conversation of that client and therapist,
open or closed, with its whole history, to a therapist the administrator chose (`hand_over`).
The new therapist is assigned if they were not already, sees the conversations at the top of
their dashboard with a handover marker until they open them, and is emailed; so is the client
(the new therapist's name only). Each function is one transaction, under the people's row
locks (`accounts.service.lock_users`), and the care checks run before it commits, so an
open conversation is never left with nobody to read it.

A parent or guardian's conversations about the client (`Thread.about_client_id`) are in the
client's care too: they count in the stakes and move with the client's own conversations (the
guardian keeps reading them while linked; they are not emailed about the change).

Estimates in progress are counted by the admin screens (messaging does not import
estimates).
"""

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from portal.accounts import service as accounts
from portal.accounts.identity import email_of, name_of, names_by_id
from portal.accounts.models import Assignment, Role, User
from portal.audit import record
from portal.db import utcnow
from portal.errors import RuleError
from portal.extensions import db
from portal.mail import enqueue
from portal.messaging import crisis_state, notifications
from portal.messaging.access import care_client
from portal.messaging.models import Thread, ThreadStatus

TO_THERAPIST = "handover_to_therapist"
TO_CLIENT = "handover_to_client"


@dataclass(frozen=True)
class Stakes:
    """What moves when a therapist leaves one client's care."""

    open_conversations: int = 0
    closed_conversations: int = 0
    unread: int = 0  # client messages the therapist has not read
    crisis: int = 0  # conversations with a crisis flag nobody has acknowledged

    @property
    def conversations(self) -> int:
        return self.open_conversations + self.closed_conversations


@dataclass(frozen=True)
class Candidate:
    """A therapist who could take a client's conversations over, and why they are offered."""

    id: uuid.UUID
    name: str
    group: str  # "caring" (already assigned), "covering" (on call), "other"


GROUP_LABELS = {"caring": "Already caring for this client",
                "covering": "Covering clinicians (on call)",
                "other": "Other therapists"}


def _stakes_by_client(therapist_id: uuid.UUID, client_id: uuid.UUID | None = None
                      ) -> dict[uuid.UUID, Stakes]:
    """Counted here, not in SQL: whether a flag waits for "seen and acted on" is sealed in
    each conversation's crisis state, so every one of them is opened (one key query)."""
    cared_for = care_client()
    stmt = (select(Thread.id, Thread.client_id, Thread.crisis_sealed,  # for open_states
                   cared_for.label("cared_for"), Thread.status, Thread.therapist_unread)
            .where(Thread.therapist_id == therapist_id))
    if client_id is not None:
        stmt = stmt.where(cared_for == client_id)
    rows = db.session.execute(stmt).all()
    states = crisis_state.open_states(rows)
    totals: dict[uuid.UUID, list[int]] = {}
    for row in rows:
        counts = totals.setdefault(row.cared_for, [0, 0, 0, 0])
        counts[0 if row.status == ThreadStatus.OPEN else 1] += 1
        counts[2] += row.therapist_unread or 0
        if states[row.id.hex].unacknowledged():
            counts[3] += 1
    return {key: Stakes(*counts) for key, counts in totals.items()}


def stakes(client: User, therapist: User | uuid.UUID) -> Stakes:
    """What is at stake when this therapist leaves this client's care."""
    therapist_id = therapist if isinstance(therapist, uuid.UUID) else therapist.id
    return _stakes_by_client(therapist_id, client.id).get(client.id, Stakes())


def therapist_stakes(therapist: User) -> dict[uuid.UUID, Stakes]:
    """By client: what is at stake for each client who has conversations with this therapist."""
    return _stakes_by_client(therapist.id)


def candidates(client: User, leaving_id: uuid.UUID) -> list[Candidate]:
    """Who may take this client's conversations over from `leaving_id`: therapists already
    caring for the client first, then the covering clinicians (on call), then every other
    active therapist; each group by name."""
    therapists = list(db.session.scalars(select(User).where(
        User.role == Role.THERAPIST, User.active.is_(True), User.id != leaving_id)))
    assigned = set(db.session.scalars(select(Assignment.therapist_id).where(
        Assignment.client_id == client.id)))
    names = names_by_id([t.id for t in therapists])
    order = {"caring": 0, "covering": 1, "other": 2}
    found = [Candidate(t.id, names.get(t.id, ""),
                       "caring" if t.id in assigned else "covering" if t.covering else "other")
             for t in therapists]
    return sorted(found, key=lambda c: (order[c.group], c.name.casefold(), str(c.id)))


@dataclass(frozen=True)
class Handover:
    """What a handover did: conversations moved, and whether the assignment was removed."""

    moved: int
    unassigned: bool


def _target(client: User, from_therapist_id: uuid.UUID, to_therapist_id) -> User:
    """The therapist taking over, checked under the lock (refused: nothing changes)."""
    target = None
    if isinstance(to_therapist_id, uuid.UUID):
        target = db.session.get(User, to_therapist_id, populate_existing=True)
    if target is None or target.role != Role.THERAPIST:
        raise RuleError("Choose a therapist to take the conversations over.", "therapist")
    if target.id == from_therapist_id:
        raise RuleError("Choose someone other than the therapist who is leaving.",
                        "therapist")
    if not target.active:
        raise RuleError(f"{name_of(target)}'s account is deactivated. Choose an active "
                        "therapist.", "therapist")
    return target


def _hand_over(actor: User, client: User, from_therapist_id: uuid.UUID,
               to_therapist_id: uuid.UUID | None) -> Handover:
    """Move the conversations and remove the assignment, without committing.

    With no conversation to move, `to_therapist_id` is not needed (and not assigned).
    """
    if client.role != Role.CLIENT:
        raise RuleError("Only a client's conversations are handed over.")
    accounts.lock_users(*{client.id, from_therapist_id,
                          *([to_therapist_id] if isinstance(to_therapist_id, uuid.UUID)
                            else [])})
    threads = list(db.session.scalars(
        select(Thread).where(care_client() == client.id,
                             Thread.therapist_id == from_therapist_id)
        .order_by(Thread.created_at, Thread.id)
        .with_for_update().execution_options(populate_existing=True)))
    if not threads:  # nothing to move: a plain unassignment (the care checks still run)
        return Handover(0, accounts.remove_assignment(actor, client, from_therapist_id))
    target = _target(client, from_therapist_id, to_therapist_id)
    accounts.add_assignment(actor, client, target)
    now = utcnow()
    urgent = None
    for thread in threads:
        # A notice still waiting for the therapist who is leaving is theirs: withdraw it,
        # and start the new therapist's throttle afresh.
        notifications.withdraw(thread, from_therapist_id, now=now)
        thread.therapist_notified_at = None
        thread.therapist_id = target.id
        thread.handed_over_at = now
        thread.handed_over_from_id = from_therapist_id
        if urgent is None and crisis_state.state_of(thread).unacknowledged():
            urgent = thread
        # The thread's owner (a guardian, for their conversation) is its audit subject.
        record("thread.handed_over", actor=actor, target=("thread", thread.id),
               subject_id=thread.client_id)
    if urgent is not None:
        notifications.notify(urgent, target, now=now, urgent=True)
    unassigned = accounts.remove_assignment(actor, client, from_therapist_id)
    record("care.handed_over", actor=actor, target=("user", client.id), subject_id=client.id)
    _mail(target, TO_THERAPIST, link=notifications.sign_in_link())
    if client.active:
        _mail(client, TO_CLIENT, link=notifications.sign_in_link(), staff_name=name_of(target))
    return Handover(len(threads), unassigned)


def _mail(user: User, template: str, **context) -> None:
    address = email_of(user)
    if address:
        enqueue(user, template, to_address=address, **context)


def hand_over(actor: User, client: User, from_therapist_id: uuid.UUID,
              to_therapist_id: uuid.UUID | None) -> Handover:
    """Remove `from_therapist_id` from the client's care, handing every conversation they had
    with the client (open and closed, with its whole history) to `to_therapist_id`.

    The target must be an active therapist other than the one leaving; one not yet assigned
    to the client is assigned. A crisis flag nobody has acknowledged sends the target the
    urgent notice. Refused (RuleError, field "therapist"; nothing changed) otherwise, and when
    the change would leave an open conversation nobody can read. One transaction.
    """
    try:
        done = _hand_over(actor, client, from_therapist_id, to_therapist_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return done


class MissingTargets(RuleError):
    """Deactivating a therapist: some clients' conversations have nobody chosen for them."""

    def __init__(self, client_ids: list[uuid.UUID]):
        count = len(client_ids)
        super().__init__(
            f"Choose who takes over the conversations of {count} "
            f"client{'s' if count != 1 else ''} first; nothing was changed.", "therapist")
        self.client_ids = client_ids


def clients_with_conversations(therapist: User) -> list[uuid.UUID]:
    """The clients in whose care this therapist has conversations (a guardian's conversation
    counts for its minor)."""
    return list(db.session.scalars(select(care_client()).where(
        Thread.therapist_id == therapist.id).distinct()))


def deactivate_therapist(actor: User, therapist: User,
                         targets: dict[uuid.UUID, uuid.UUID]) -> dict[uuid.UUID, Handover]:
    """Hand every client's conversations with this therapist to the therapist chosen for that
    client (`targets`: client id -> therapist id), then deactivate the therapist; one commit.

    Refused, with nothing changed, when a client with conversations has no target
    (MissingTargets names them), when a target is refused, or by the care checks.
    """
    if therapist.role != Role.THERAPIST:
        raise RuleError("Only a therapist's clients are handed over.")
    if therapist.id == actor.id:
        raise RuleError("You cannot deactivate your own account.")
    try:
        client_ids = sorted(clients_with_conversations(therapist), key=str)
        wanted = {targets.get(c) for c in client_ids} - {None}
        accounts.lock_users(therapist.id, *client_ids,
                            *(t for t in wanted if isinstance(t, uuid.UUID)))
        client_ids = sorted(clients_with_conversations(therapist), key=str)  # under the lock
        missing = [c for c in client_ids if targets.get(c) is None]
        if missing:
            raise MissingTargets(missing)
        done = {}
        for client_id in client_ids:
            client = db.session.get(User, client_id)
            done[client_id] = _hand_over(actor, client, therapist.id, targets[client_id])
        accounts.deactivate(actor, therapist)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return done
