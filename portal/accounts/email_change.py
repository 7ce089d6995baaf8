"""An administrator's correction of someone's email address, confirmed from the new address.

`request_email_change` seals the new address in an `EmailChange` row, with its blind index
beside it so a duplicate is refused now and again at confirmation. It emails the new address a
single-use link and tells the old address, with no link to follow. The account's own address
and blind index move only when that link is followed (`confirm_email_change`): until then the
old address signs in and the new one does not. Once confirmed, links sent to the old address
stop working and the account's other sessions end. Only the SHA-256 of a link's token is
stored; audit rows hold ids only.
"""

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError

from portal.accounts import service, sessions, tokens
from portal.accounts.identity import email_of, email_taken, find_by_email, set_email
from portal.accounts.models import EmailChange, OneTimeToken, Role, User
from portal.accounts.service import valid_email
from portal.accounts.tokens import TokenProblem
from portal.audit import record
from portal.crypto import DecryptionError, context_for, email_index, open_text, seal
from portal.db import new_id, utcnow
from portal.errors import RuleError
from portal.extensions import db
from portal.mail import enqueue

LINK_HOURS = 48
TOKEN_MAX = 100

TAKEN = "Another account already uses this email address."
PENDING_ELSEWHERE = ("This email address is waiting to be confirmed for another account. "
                     "Cancel that change first, or use a different address.")
TAKEN_AT_CONFIRM = ("This email address now belongs to another account, so it cannot be "
                    "used for yours. Nothing was changed. Please call the practice at {phone} "
                    "and we will sort it out with you.")


@dataclass(frozen=True)
class PendingChange:
    """A change waiting for its link to be followed, as the administrator's page shows it."""

    id: uuid.UUID
    new_email: str
    created_at: datetime
    expires_at: datetime
    expired: bool


def _subject(user: User) -> uuid.UUID | None:
    return user.id if user.role == Role.CLIENT else None


def _open(change: EmailChange) -> str:
    return open_text(change.user_id, context_for(EmailChange.new_email_sealed, change.id),
                     change.new_email_sealed)


def _still_pending():
    return EmailChange.confirmed_at.is_(None), EmailChange.cancelled_at.is_(None)


def _cancel_pending(user_id: uuid.UUID, now: datetime) -> int:
    return db.session.execute(
        update(EmailChange).where(EmailChange.user_id == user_id, *_still_pending())
        .values(cancelled_at=now)).rowcount


def request_email_change(actor: User, user: User, new_email: str) -> str:
    """Start a correction of `user`'s email to `new_email` (an administrator only); returns
    the link mailed to the new address.

    Refused with a message for an address that is not one plain mailbox, the account's own,
    another account's, or one waiting to be confirmed for another account. An earlier change
    of this account still waiting is cancelled (its link stops working).
    """
    try:
        if actor.role != Role.ADMIN or not actor.active:
            raise RuleError("Only an administrator can change someone's email address.")
        if not user.active:
            raise RuleError("Reactivate the account before changing its email address.",
                            "email")
        email = (new_email or "").strip()
        if not valid_email(email):
            raise RuleError("Enter an email address like name@example.com.", "email")
        index = email_index(email)
        if index == user.email_index:
            raise RuleError("That is already this account's email address.", "email")
        if email_taken(email):
            raise RuleError(TAKEN, "email")
        now = utcnow()
        if db.session.scalar(select(exists().where(
                EmailChange.new_email_index == index, EmailChange.user_id != user.id,
                EmailChange.expires_at > now, *_still_pending()))):
            raise RuleError(PENDING_ELSEWHERE, "email")
        _cancel_pending(user.id, now)
        token = secrets.token_urlsafe(32)
        change = EmailChange(id=new_id(), user_id=user.id, new_email_index=index,
                             token_hash=tokens.digest(token), requested_by_id=actor.id,
                             created_at=now, expires_at=now + timedelta(hours=LINK_HOURS))
        change.new_email_sealed = seal(
            user.id, context_for(EmailChange.new_email_sealed, change.id), email)
        db.session.add(change)
        base = current_app.config["PORTAL_BASE_URL"].rstrip("/")
        link = f"{base}/email-change/{token}"
        enqueue(user, "email_change_confirm", to_address=email, link=link,
                hours_valid=LINK_HOURS)
        old = email_of(user)
        if old:
            enqueue(user, "email_change_notice", to_address=old)
        record("account.email_change_requested", actor=actor, target=("user", user.id),
               subject_id=_subject(user))
        db.session.commit()
    except Exception:
        db.session.rollback()  # a refused change must not be committed by a later write
        raise
    return link


