"""Writing messages: who one may write to, the checks, starting a conversation, replying,
closing and reopening.

Every function takes plain values and the acting user, owns its transaction (commits once,
or rolls back and raises) and writes its audit events with ids only. A refused rule is a
`RuleError` naming the form field it is about.
"""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from portal.accounts.identity import name_of
from portal.accounts.models import Assignment, Role, User
from portal.accounts.service import covering_clinicians, lock_users
from portal.audit import record
from portal.crypto import seal
from portal.db import new_id, utcnow
from portal.errors import RuleError
from portal.extensions import db
from portal.guardians.links import live_minor_ids
from portal.messaging import access, crisis, crisis_state, escalation, notifications
from portal.messaging.access import care_client_of, is_assigned
from portal.messaging.attachments import CheckedFile, Refused, check_file, clean_name
from portal.messaging.models import Attachment, Message, Thread, ThreadStatus
from portal.messaging.reading import mark_read

SUBJECT_MAX = 150
TICK = timedelta(microseconds=1)


class FilesRefused(RuleError):
    """Some chosen files will not be attached: `refused` lists (name, reason) for each."""

    def __init__(self, message: str, refused: Sequence[tuple[str, str]]):
        super().__init__(message, "attachments")
        self.refused = list(refused)


def _config(name: str):
    return current_app.config[name]


def clean_body(body: str | None) -> str:
    """Normalize line breaks and check the length (the form checks it first, as typed)."""
    text = (body or "").replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    limit = _config("MESSAGE_MAX_CHARS")
    if len(text) > limit:
        raise RuleError(f"Your message is {len(text) - limit:,} characters too long. "
                        f"Please keep it to {limit:,} characters.", "body")
    return text.strip("\n")


def clean_subject(subject: str | None) -> str:
    text = " ".join((subject or "").split())
    if not text:
        raise RuleError("Give the conversation a short subject.", "subject")
    if len(text) > SUBJECT_MAX:
        raise RuleError(f"Keep the subject to {SUBJECT_MAX} characters.", "subject")
    return text


def check_files(files: Iterable[tuple[str | None, bytes]]) -> list[CheckedFile]:
    """Check every file; raise FilesRefused naming each refused file and why."""
    files = list(files)
    most = _config("ATTACHMENT_MAX_COUNT")
    if len(files) > most:
        raise RuleError(f"You can attach up to {most} files to one message; you chose "
                        f"{len(files)}.", "attachments")
    checked, refused = [], []
    for name, data in files:
        try:
            checked.append(check_file(name, data, max_bytes=_config("ATTACHMENT_MAX_BYTES")))
        except Refused as problem:
            refused.append((clean_name(name), problem.reason))
    if refused:
        raise FilesRefused("Some files could not be attached.", refused)
    return checked


def counterparts(user: User) -> list[User]:
    """Who the user may start a conversation with: their therapists, or their clients."""
    if user.role == Role.CLIENT:
        partner, mine = Assignment.therapist_id, Assignment.client_id
    elif user.role == Role.THERAPIST:
        partner, mine = Assignment.client_id, Assignment.therapist_id
    else:
        return []
    return list(db.session.scalars(
        select(User).join(Assignment, partner == User.id)
        .where(mine == user.id, User.active.is_(True)).order_by(User.created_at)))


@dataclass(frozen=True)
class GuardianChoices:
    """Whom a parent or guardian may write to: each linked minor's active therapists, and the
    linked minors who have no therapist (nobody to write to here about them yet)."""

    pairs: list[tuple[uuid.UUID, User]]  # (minor id, therapist), by link then assignment
    without_therapist: list[uuid.UUID]

    def value(self, minor_id: uuid.UUID, therapist_id: uuid.UUID) -> str:
        return f"{minor_id}:{therapist_id}"

    def find(self, value: str | None) -> tuple[uuid.UUID, User] | None:
        for minor_id, therapist in self.pairs:
            if value == self.value(minor_id, therapist.id):
                return minor_id, therapist
        return None


def guardian_choices(guardian: User) -> GuardianChoices:
    """A guardian's minors (live links only) and those minors' active therapists."""
    if guardian.role != Role.GUARDIAN:
        return GuardianChoices([], [])
    minors = live_minor_ids(guardian.id)
    if not minors:
        return GuardianChoices([], [])
    rows = db.session.execute(
        select(Assignment.client_id, User).join(User, User.id == Assignment.therapist_id)
        .where(Assignment.client_id.in_(minors), User.active.is_(True),
               User.role == Role.THERAPIST).order_by(User.created_at)).all()
    order = {minor_id: n for n, minor_id in enumerate(minors)}
    pairs = sorted(((minor_id, therapist) for minor_id, therapist in rows),
                   key=lambda pair: order[pair[0]])
    having = {minor_id for minor_id, _ in pairs}
    return GuardianChoices(pairs, [m for m in minors if m not in having])


