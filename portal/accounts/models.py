"""Users, their sessions, one-time tokens, recovery codes, sign-in history and assignments.

Names, emails and TOTP seeds are sealed (portal.crypto); look-up by email uses a blind index.
"""

import enum
import secrets
import uuid
from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.crypto.fields import sealed_column
from portal.db import new_id, utcnow
from portal.extensions import db


class Role(enum.StrEnum):
    CLIENT = "client"
    THERAPIST = "therapist"
    ADMIN = "admin"
    # A parent or guardian of one or more minor clients (portal.guardians): their own
    # conversations with the minor's therapist, never the minor's.
    GUARDIAN = "guardian"


def new_alt_id() -> str:
    """Return the random per-user id Flask-Login stores; rotating it ends every session."""
    return secrets.token_urlsafe(32)


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    alt_id: Mapped[str] = mapped_column(String(64), unique=True, default=new_alt_id)
    role: Mapped[str] = mapped_column(String(16))
    email_index: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    email_sealed: Mapped[bytes] = sealed_column(owner="id")
    # The name they go by: shown everywhere in the portal and in emails.
    name_sealed: Mapped[bytes] = sealed_column(owner="id")
    # A client's legal name, used only where the law needs it (Good Faith Estimates, the
    # record export's legal section); None means the same as the name they go by.
    legal_name_sealed: Mapped[bytes | None] = sealed_column(owner="id")
    pronouns_sealed: Mapped[bytes | None] = sealed_column(owner="id")
    # Staff only, shown on the client's side: "LPC", "usually replies within a day".
    credentials: Mapped[str | None] = mapped_column(String(40))
    reply_hours: Mapped[str | None] = mapped_column(String(120))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    password_disabled: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    totp_seed_sealed: Mapped[bytes | None] = sealed_column(owner="id")
    totp_enabled_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None]
    failed_signins: Mapped[int] = mapped_column(default=0)
    total_failed_signins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    mfa_prompt_dismissed: Mapped[bool] = mapped_column(default=False)
    # A therapist the practice names as a covering clinician (on call): reads messages written
    # to the practice and receives crisis escalations.
    covering: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_signin_at: Mapped[datetime | None]
    # A client's last date of service as staff record it (discharge or last session): the
    # retention clock runs from the later of this and the last portal activity.
    last_service_on: Mapped[date | None] = mapped_column(Date)

    # Flask-Login protocol, written out so nothing hides in a mixin.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return self.alt_id

    @property
    def mfa_enabled(self) -> bool:
        return self.totp_enabled_at is not None

    @property
    def is_staff(self) -> bool:
        return self.role in (Role.THERAPIST, Role.ADMIN)

    def __repr__(self) -> str:  # never a name or an email
        return f"<User {self.id} {self.role}>"


class UserSession(db.Model):
    """A server-side sign-in session; the cookie holds a token whose hash is the key."""

    __tablename__ = "user_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                               index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Where and on what it signed in (an IP address is a HIPAA identifier): sealed, opened
    # only for the Account page (`sessions.shown_for`); purged with the session.
    ip_sealed: Mapped[bytes | None] = sealed_column(owner="user_id")
    user_agent_sealed: Mapped[bytes | None] = sealed_column(owner="user_id")
    mfa_verified: Mapped[bool] = mapped_column(default=False)

    user: Mapped[User] = relationship(lazy="joined")


class TokenPurpose(enum.StrEnum):
    INVITATION = "invitation"
    RESET = "reset"


class OneTimeToken(db.Model):
    """An invitation or password-reset link; only the SHA-256 of the token is stored."""

    __tablename__ = "one_time_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                               index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class EmailChange(db.Model):
    """An administrator's correction of someone's email, waiting for the new address to confirm.

    The new address is sealed here and its blind index is kept beside it, so a duplicate is
    refused at request and again at confirmation; the user's own index moves only when the
    link sent to the new address is followed. Only the SHA-256 of the link's token is stored.
    """

    __tablename__ = "email_changes"
    __table_args__ = (Index("ix_email_changes_user_created", "user_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    new_email_sealed: Mapped[bytes] = sealed_column(owner="user_id")
    new_email_index: Mapped[bytes] = mapped_column(LargeBinary(32))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]


class RecoveryCode(db.Model):
    __tablename__ = "recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                               index=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    used_at: Mapped[datetime | None]


class SignInAttempt(db.Model):
    """A sign-in attempt on a known account, shown to its holder; no email is stored.

    The IP address and user agent are sealed under the account's key. The per-source rules
    (service._register_failure) compare `source_digest`, an HMAC of the account id and the
    address under the "signin-source" subkey of PORTAL_INDEX_KEY: equal for one account's
    attempts from one address, unrelated across accounts, and not computable from the
    database alone. Rows older than METADATA_RETENTION_DAYS are purged (accounts.housekeeping).
    """

    __tablename__ = "signin_attempts"
    __table_args__ = (Index("ix_signin_attempts_user_at", "user_id", "at"),
                      Index("ix_signin_attempts_at", "at"))

    # A UUID made in Python, so the sealed values' associated data can name the row.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    ip_sealed: Mapped[bytes | None] = sealed_column(owner="user_id")
    user_agent_sealed: Mapped[bytes | None] = sealed_column(owner="user_id")
    source_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    outcome: Mapped[str] = mapped_column(String(24))


class Assignment(db.Model):
    """A therapist assigned to a client; a client may have several therapists."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("client_id", "therapist_id",
                                       name="uq_assignments_client_therapist"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                                 index=True)
    therapist_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                                    index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


HOLD_REASONS = ("dispute", "litigation", "investigation")


class LegalHold(db.Model):
    """A hold on a client's record (a dispute, litigation): while one is open, no purge.

    Holds are released, never deleted, so the history of holds stays with the record.
    """

    __tablename__ = "legal_holds"
    __table_args__ = (
        CheckConstraint("reason IN ('dispute', 'litigation', 'investigation')", name="reason"),
        Index("ix_legal_holds_client_released", "client_id", "released_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    reason: Mapped[str] = mapped_column(String(24))
    placed_at: Mapped[datetime] = mapped_column(default=utcnow)
    placed_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))
    released_at: Mapped[datetime | None]
    released_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"))