def pending_change(user: User) -> PendingChange | None:
    """The change of this account's email still waiting (expired or not), or None."""
    change = db.session.scalar(
        select(EmailChange).where(EmailChange.user_id == user.id, *_still_pending())
        .order_by(EmailChange.created_at.desc()).limit(1))
    if change is None:
        return None
    try:
        address = _open(change)
    except DecryptionError:
        address = "(address could not be decrypted)"
    return PendingChange(change.id, address, change.created_at, change.expires_at,
                         change.expires_at <= utcnow())


def cancel_email_change(actor: User, user: User) -> bool:
    """Cancel the change waiting for this account (its link stops working); False when there
    was none (nothing is recorded)."""
    if actor.role != Role.ADMIN:
        raise RuleError("Only an administrator can cancel an email change.")
    cancelled = _cancel_pending(user.id, utcnow())
    if cancelled:
        record("account.email_change_cancelled", actor=actor, target=("user", user.id),
               subject_id=_subject(user))
    db.session.commit()
    return bool(cancelled)


def change_for(token: str) -> EmailChange:
    """The live change a confirmation link stands for, or TokenProblem saying why not:
    'invalid', 'used', 'replaced' (a newer change was asked for since), 'withdrawn'
    (cancelled, or the account is closed) or 'expired'."""
    if not token or len(token) > TOKEN_MAX:
        raise TokenProblem("invalid")
    change = db.session.scalar(select(EmailChange)
                               .where(EmailChange.token_hash == tokens.digest(token)))
    if change is None:
        raise TokenProblem("invalid")
    if change.confirmed_at is not None:
        raise TokenProblem("used")
    if change.cancelled_at is not None:
        newer = db.session.scalar(select(exists().where(
            EmailChange.user_id == change.user_id, EmailChange.id != change.id,
            EmailChange.created_at >= change.created_at)))
        raise TokenProblem("replaced" if newer else "withdrawn")
    if change.expires_at <= utcnow():
        raise TokenProblem("expired")
    user = db.session.get(User, change.user_id)
    if user is None or not user.active:
        raise TokenProblem("withdrawn")
    return change


def confirm_email_change(token: str) -> User:
    """Follow a confirmation link: the account signs in with the new address from now on.

    The link is spent exactly once, even when two requests race for it. Links sent to the old
    address (a password reset, an invitation) stop working and the account's sessions end,
    except the one confirming when it is the account's own; an account not set up yet gets
    a fresh invitation at the new address. An address that another account took meanwhile
    is refused (RuleError): the change is cancelled, and nothing else changes.
    """
    try:
        change = change_for(token)
        user = db.session.get(User, change.user_id)
        now = utcnow()
        claimed = db.session.execute(
            update(EmailChange).where(EmailChange.id == change.id, *_still_pending())
            .values(confirmed_at=now)).rowcount
        if claimed != 1:
            raise TokenProblem("used")
        email = _open(change)
        holder = find_by_email(email)
        if holder is not None and holder.id != user.id:
            _refuse_taken(change, user, now)
        set_email(user, email)
        db.session.execute(
            update(OneTimeToken).where(OneTimeToken.user_id == user.id,
                                       OneTimeToken.used_at.is_(None),
                                       OneTimeToken.revoked_at.is_(None))
            .values(revoked_at=now))
        current = sessions.current()
        keep = current.id if current is not None and current.user_id == user.id else None
        sessions.end_all(user.id, except_id=keep)
        record("account.email_change_confirmed", actor=user, target=("user", user.id))
        if user.password_hash is None:
            service._invite(None, user)  # the one way an invitation is sent
        db.session.flush()
    except IntegrityError:
        # Another account took the address between the check and the write.
        db.session.rollback()
        raise _taken_error() from None
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return user


def _taken_error() -> RuleError:
    return RuleError(TAKEN_AT_CONFIRM.format(phone=current_app.config["PRACTICE"]["phone"]))


def _refuse_taken(change: EmailChange, user: User, now: datetime) -> None:
    """The address went to another account: cancel this change (recorded) and say so."""
    db.session.execute(update(EmailChange).where(EmailChange.id == change.id)
                       .values(confirmed_at=None, cancelled_at=now))
    record("account.email_change_refused", actor=None, target=("user", user.id),
           outcome="failure")
    db.session.commit()
    raise _taken_error()