def practice_contact() -> str:
    """How to reach the practice when nobody can be written to here."""
    profile = current_app.config["PRACTICE"]
    return f"call us at {profile['phone']} or email {profile['email']}"


def can_write_to_practice(user: User) -> bool:
    """A client with no therapist may write to the practice while someone is covering."""
    return (user.role == Role.CLIENT and not counterparts(user)
            and bool(covering_clinicians()))


def start_thread(actor: User, *, counterpart_id: uuid.UUID | None = None, subject: str,
                 body: str, files: Sequence[tuple[str | None, bytes]] = (),
                 notify: bool = True, to_practice: bool = False,
                 about_client_id: uuid.UUID | None = None) -> tuple[Thread, Message]:
    """Start a conversation with an assigned therapist (or client) and send its first message.

    `to_practice`: a client with no therapist writes to the practice; the first covering
    clinician holds the conversation and every covering clinician reads it and is told.
    A parent or guardian writes to a therapist of a minor they are linked to today
    (`about_client_id`): the conversation is the guardian's (sealed under their key) and
    about that minor; a minor with no therapist has nobody to write to here (refused).
    """
    subject, text = clean_subject(subject), clean_body(body)
    if not text.strip():
        raise RuleError("Write your message.", "body")
    checked = check_files(files)
    counterpart = db.session.get(User, counterpart_id) if counterpart_id else None
    if to_practice:
        if actor.role != Role.CLIENT or counterparts(actor):
            raise RuleError("Choose someone from the list.", "recipient")
        lock_users(actor.id, *(c.id for c in covering_clinicians()))
        covering = covering_clinicians()  # again, under the locks
        if not covering:
            raise RuleError("Nobody at the practice is reading messages here right now. "
                            f"Please {practice_contact()}.", "recipient")
        client, therapist = actor, covering[0]
    elif actor.role == Role.CLIENT:
        client, therapist = actor, counterpart
    elif actor.role == Role.THERAPIST:
        client, therapist = counterpart, actor
    elif actor.role == Role.GUARDIAN:
        if about_client_id is None or about_client_id not in live_minor_ids(actor.id):
            raise RuleError("Choose someone from the list.", "recipient")
        client, therapist = actor, counterpart
    else:
        raise RuleError("Only clients, their guardians and their therapists write messages.",
                        "recipient")
    if actor.role != Role.GUARDIAN:
        about_client_id = None
    cared_for = about_client_id or (client.id if client is not None else None)
    if not to_practice and client is not None and therapist is not None:
        # Under the people's locks, so an unassignment running now either sees this new
        # conversation (and refuses or hands it over) or finishes before it is checked.
        lock_users(client.id, therapist.id, cared_for)
    expected_role = Role.GUARDIAN if about_client_id else Role.CLIENT
    if not to_practice and (
            client is None or therapist is None or client.role != expected_role
            or therapist.role != Role.THERAPIST or not counterpart.active
            or not is_assigned(cared_for, therapist.id)):
        raise RuleError("Choose someone from the list.", "recipient")
    try:
        now = utcnow()
        thread = Thread(id=new_id(), client_id=client.id, therapist_id=therapist.id,
                        created_by_id=actor.id, status=ThreadStatus.OPEN, created_at=now,
                        last_message_at=now, message_count=0, client_unread=0,
                        therapist_unread=0, to_practice=to_practice,
                        about_client_id=about_client_id)
        thread.subject_sealed = seal(client.id, thread.subject_context(), subject)
        crisis_state.ensure(thread)  # every thread has one: nothing says which are flagged
        db.session.add(thread)
        db.session.flush()
        record("thread.created", actor=actor, target=("thread", thread.id),
               subject_id=client.id)
        message = _append(thread, actor, text, checked, subject=subject,
                          recipient=counterpart, notify=notify)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return thread, message


def reply(actor: User, thread_id: uuid.UUID, *, body: str,
          files: Sequence[tuple[str | None, bytes]] = (), notify: bool = True) -> Message:
    """Add a message to a conversation the actor takes part in (reopens a closed one)."""
    text = clean_body(body)
    checked = check_files(files)
    if not text.strip() and not checked:
        raise RuleError("Write your message, or attach a file.", "body")
    try:
        thread = access.thread_for(actor, thread_id, write=True)  # takes the row lock
        cared_for = care_client_of(thread)
        if (actor.role in (Role.CLIENT, Role.GUARDIAN) and not thread.to_practice
                and not is_assigned(cared_for, thread.therapist_id)):
            has_therapist = db.session.scalar(
                select(User.id).join(Assignment, Assignment.therapist_id == User.id)
                .where(Assignment.client_id == cared_for, User.active.is_(True))
                .limit(1)) is not None
            profile = current_app.config["PRACTICE"]
            if thread.about_client_id is not None:
                minor = db.session.get(User, thread.about_client_id)
                name = name_of(minor) if minor is not None else "this young person"
                raise RuleError(
                    "This conversation is read-only now: this therapist is no longer "
                    f"caring for {name}. " + (
                        f"You can start a new conversation with {name}'s current "
                        "therapist." if has_therapist else
                        f"No other therapist is caring for {name} yet, so please reach the "
                        f"practice by phone at {profile['phone']} or by email at "
                        f"{profile['email']}."), "body")
            raise RuleError("This conversation is read-only now: this therapist is no "
                            "longer assigned to you. " + (
                                "You can start a new conversation with your current "
                                "therapist." if has_therapist else
                                "No other therapist is assigned to you yet, so please "
                                f"reach the practice by phone at {profile['phone']} or "
                                f"by email at {profile['email']}."), "body")
        other_id = thread.therapist_id if actor.id == thread.client_id else thread.client_id
        recipient = db.session.get(User, other_id)
        message = _append(thread, actor, text, checked, recipient=recipient, notify=notify)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return message


