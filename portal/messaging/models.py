"""Threads, messages, attachments and emergency access grants.

Every subject, body, attachment name and attachment byte is sealed under the client's data key
(the owner is always the thread's client), with a Context naming table, column and row id.
Row ids are made in Python (`new_id()`) before sealing, because they are part of the sealed
value's associated data. Messages are immutable once sent: nothing here edits or deletes one.
"""

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, UniqueConstraint, select, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.crypto import Context, context_for, sealed_column
from portal.db import new_id, utcnow
from portal.extensions import db


class ThreadStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Thread(db.Model):
    """A conversation between one client and one of their therapists.

    The unread counters, the waiting time and the (sealed) crisis state are kept on the row so
    the inbox, the dashboard and the navigation badges read one row per conversation. They are
    changed only under the row's lock (see service.py), so concurrent sends lose nothing.
    """

    __tablename__ = "message_threads"
    __table_args__ = (
        Index("ix_message_threads_client_last", "client_id", "last_message_at"),
        Index("ix_message_threads_therapist_last", "therapist_id", "last_message_at"),
        Index("ix_message_threads_therapist_awaiting", "therapist_id", "awaiting_since"),
        # The navigation badges read only the conversations with something unread.
        Index("ix_message_threads_therapist_unread", "therapist_id", "therapist_unread",
              postgresql_where=text("therapist_unread > 0"),
              sqlite_where=text("therapist_unread > 0")),
        Index("ix_message_threads_client_unread", "client_id", "client_unread",
              postgresql_where=text("client_unread > 0"),
              sqlite_where=text("client_unread > 0")),
        Index("ix_message_threads_to_practice", "to_practice", "last_message_at",
              postgresql_where=text("to_practice"), sqlite_where=text("to_practice")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    therapist_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    # A guardian's conversation is about one minor client (`client_id` is then the guardian,
    # whose key seals it): the minor's therapist reads it while assigned to the minor, the
    # guardian while their link to the minor lasts. None for a client's own conversation.
    about_client_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    subject_sealed: Mapped[bytes] = sealed_column(owner="client_id")
    status: Mapped[str] = mapped_column(String(16), default=ThreadStatus.OPEN)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_message_at: Mapped[datetime] = mapped_column(default=utcnow)
    message_count: Mapped[int] = mapped_column(default=0)
    # Messages the client / the therapist has not read yet.
    client_unread: Mapped[int] = mapped_column(default=0)
    therapist_unread: Mapped[int] = mapped_column(default=0)
    # When the client's oldest message since the therapist's last reply was sent.
    awaiting_since: Mapped[datetime | None]
    # The crisis flag, its "seen and acted on" and its escalation timer, sealed as one
    # fixed-width state on every thread, flagged or not (see crisis_state.py): nothing at rest
    # says which conversations were flagged.
    crisis_sealed: Mapped[bytes] = sealed_column(owner="client_id")
    # Written to the practice (a client with no therapist): every covering clinician reads it.
    to_practice: Mapped[bool] = mapped_column(default=False)
    # The conversation was handed over from another therapist and its new one has not opened
    # it yet (the dashboard's handover marker); `handed_over_from_id` is who had it before.
    handed_over_at: Mapped[datetime | None]
    handed_over_from_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))
    closed_at: Mapped[datetime | None]
    closed_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))
    # Notifications: the last time each side was emailed about this conversation, and the
    # outbox row of a notice still waiting to go (withdrawn when they read the thread first).
    client_notified_at: Mapped[datetime | None]
    therapist_notified_at: Mapped[datetime | None]
    client_notice_id: Mapped[uuid.UUID | None]
    therapist_notice_id: Mapped[uuid.UUID | None]

    @property
    def is_closed(self) -> bool:
        return self.status == ThreadStatus.CLOSED

    def subject_context(self) -> Context:
        return context_for(Thread.subject_sealed, self.id)

    def __repr__(self) -> str:  # never the subject
        return f"<Thread {self.id} {self.status}>"


class Message(db.Model):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_thread_created", "thread_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    thread_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("message_threads.id", ondelete="RESTRICT"))
    sender_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"),
                                                 index=True)
    sender_role: Mapped[str] = mapped_column(String(16))
    body_sealed: Mapped[bytes] = sealed_column(owner=lambda: _message_owner())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the other participant first read it (the read receipt).
    read_at: Mapped[datetime | None]
    # "1" or "0", sealed (randomized, padded) on every message: whether the crisis check
    # flagged it (crisis_state.py). `sent_flagged` is not a column: sending sets it on the
    # message it returns, so the page after sending knows without opening the seal.
    crisis_sealed: Mapped[bytes] = sealed_column(owner=lambda: _message_owner())
    sent_flagged = False

    attachments: Mapped[list["Attachment"]] = relationship(
        back_populates="message", lazy="raise", order_by="Attachment.position")

    def body_context(self) -> Context:
        return body_context(self.id)

    def __repr__(self) -> str:  # never the body
        return f"<Message {self.id}>"


