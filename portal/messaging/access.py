"""Who may see a conversation, a message, an attachment or an emergency grant.

A thread is visible to its client, to its therapist while the client is still assigned to
them, to every covering clinician when it was written to the practice, and to an
administrator only under a live emergency grant for that client (read-only). Everything
else, whatever the id, is a 404, so the answer does not even say that the object exists.
Every messaging page and service loads these rows through this module only.

A parent or guardian's conversation (`Thread.about_client_id` set) is theirs: `client_id` is
the guardian, whose data key seals it, and it is about one minor client. The guardian sees it
while their link to that minor is live (`portal.guardians.links.live_minor_ids`: unlinked, or
the minor's 18th birthday, and it is a 404 for them; the therapist keeps it). The therapist
sees it while assigned to the minor (`care_client`: the minor for a guardian's conversation,
else the client). A minor's own conversations are never a guardian's, in any state: a
guardian only ever matches threads whose `client_id` is the guardian. Emergency access is to
one client's own conversations and does not reach the guardians' conversations about them.
A grant names its client only by a keyed blind index (`emergency_index`), so the check loads
the thread first and then looks for the administrator's live grant for its client's index.
"""

import uuid
from dataclasses import dataclass

from flask import abort
from sqlalchemy import Uuid, and_, bindparam, exists, false, func, or_, select
from sqlalchemy.orm import undefer

from portal.accounts.models import Assignment, Role
from portal.db import utcnow
from portal.extensions import db
from portal.guardians.links import live_minor_ids
from portal.messaging.emergency_index import client_index
from portal.messaging.models import Attachment, EmergencyGrant, Message, Thread


@dataclass(frozen=True)
class ThreadAccess:
    """A thread the user may see, and how: as a participant, or under an emergency grant."""

    thread: Thread
    grant: EmergencyGrant | None = None

    @property
    def emergency(self) -> bool:
        return self.grant is not None

    @property
    def can_write(self) -> bool:
        return self.grant is None


# Prebuilt statements name their parameters' types: a foreign key column has no type of its
# own until the table it points at is defined, which depends on the order of imports.
_ASSIGNMENT = select(Assignment.id).where(
    Assignment.client_id == bindparam("client_id", type_=Uuid()),
    Assignment.therapist_id == bindparam("therapist_id", type_=Uuid()))


def is_assigned(client_id: uuid.UUID, therapist_id: uuid.UUID) -> bool:
    """Is this therapist (still) assigned to this client?"""
    return db.session.execute(
        _ASSIGNMENT, {"client_id": client_id, "therapist_id": therapist_id}).first() is not None


def care_client():
    """SQL: the client in whose care the thread is (the minor of a guardian's conversation)."""
    return func.coalesce(Thread.about_client_id, Thread.client_id)


def care_client_of(thread: Thread) -> uuid.UUID:
    """The client in whose care this thread is (the minor of a guardian's conversation)."""
    return thread.about_client_id or thread.client_id


def guardian_clause(user):
    """SQL: the guardian's own conversations about a minor they are linked to today."""
    minors = live_minor_ids(user.id)
    if not minors:
        return false()
    return and_(Thread.client_id == user.id, Thread.about_client_id.in_(minors))


def _participant_clause(user):
    """SQL for "the user takes part in this thread" (a client, a guardian while linked, or an
    assigned therapist)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.active:
        return false()
    if user.role == Role.CLIENT:
        return and_(Thread.client_id == user.id, Thread.about_client_id.is_(None))
    if user.role == Role.GUARDIAN:
        return guardian_clause(user)
    if user.role == Role.THERAPIST:
        own = and_(Thread.therapist_id == user.id,
                   exists(select(Assignment.id).where(Assignment.client_id == care_client(),
                                                      Assignment.therapist_id == user.id)))
        # A covering clinician also reads what clients wrote to the practice.
        return or_(own, Thread.to_practice) if user.covering else own
    return false()


def _live_grant(user, client_id: uuid.UUID) -> EmergencyGrant | None:
    """The administrator's live emergency grant for this client (the longest-lived), if any."""
    return db.session.scalar(
        select(EmergencyGrant).where(EmergencyGrant.client_index == client_index(client_id),
                                     EmergencyGrant.admin_id == user.id,
                                     EmergencyGrant.ended_at.is_(None),
                                     EmergencyGrant.expires_at > utcnow())
        .order_by(EmergencyGrant.expires_at.desc()).limit(1))


