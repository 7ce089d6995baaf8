"""The mail outbox: a message is written in the same transaction as the change that causes it.

The recipient address and the bodies are sealed under the recipient's data key (an invitation
or reset link is a secret until it is used); the subject is a fixed string from
`portal.mail.templates` and carries nothing personal.
"""

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.crypto.fields import sealed_column
from portal.db import new_id, utcnow
from portal.extensions import db


class OutboxMessage(db.Model):
    __tablename__ = "mail_outbox"
    __table_args__ = (
        Index("ix_mail_outbox_due", "sent_at", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True)
    template: Mapped[str] = mapped_column(String(64))
    # Named before the `_sealed`-less rule: queued mail would not open under a new name.
    recipient_sealed: Mapped[bytes] = sealed_column(owner="user_id",
                                                    context_name="recipient_sealed")
    subject: Mapped[str] = mapped_column(String(200))
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

    def __repr__(self) -> str:  # never the address
        state = "sent" if self.sent_at else f"pending, {self.attempts} attempts"
        return f"<OutboxMessage {self.id} {self.template} {state}>"