class Attachment(db.Model):
    __tablename__ = "message_attachments"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("messages.id", ondelete="RESTRICT"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(String(8))  # a key of attachments.KINDS
    size: Mapped[int]
    name_sealed: Mapped[bytes] = sealed_column(owner=lambda: _attachment_owner())
    # Up to 10 MB: deferred, so listing a thread never reads the files themselves.
    content_sealed: Mapped[bytes] = sealed_column(owner=lambda: _attachment_owner(), lazy=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    message: Mapped[Message] = relationship(back_populates="attachments", lazy="raise")

    def name_context(self) -> Context:
        return attachment_name_context(self.id)

    def content_context(self) -> Context:
        return context_for(Attachment.content_sealed, self.id)

    def __repr__(self) -> str:  # never the name
        return f"<Attachment {self.id} {self.kind} {self.size}>"


def body_context(message_id: uuid.UUID) -> Context:
    """Where a message body is sealed (pages that read plain rows, not models, use this)."""
    return context_for(Message.body_sealed, message_id)


def attachment_name_context(attachment_id: uuid.UUID) -> Context:
    return context_for(Attachment.name_sealed, attachment_id)


class Draft(db.Model):
    """Words being typed into a form, saved as they are typed so an idle sign-out loses none.

    One per person and form (`form_key`, e.g. "compose", "reply:<thread id>"); the fields are
    sealed (JSON) under `owner_id`'s data key: the client whose record the words will join.
    Deleted when the form is sent or discarded, purged after DRAFT_DAYS.
    """

    __tablename__ = "drafts"
    __table_args__ = (
        UniqueConstraint("author_id", "form_key", name="uq_drafts_author_form"),
        Index("ix_drafts_updated_at", "updated_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                                index=True)
    form_key: Mapped[str] = mapped_column(String(80))
    content_sealed: Mapped[bytes] = sealed_column(owner="owner_id")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def content_context(self) -> Context:
        return context_for(Draft.content_sealed, self.id)

    def __repr__(self) -> str:  # never the words
        return f"<Draft {self.id}>"


class EmergencyGrant(db.Model):
    """An administrator's time-limited, read-only access to one client's conversations.

    Which client a grant concerns is not readable at rest (#17). `client_index` is a keyed
    blind index of the client's id (HMAC-SHA256 under the "emergency-index" subkey of
    PORTAL_INDEX_KEY, which lives outside the database: `emergency_index.client_index`), so
    the access checks and the client's access log find a client's grants from the client's
    id, as sign-in finds an email; `client_sealed` is the client's id itself, sealed, for the
    pages that start from the grant (the administrator's list of grants, the grant's page).

    The written reason may mention the client's situation, so it is sealed and never copied
    into the audit trail or an email. Both sealed values are sealed under the administrator's
    data key (owner "admin_id"): a sealed column's owner must be a column of its row (rotation,
    status and shredding derive it from there), and the client's id is exactly what the row
    must not hold; the grant is the administrator's act, and which administrator opened
    grants says nothing about whom. So shredding the client's key does not reach the reason:
    the retention purge deletes a purged client's grants itself (found by the index).
    """

    __tablename__ = "emergency_access_grants"
    __table_args__ = (
        Index("ix_emergency_access_grants_admin_client", "admin_id", "client_index",
              "expires_at"),
        Index("ix_emergency_access_grants_client", "client_index"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    admin_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    client_index: Mapped[bytes] = mapped_column(LargeBinary(32))
    client_sealed: Mapped[bytes] = sealed_column(owner="admin_id")
    reason_sealed: Mapped[bytes] = sealed_column(owner="admin_id")
    # A fixed category (a key of emergency.REASON_CATEGORIES), safe to show in the client's
    # access log and in emails, unlike the written reason.
    reason_category: Mapped[str] = mapped_column(String(32), default="other")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]

    def reason_context(self) -> Context:
        return context_for(EmergencyGrant.reason_sealed, self.id)

    def client_context(self) -> Context:
        return context_for(EmergencyGrant.client_sealed, self.id)

    def is_active(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        return self.ended_at is None and self.expires_at > now

    def __repr__(self) -> str:  # never the reason, nor whose grant it is
        return f"<EmergencyGrant {self.id}>"


def _message_owner():
    """A message's body is sealed under its thread's client's key."""
    return select(Thread.client_id).where(Thread.id == Message.thread_id).scalar_subquery()


def _attachment_owner():
    return (select(Thread.client_id).join(Message, Message.thread_id == Thread.id)
            .where(Message.id == Attachment.message_id).scalar_subquery())