def _is_emergency_admin(user) -> bool:
    return (user is not None and getattr(user, "is_authenticated", False) and user.active
            and user.role == Role.ADMIN and user.mfa_enabled)


def thread_access(user, thread_id: uuid.UUID, *, write: bool = False) -> ThreadAccess:
    """Return the thread and how the user may see it, or abort with 404.

    `write=True` (replying, closing) admits participants only and takes the thread's row
    lock, so concurrent sends to one thread queue instead of overwriting each other.
    """
    if not isinstance(thread_id, uuid.UUID):
        abort(404)
    stmt = select(Thread).where(Thread.id == thread_id, _participant_clause(user))
    if write:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    thread = db.session.scalar(stmt)
    if thread is not None:
        return ThreadAccess(thread)
    if not write and _is_emergency_admin(user):
        thread = db.session.scalar(select(Thread).where(Thread.id == thread_id))
        grant = _live_grant(user, thread.client_id) if thread is not None else None
        if grant is not None:
            return ThreadAccess(thread, grant)
    abort(404)


def thread_for(user, thread_id: uuid.UUID, *, write: bool = False) -> Thread:
    """Return the thread if the user may see it (write: take part in it), else 404."""
    return thread_access(user, thread_id, write=write).thread


def message_for(user, message_id: uuid.UUID, *, thread_id: uuid.UUID | None = None
                ) -> Message:
    """Return a message of a thread the user may see (optionally: of this thread), else 404."""
    if not isinstance(message_id, uuid.UUID):
        abort(404)
    stmt = select(Message).join(Thread, Thread.id == Message.thread_id).where(
        Message.id == message_id)
    if thread_id is not None:
        stmt = stmt.where(Message.thread_id == thread_id)
    message = db.session.scalar(stmt.where(_participant_clause(user)))
    if message is None and _is_emergency_admin(user):
        row = db.session.execute(stmt.add_columns(Thread.client_id)).first()
        if row is not None and _live_grant(user, row[1]) is not None:
            message = row[0]
    if message is None:
        abort(404)
    return message


def attachment_for(user, attachment_id: uuid.UUID, *, with_content: bool = False
                   ) -> tuple[Attachment, ThreadAccess]:
    """Return an attachment the user may download, with its thread access, else 404."""
    if not isinstance(attachment_id, uuid.UUID):
        abort(404)
    base = (select(Attachment, Thread)
            .join(Message, Message.id == Attachment.message_id)
            .join(Thread, Thread.id == Message.thread_id)
            .where(Attachment.id == attachment_id))
    if with_content:
        base = base.options(undefer(Attachment.content_sealed))
    row = db.session.execute(base.where(_participant_clause(user))).first()
    if row is not None:
        return row[0], ThreadAccess(row[1])
    if _is_emergency_admin(user):
        # Whose file it is first, without its content: only a live grant loads the bytes.
        owner = db.session.scalar(
            select(Thread.client_id).join(Message, Message.thread_id == Thread.id)
            .join(Attachment, Attachment.message_id == Message.id)
            .where(Attachment.id == attachment_id))
        grant = _live_grant(user, owner) if owner is not None else None
        row = db.session.execute(base).first() if grant is not None else None
        if row is not None:
            return row[0], ThreadAccess(row[1], grant)
    abort(404)


def emergency_grant_for(user, grant_id: uuid.UUID) -> EmergencyGrant:
    """Return the administrator's own live emergency grant, else 404."""
    if not isinstance(grant_id, uuid.UUID) or not _is_emergency_admin(user):
        abort(404)
    grant = db.session.scalar(select(EmergencyGrant).where(
        EmergencyGrant.id == grant_id, EmergencyGrant.admin_id == user.id,
        EmergencyGrant.ended_at.is_(None), EmergencyGrant.expires_at > utcnow()))
    if grant is None:
        abort(404)
    return grant
