"""Single-use links (invitations, password resets): only the SHA-256 of a token is stored."""

import hashlib
import secrets
import uuid
from datetime import timedelta

from sqlalchemy import select, update

from portal.accounts.models import OneTimeToken, TokenPurpose
from portal.db import utcnow
from portal.extensions import db


class TokenProblem(Exception):
    """A link that cannot be used; `reason` is 'invalid', 'expired', 'used' (it was used),
    'replaced' (a newer link of the same kind was sent since) or 'withdrawn' (revoked with
    no newer link, as when an account is closed)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def issue(user_id: uuid.UUID, purpose: TokenPurpose, lifetime: timedelta) -> str:
    """Create a token for the user, revoking earlier unused ones of the same purpose."""
    now = utcnow()
    db.session.execute(
        update(OneTimeToken)
        .where(OneTimeToken.user_id == user_id, OneTimeToken.purpose == purpose,
               OneTimeToken.used_at.is_(None), OneTimeToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    token = secrets.token_urlsafe(32)
    db.session.add(OneTimeToken(token_hash=digest(token), purpose=purpose, user_id=user_id,
                                expires_at=now + lifetime))
    return token


def check(token: str, purpose: TokenPurpose) -> OneTimeToken:
    """Return the live token row or raise TokenProblem saying why it cannot be used."""
    if not token or len(token) > 100:
        raise TokenProblem("invalid")
    row = db.session.scalar(select(OneTimeToken).where(OneTimeToken.token_hash == digest(token),
                                                       OneTimeToken.purpose == purpose))
    if row is None:
        raise TokenProblem("invalid")
    if row.used_at is not None:
        raise TokenProblem("used")
    if row.revoked_at is not None:
        raise TokenProblem("replaced" if _has_newer(row) else "withdrawn")
    if row.expires_at <= utcnow():
        raise TokenProblem("expired")
    return row


def _has_newer(row: OneTimeToken) -> bool:
    """Whether a later link of the same kind was issued to the same person (issue() revokes
    the earlier ones), as opposed to a link withdrawn with nothing in its place."""
    return db.session.scalar(
        select(OneTimeToken.id).where(OneTimeToken.user_id == row.user_id,
                                      OneTimeToken.purpose == row.purpose,
                                      OneTimeToken.id != row.id,
                                      OneTimeToken.created_at >= row.created_at).limit(1)
    ) is not None


def consume(token: str, purpose: TokenPurpose) -> OneTimeToken:
    """Mark a token used exactly once, even when two requests race for it."""
    row = check(token, purpose)
    result = db.session.execute(
        update(OneTimeToken)
        .where(OneTimeToken.id == row.id, OneTimeToken.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if result.rowcount != 1:
        raise TokenProblem("used")
    return row