def _append(thread: Thread, sender: User, text: str, files: list[CheckedFile], *,
            recipient: User | None, notify: bool, subject: str | None = None) -> Message:
    """Write one message, its attachments and the thread's state (caller holds the lock)."""
    now = utcnow()
    if thread.message_count and now <= thread.last_message_at:
        now = thread.last_message_at + TICK  # keep a thread's order strict under concurrency
    owner = thread.client_id
    from_client = sender.id == thread.client_id
    flagged = from_client and crisis.matches(subject, text)
    message = Message(id=new_id(), thread_id=thread.id, sender_id=sender.id,
                      sender_role=str(sender.role), created_at=now)
    message.body_sealed = seal(owner, message.body_context(), text)
    message.crisis_sealed = crisis_state.seal_message_flag(owner, message.id, flagged)
    message.sent_flagged = flagged
    rows: list[object] = [message]
    for position, checked in enumerate(files):
        attachment = Attachment(id=new_id(), message_id=message.id, position=position,
                                kind=checked.kind.key, size=checked.size, created_at=now)
        attachment.name_sealed = seal(owner, attachment.name_context(), checked.name)
        attachment.content_sealed = seal(owner, attachment.content_context(), checked.data)
        rows.append(attachment)
    db.session.add_all(rows)

    thread.last_message_at = now
    thread.message_count = (thread.message_count or 0) + 1
    if (thread.client_unread if from_client else thread.therapist_unread):
        mark_read(sender, thread, now, locked=True)  # answering means having read it
    if from_client:
        thread.therapist_unread = (thread.therapist_unread or 0) + 1
        if thread.awaiting_since is None:
            thread.awaiting_since = now
    else:
        thread.client_unread = (thread.client_unread or 0) + 1
        thread.awaiting_since = None
    if thread.status == ThreadStatus.CLOSED:
        thread.status, thread.closed_at, thread.closed_by_id = ThreadStatus.OPEN, None, None
        record("thread.reopened", actor=sender, target=("thread", thread.id),
               subject_id=owner)
    state = crisis_state.state_of(thread)
    if from_client and flagged:
        state = escalation.flagged(state, message.id, now)
    elif not from_client and state.escalate_at is not None:
        # A reply stops the escalation timer; the flag stays until marked "seen and acted on".
        state = replace(state, escalate_at=None)
    if not state.unreadable or flagged:  # a state that will not open is kept for inquiry
        crisis_state.write(thread, state)  # resealed on every message, flagged or not
    if notify and thread.to_practice and from_client:
        notifications.notify_practice(thread, now=now, urgent=flagged)
    elif notify:
        notifications.notify(thread, recipient, now=now, urgent=flagged)
    # Whether it was flagged is a sealed detail of the ordinary send event, on every send.
    record("message.sent", actor=sender, target=("message", message.id), subject_id=owner,
           detail={"crisis": flagged})
    return message


def set_closed(actor: User, thread_id: uuid.UUID, closed: bool) -> None:
    """Mark a conversation closed (therapists) or open again (therapists; clients by replying)."""
    try:
        thread = access.thread_for(actor, thread_id, write=True)
        if actor.id != thread.therapist_id and not (thread.to_practice and actor.covering):
            raise RuleError("Only the therapist can close or reopen a conversation.")
        if closed and thread.status != ThreadStatus.CLOSED:
            thread.status, thread.closed_at, thread.closed_by_id = (
                ThreadStatus.CLOSED, utcnow(), actor.id)
            thread.awaiting_since = None  # a crisis flag stays until marked seen and acted on
            record("thread.closed", actor=actor, target=("thread", thread.id),
                   subject_id=thread.client_id)
        elif not closed and thread.status == ThreadStatus.CLOSED:
            thread.status, thread.closed_at, thread.closed_by_id = ThreadStatus.OPEN, None, None
            record("thread.reopened", actor=actor, target=("thread", thread.id),
                   subject_id=thread.client_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
