"""The mail outbox: a message is written in the same transaction as the change that causes it.

The recipient address and the bodies are sealed under the recipient's data key (an invitation
or reset link is a secret until it is used). So are the template's name and the subject: they
are fixed strings from `portal.mail.templates` with nothing personal in them, but which one a
row holds would tell a thief holding the database who was sent a crisis escalation or an
emergency-access notice. Every sealed value is padded to one size (`framed`, BODY_BLOCK and
NAME_BLOCK), so the lengths say nothing of the template either.
"""

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from portal.crypto.fields import context_for, sealed_column
from portal.crypto.sealing import open_text
from portal.db import new_id, utcnow
from portal.extensions import db

# Each body is sealed as a whole number of blocks of BODY_BLOCK bytes (padded with NULs), the
# template's name and the subject of NAME_BLOCK bytes, so the sealed lengths of an urgent
# notice and of any other mail are the same: every template's text and HTML fit in one block
# today (the longest HTML is about 1.8 KB), every name and subject in one name block.
BODY_BLOCK = 4096
NAME_BLOCK = 128


class OutboxMessage(db.Model):
    __tablename__ = "mail_outbox"
    __table_args__ = (
        Index("ix_mail_outbox_due", "sent_at", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Sealed under the new rule (associated data `mail_outbox.template`, `.subject`);
    # `service.template_of(row)` and `subject_of(row)` open them.
    template_sealed: Mapped[bytes] = sealed_column(owner="user_id")
    subject_sealed: Mapped[bytes] = sealed_column(owner="user_id")
    # Named before the `_sealed`-less rule: queued mail would not open under a new name.
    recipient_sealed: Mapped[bytes] = sealed_column(owner="user_id",
                                                    context_name="recipient_sealed")
    body_text_sealed: Mapped[bytes] = sealed_column(owner="user_id",
                                                    context_name="body_text_sealed")
    body_html_sealed: Mapped[bytes | None] = sealed_column(owner="user_id",
                                                           context_name="body_html_sealed")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]

    # Opened on an instance (a test's `row.template`); in SQL there is nothing to compare:
    # both are sealed, so filter opened rows in Python (`service.template_of`).
    @hybrid_property
    def template(self) -> str:
        return template_of(self)

    @template.inplace.expression
    @classmethod
    def _template_expression(cls):
        raise TypeError("mail_outbox.template is sealed: open rows with mail.template_of")

    @hybrid_property
    def subject(self) -> str:
        return subject_of(self)

    @subject.inplace.expression
    @classmethod
    def _subject_expression(cls):
        raise TypeError("mail_outbox.subject is sealed: open rows with mail.subject_of")

    def __repr__(self) -> str:  # never the address
        state = "sent" if self.sent_at else f"pending, {self.attempts} attempts"
        return f"<OutboxMessage {self.id} {state}>"


def framed(value: str, block: int = BODY_BLOCK) -> bytes:
    """A value followed by NULs up to a whole number of `block`s: what the outbox seals, so
    that no template's mail is a size apart from the others."""
    data = value.encode("utf-8")
    return data.ljust(max(1, -(-len(data) // block)) * block, b"\0")


def unframed(value: str) -> str:
    """A value as `framed` stored it (one sealed before framing has no NULs to strip)."""
    return value.rstrip("\0")


def template_of(row) -> str:
    """The name of the template an outbox row (a model or a plain row) was rendered from."""
    return unframed(open_text(row.user_id, context_for(OutboxMessage.template_sealed, row.id),
                              row.template_sealed))


def subject_of(row) -> str:
    """The subject line of an outbox row, opened."""
    return unframed(open_text(row.user_id, context_for(OutboxMessage.subject_sealed, row.id),
                              row.subject_sealed))
