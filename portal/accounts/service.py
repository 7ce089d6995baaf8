"""Account rules: invitations, sign-in with throttling, two-factor, resets, sessions, admin.

Every function takes plain values and the acting user, owns its transaction (commits or
raises) and writes its audit events, so views, the CLI and tests call the same code.

Wrong passwords and codes: every 10th failure pauses the account for 15 minutes, except for a
browser that has signed in to it before (its signed device cookie, accounts.sessions), which
still gets in with the right password; the 100-failure ceiling is counted per source (the
client address, compared as a keyed digest: `source_digest`) as well as per account, so one
source alone can never switch a password off. The rule in full is in _register_failure's
docstring.
"""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import current_app, request, session
from flask_login import logout_user
from sqlalchemy import delete, func, select, update

from portal import hooks, practice
from portal.accounts import mfa, passwords, sessions, tokens
from portal.accounts.identity import email_of, find_by_email, name_of, set_identity
from portal.accounts.models import (
    Assignment,
    Role,
    SignInAttempt,
    TokenPurpose,
    User,
    new_alt_id,
)
from portal.audit import record
from portal.crypto.blind_index import keyed_digest
from portal.db import new_id, utcnow
from portal.errors import RuleError
from portal.extensions import db
from portal.mail import enqueue


def _base_url() -> str:
    return current_app.config["PORTAL_BASE_URL"].rstrip("/")


def _link(path: str) -> str:
    return f"{_base_url()}{path}"


def _mail(user: User, template: str, *, background: bool = False, **context) -> None:
    address = email_of(user)
    if address:
        enqueue(user, template, to_address=address, background=background, **context)


def password_problems(user: User | None, password: str, *, name: str = "",
                      email: str = "") -> list[str]:
    """Say why a new password is refused for this user (empty list when fine)."""
    if user is not None:
        name, email = name or name_of(user), email or email_of(user)
    return passwords.problems(password, email=email, name=name,
                              practice=current_app.config["PRACTICE"]["name"])


# --- creating accounts and invitations -------------------------------------------------

NAME_MAX = 200
# One address, no display name: a local part, "@", and a domain with a dot; no spaces,
# angle brackets, quotes, commas or control characters that could turn it into two.
_NOT_IN_ADDRESS = r"\s@<>()\[\]\\,;:\""
_EMAIL = re.compile(rf"^[^{_NOT_IN_ADDRESS}]{{1,64}}@[^{_NOT_IN_ADDRESS}]+"
                    rf"\.[^{_NOT_IN_ADDRESS}.]+$")


def valid_email(email: str) -> bool:
    """Say whether an address is one plain mailbox the mail layer can send to."""
    return (len(email) <= 254 and _EMAIL.match(email) is not None
            and not any(ord(ch) < 32 or ord(ch) == 127 for ch in email)
            and ".." not in email.split("@", 1)[1])


def create_user(actor: User | None, *, role: str, name: str, email: str,
                therapist_ids: list[uuid.UUID] | tuple = ()) -> tuple[User, str]:
    """Create an account and email its invitation; returns the user and the link."""
    if role not in set(Role):
        raise RuleError("Choose a role.", "role")
    name, email = (name or "").strip(), (email or "").strip()
    if not name:
        raise RuleError("Enter the person's name.", "name")
    if len(name) > NAME_MAX or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise RuleError(f"Enter a name of at most {NAME_MAX} characters.", "name")
    if not valid_email(email):
        raise RuleError("Enter an email address like name@example.com.", "email")
    if find_by_email(email) is not None:
        raise RuleError("An account with this email address already exists.", "email")
    if actor is not None and actor.role == Role.THERAPIST:
        if role != Role.CLIENT:
            raise RuleError("Therapists can invite clients only.", "role")
        therapist_ids = [actor.id]
    user = User(id=new_id(), role=role)
    set_identity(user, name=name, email=email)
    db.session.add(user)
    db.session.flush()
    record("account.created", actor=actor, target=("user", user.id))
    if role == Role.CLIENT:
        for therapist_id in therapist_ids:
            _assign(actor, user, _therapist(therapist_id))
    link = _invite(actor, user)
    db.session.commit()
    return user, link


def _invite(actor: User | None, user: User) -> str:
    hours = current_app.config["INVITATION_HOURS"]
    token = tokens.issue(user.id, TokenPurpose.INVITATION, timedelta(hours=hours))
    link = _link(f"/invitation/{token}")
    _mail(user, "invitation", link=link, hours_valid=hours)
    record("invitation.sent", actor=actor, target=("user", user.id))
    return link


def resend_invitation(actor: User, user: User) -> str:
    """Send a fresh invitation link; earlier links stop working."""
    if user.password_hash is not None:
        raise RuleError("This person has already set up their account.")
    if not user.active:
        raise RuleError("Reactivate the account before sending a new invitation.")
    link = _invite(actor, user)
    db.session.commit()
    return link


def invitation_user(token: str) -> User:
    """Return the invited user for a live invitation link, or raise tokens.TokenProblem."""
    row = tokens.check(token, TokenPurpose.INVITATION)
    user = db.session.get(User, row.user_id)
    if user is None or not user.active or user.password_hash is not None:
        raise tokens.TokenProblem("used" if user is not None and user.active else "invalid")
    return user


def accept_invitation(token: str, password: str) -> User:
    """Set the first password from an invitation link; the link is spent."""
    user = _set_password_from_link(token, TokenPurpose.INVITATION, invitation_user, password)
    record("invitation.used", actor=user, target=("user", user.id))
    db.session.commit()
    return user


def _check_new_password(user: User, password: str, field: str) -> None:
    found = password_problems(user, password)
    if found:
        raise RuleError(" ".join(found), field)


def _set_password_from_link(token: str, purpose: TokenPurpose,
                            user_of: Callable[[str], User], password: str) -> User:
    """Check a link and the password chosen from it, then spend the link and set it."""
    user = user_of(token)
    _check_new_password(user, password, "password")
    tokens.consume(token, purpose)
    user.password_hash = passwords.hash_password(password)
    user.password_disabled = False
    return user


def sign_in_invited(user: User) -> None:
    """Open the first session right after an invitation set the password (audited)."""
    _finish_signin(user, mfa_verified=False)
    db.session.commit()


# --- signing in -----------------------------------------------------------------------

@dataclass
class SignIn:
    """The outcome of the password step: 'ok', 'mfa' (a code is next), 'failed', or 'paused'
    (the right password for a deactivated account, which may be told so: only someone who
    knows the password learns that the account exists)."""

    status: str
    user: User | None = None
    messages: list[str] = field(default_factory=list)


def _attempt(user: User, outcome: str) -> None:
    ip, agent = sessions.client_details()
    row = SignInAttempt(id=new_id(), user_id=user.id, outcome=outcome,
                        source_digest=source_digest(user.id, ip))
    row.ip_sealed = sessions.seal_optional(user.id, SignInAttempt.ip_sealed, row.id, ip)
    row.user_agent_sealed = sessions.seal_optional(user.id, SignInAttempt.user_agent_sealed,
                                                   row.id, agent)
    db.session.add(row)


def source_digest(user_id: uuid.UUID, ip: str | None) -> bytes | None:
    """The keyed digest that stands for one source of an account's attempts (None: unknown).

    HMAC-SHA256 under the "signin-source" subkey of PORTAL_INDEX_KEY of the account id and the
    address: the per-source rules compare it; the database alone cannot test a guess."""
    if ip is None:
        return None
    return keyed_digest("signin-source", user_id.bytes + ip.encode())


# The outcomes of SignInAttempt rows that are counted guesses.
_GUESSES = ("failure", "code-failure")
_FRESH_START = ("success", "reset")  # the guesses before these no longer count
# One source alone never switches a password off: it takes failures from at least this many.
DISABLE_MIN_SOURCES = 2


def _source(user: User) -> bytes | None:
    """This request's source as the attempts of `user` record it (`source_digest`)."""
    return source_digest(user.id, request.remote_addr if request else None)


def _since_success(user: User):
    """The condition on SignInAttempt for the guesses made since the account's last success
    (a sign-in, or a password set from a reset link)."""
    last = (select(func.max(SignInAttempt.at))
            .where(SignInAttempt.user_id == user.id, SignInAttempt.outcome.in_(_FRESH_START))
            .scalar_subquery())
    return (SignInAttempt.user_id == user.id, SignInAttempt.outcome.in_(_GUESSES),
            SignInAttempt.at > func.coalesce(last, user.created_at))


def _guesses_from_here(user: User) -> int:
    source = _source(user)
    same = (SignInAttempt.source_digest.is_(None) if source is None
            else SignInAttempt.source_digest == source)
    return db.session.scalar(select(func.count()).where(*_since_success(user), same)) or 0


def _guessing_sources(user: User) -> int:
    """How many sources (client addresses, as keyed digests) guessed since the last success,
    this one included."""
    found = set(db.session.scalars(select(SignInAttempt.source_digest)
                                   .where(*_since_success(user)).distinct()))
    return len(found | {_source(user)})


def _refused_here(user: User, remembered: bool) -> str | None:
    """Why this attempt is refused before its password or code counts: 'locked' during a
    pause (unless the browser is remembered), 'refused' from a source that reached the
    ceiling itself; None when it is checked."""
    if remembered:
        return None
    if _guesses_from_here(user) >= current_app.config["DISABLE_THRESHOLD"]:
        return "refused"
    if user.locked_until is not None and user.locked_until > utcnow():
        return "locked"
    return None


def _register_failure(user: User) -> None:
    """Count a failure across processes; lock at every 10th, disable the password at 100.

    The 100-failure ceiling is counted per source (the client address as the app sees it,
    `request.remote_addr`) as well as per account, over the guesses since the account's last
    successful sign-in (its SignInAttempt rows):
    - a source that has made DISABLE_THRESHOLD failures is refused for this account from
      then on (its attempts are not checked, nor counted), so it has no more guesses;
    - the password is switched off at DISABLE_THRESHOLD failures of the account only when
      they came from at least DISABLE_MIN_SOURCES sources.
    So one source alone can pause an account (every 10th failure) but never switch its
    password off, and the password still never meets more than about DISABLE_THRESHOLD
    guesses between two successes, however many sources share them. A remembered browser
    (sessions.remembered_user_id) passes the pause and the source's ceiling, not a
    switched-off password; its wrong passwords count like any other.
    """
    cfg = current_app.config
    count = db.session.execute(
        update(User).where(User.id == user.id)
        .values(failed_signins=User.failed_signins + 1,
                total_failed_signins=User.total_failed_signins + 1)
        .returning(User.failed_signins)
    ).scalar_one()
    if count >= cfg["DISABLE_THRESHOLD"] and _guessing_sources(user) >= DISABLE_MIN_SOURCES:
        if not user.password_disabled:
            user.password_disabled = True
            record("auth.password_disabled", actor=None, target=("user", user.id),
                   severity="high")
            _mail(user, "password_disabled", link=_link("/forgot-password"))
    elif count % cfg["LOCKOUT_THRESHOLD"] == 0:
        minutes = cfg["LOCKOUT_MINUTES"]
        user.locked_until = utcnow() + timedelta(minutes=minutes)
        record("auth.lockout", actor=None, target=("user", user.id), severity="high")
        _mail(user, "lockout_notice", minutes=minutes, link=_link("/forgot-password"))


def authenticate(email: str, password: str, *,
                 remembered_id: uuid.UUID | None = None) -> SignIn:
    """Check an email and password without saying which one was wrong, or that it is locked.

    `remembered_id`: the account this browser signed in to before (its device cookie); the
    right password from it is accepted during a pause (see _register_failure)."""
    user = find_by_email(email)
    if user is None:
        passwords.verify_password(None, password)  # same cost as a real check
        record("auth.signin.failure", actor=None, outcome="failure")
        db.session.commit()
        return SignIn("failed")
    ok = passwords.verify_password(user.password_hash, password)
    remembered = remembered_id is not None and remembered_id == user.id
    locked = _refused_here(user, remembered)
    usable = user.active and not user.password_disabled and user.password_hash is not None
    if not ok or locked or not usable:
        if not ok and usable and not locked:
            # Attempts during a pause cannot succeed, so they are not guesses: counting
            # them would let anyone push an account to the 100-failure ceiling quickly.
            _register_failure(user)
        # A deactivated account with its right password (and no lock or disabled password,
        # which must not confirm a guess) is told its access is paused, not to reset.
        paused = (ok and not locked and not user.active and not user.password_disabled
                  and user.password_hash is not None)
        reason = locked or ("locked" if user.password_disabled or paused else "failure")
        _attempt(user, reason)
        record("auth.signin.failure", actor=None, target=("user", user.id), outcome="failure")
        db.session.commit()
        return SignIn("paused") if paused else SignIn("failed")
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    if user.mfa_enabled:
        # Not signed in yet: the failure count runs on until the code is right too, or a
        # known password would reset it and allow endless code guessing.
        _attempt(user, "password-ok")
        db.session.commit()
        return SignIn("mfa", user)
    _clear_failures(user)
    _finish_signin(user, mfa_verified=False)
    db.session.commit()
    return SignIn("ok", user)


def _clear_failures(user: User) -> None:
    """After a success: the count starts again; a pause still holds back other browsers (a
    remembered browser passed it) until its end."""
    user.failed_signins = 0
    if user.locked_until is not None and user.locked_until <= utcnow():
        user.locked_until = None


def _finish_signin(user: User, *, mfa_verified: bool) -> None:
    user.last_signin_at = utcnow()
    _attempt(user, "success")
    sessions.start(user, mfa_verified=mfa_verified)
    record("auth.signin.success", actor=user, target=("user", user.id))


def verify_second_factor(user: User, code: str, *,
                         remembered_id: uuid.UUID | None = None) -> SignIn:
    """Finish a sign-in with a TOTP code or a recovery code; failures count like passwords
    (and a remembered browser passes a pause here too)."""
    code = (code or "").strip()
    used_recovery = False
    ok = mfa.accept_totp(user, code)
    if not ok and mfa.normalize_recovery_code(code) is not None:
        ok = used_recovery = mfa.use_recovery_code(user, code)
    locked = _refused_here(user, remembered_id is not None and remembered_id == user.id)
    usable = user.active and not user.password_disabled and user.password_hash is not None
    if not ok or locked or not usable:
        if not ok and usable and not locked:
            _register_failure(user)
        _attempt(user, "code-failure")
        record("auth.mfa.failure", actor=None, target=("user", user.id), outcome="failure")
        db.session.commit()
        return SignIn("failed")
    if used_recovery:
        record("auth.recovery_code.used", actor=user, target=("user", user.id),
               severity="high")
    _clear_failures(user)
    _finish_signin(user, mfa_verified=True)
    db.session.commit()
    return SignIn("ok", user)


def sign_out(user: User) -> None:
    """End this browser's session."""
    sessions.end_current()
    record("auth.signout", actor=user, target=("user", user.id))
    db.session.commit()


def sign_out_this_browser(user: User | None = None) -> None:
    """The one way a browser is signed out: its server session, Flask-Login's user and the
    cookie session all go.

    Pass the user when signing out is what they asked for (it is audited); without one, the
    caller's change (a reset, sign-out everywhere, ending this session) already ended the
    server session and recorded why.
    """
    if user is not None:
        sign_out(user)
    logout_user()
    session.clear()


def sign_out_everywhere(user: User) -> int:
    """End every session of this user, this one included."""
    count = sessions.end_all(user.id)
    user.alt_id = new_alt_id()
    record("auth.signout_everywhere", actor=user, target=("user", user.id))
    db.session.commit()
    return count


def end_session(user: User, session_id: uuid.UUID) -> bool:
    """End one of the user's own sessions (from the settings page)."""
    ended = sessions.end_one(user.id, session_id)
    if ended:
        record("auth.session.ended", actor=user, target=("session", session_id))
    db.session.commit()
    return ended


# --- passwords ------------------------------------------------------------------------

def check_current_password(user: User, current: str) -> None:
    """Ask for the password before a sensitive change; wrong guesses count like sign-ins.

    Someone holding a stolen session must not be able to guess the password here without
    the lockout (and its email to the account holder) that sign-in would trigger.
    """
    if _guesses_from_here(user) >= current_app.config["DISABLE_THRESHOLD"]:
        raise RuleError("There were too many wrong passwords. Please reset your password "
                        "to go on.", "current_password")
    if user.locked_until is not None and user.locked_until > utcnow():
        minutes = current_app.config["LOCKOUT_MINUTES"]
        raise RuleError(f"There were too many wrong passwords. Please try again in "
                           f"{minutes} minutes.", "current_password")
    if not passwords.verify_password(user.password_hash, current):
        _register_failure(user)
        _attempt(user, "failure")  # its source counts towards the ceiling like a sign-in's
        db.session.commit()
        raise RuleError("That is not your current password.", "current_password")


def change_password(user: User, current: str, new: str) -> None:
    """Change the password after checking the current one; other sessions end, and this
    browser's gets a new token (a copy of the old cookie no longer works)."""
    check_current_password(user, current)
    _check_new_password(user, new, "new_password")
    user.password_hash = passwords.hash_password(new)
    keep = sessions.current()
    sessions.end_all(user.id, except_id=keep.id if keep else None)
    sessions.renew(user)
    record("account.password.changed", actor=user, target=("user", user.id))
    _mail(user, "password_changed")
    db.session.commit()


def request_reset(email: str) -> None:
    """Email a reset link if the account exists; the caller answers the same either way.

    The mail goes from the mail layer's background thread (`background=True`), never from
    the worker that answered: a worker busy talking to the mail server would answer the next
    request late only when the address has an account.
    """
    user = find_by_email(email)
    if user is None or not user.active or user.password_hash is None:
        record("account.password.reset_requested", actor=None, outcome="failure")
        db.session.commit()
        return
    minutes = current_app.config["RESET_MINUTES"]
    token = tokens.issue(user.id, TokenPurpose.RESET, timedelta(minutes=minutes))
    _mail(user, "password_reset", link=_link(f"/reset/{token}"), minutes_valid=minutes,
          background=True)
    record("account.password.reset_requested", actor=None, target=("user", user.id))
    db.session.commit()


def reset_user(token: str) -> User:
    """Return the account of a live reset link, or raise tokens.TokenProblem."""
    row = tokens.check(token, TokenPurpose.RESET)
    user = db.session.get(User, row.user_id)
    if user is None or not user.active:
        raise tokens.TokenProblem("invalid")
    return user


def reset_password(token: str, new: str) -> User:
    """Set a new password from a reset link; every session of the account ends."""
    user = _set_password_from_link(token, TokenPurpose.RESET, reset_user, new)
    user.failed_signins = 0
    user.locked_until = None
    user.alt_id = new_alt_id()
    sessions.end_all(user.id)
    _attempt(user, "reset")  # earlier guesses no longer count towards any ceiling
    record("account.password.reset", actor=user, target=("user", user.id))
    _mail(user, "password_changed")
    db.session.commit()
    return user


# --- two-factor -----------------------------------------------------------------------

def enable_mfa(user: User, seed: str, code: str, current_password: str) -> list[str]:
    """Turn on TOTP once the user proves their app shows the right code and types their
    password (wrong ones count like sign-ins); returns codes. Every other session ends and
    this browser's gets a new token."""
    check_current_password(user, current_password)
    step = mfa.matching_step(seed, code)
    if step is None:
        raise RuleError("That code did not match. Check the time on your phone and "
                           "enter the newest 6-digit code.", "code")
    user.totp_seed_sealed = mfa.seal_seed(user, seed)
    user.totp_last_step = step
    user.totp_enabled_at = utcnow()
    codes = mfa.new_recovery_codes(user)
    current = sessions.current()
    sessions.end_all(user.id, except_id=current.id if current else None)
    renewed = sessions.renew(user)  # a new session token once the second factor is proven
    if renewed is not None:
        renewed.mfa_verified = True
    record("auth.mfa.enrolled", actor=user, target=("user", user.id))
    db.session.commit()
    return codes


def disable_mfa(user: User, current_password: str) -> None:
    """Turn off TOTP (clients only; staff must keep it)."""
    check_current_password(user, current_password)
    if user.role != Role.CLIENT:
        raise RuleError("Two-step sign-in is required for practice staff.")
    _clear_mfa(user)
    current = sessions.current()
    sessions.end_all(user.id, except_id=current.id if current else None)
    record("auth.mfa.disabled", actor=user, target=("user", user.id))
    db.session.commit()


def _clear_mfa(user: User) -> None:
    user.totp_seed_sealed = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.execute(delete(mfa.RecoveryCode).where(mfa.RecoveryCode.user_id == user.id))


def regenerate_recovery_codes(user: User, current_password: str) -> list[str]:
    check_current_password(user, current_password)
    if not user.mfa_enabled:
        raise RuleError("Turn on two-step sign-in first.")
    codes = mfa.new_recovery_codes(user)
    record("auth.recovery_codes.regenerated", actor=user, target=("user", user.id))
    db.session.commit()
    return codes


def dismiss_mfa_prompt(user: User) -> None:
    user.mfa_prompt_dismissed = True
    db.session.commit()


# --- administration -------------------------------------------------------------------

def admin_reset_mfa(actor: User, user: User) -> None:
    """Clear a user's two-factor setup (they enrol again at next sign-in); ends sessions."""
    _clear_mfa(user)
    user.alt_id = new_alt_id()
    sessions.end_all(user.id)
    record("auth.mfa.reset", actor=actor, target=("user", user.id), severity="high")
    _mail(user, "mfa_reset")
    db.session.commit()


# Why a client's account is deactivated: a fixed word, recorded in the audit action's name
# (`account.deactivation_reason.<key>`), never free text.
DEACTIVATION_REASONS = {
    "client_asked": "The client asked",
    "care_ended": "Care ended",
    "safety_or_security": "Safety or security",
    "other": "Other",
}


def set_active(actor: User, user: User, active: bool, *, reason: str | None = None) -> None:
    """Deactivate (ending every session) or reactivate an account.

    Deactivating a client needs a reason (a key of DEACTIVATION_REASONS). Deactivating a
    therapist who still has conversations is refused by the care checks (messaging): their
    clients are handed over first (`messaging.handover.deactivate_therapist`).
    """
    try:
        if active:
            user.active = True
            record("account.reactivated", actor=actor, target=("user", user.id))
        else:
            if user.role == Role.CLIENT and reason not in DEACTIVATION_REASONS:
                raise RuleError("Choose why this account is being deactivated.", "reason")
            deactivate(actor, user)
            if user.role == Role.CLIENT:
                # The audit row has no details column: the category is part of the action.
                record(f"account.deactivation_reason.{reason}", actor=actor,
                       target=("user", user.id))
        db.session.commit()
    except Exception:
        db.session.rollback()  # a refused change must not be committed by a later write
        raise


def deactivate(actor: User, user: User) -> None:
    """Deactivate without committing, so a handover can share the transaction."""
    if user.id == actor.id:
        raise RuleError("You cannot deactivate your own account.")
    lock_users(user.id)
    user.active = False
    user.alt_id = new_alt_id()
    sessions.end_all(user.id)
    record("account.deactivated", actor=actor, target=("user", user.id))
    if user.role == Role.THERAPIST:
        db.session.flush()
        run_care_checks(None if user.covering else set(clients_of_ids(user.id)))


def lock_users(*user_ids: uuid.UUID) -> None:
    """Take the people's rows' locks, in one order, before changing who cares for whom.

    Two administrators changing one client's care at once then run one after the other, and
    each check sees the other's change (SQLite's write lock already serializes them).
    """
    ids = sorted(set(user_ids), key=str)
    if ids:
        db.session.execute(select(User.id).where(User.id.in_(ids))
                           .order_by(User.id).with_for_update())


def run_care_checks(client_ids: set[uuid.UUID] | None) -> None:
    """Let every feature refuse a change of care (None: any client may be affected)."""
    for check in hooks.care_checks:
        check(client_ids)


def _therapist(therapist_id: uuid.UUID) -> User:
    therapist = db.session.get(User, therapist_id)
    if therapist is None or therapist.role != Role.THERAPIST:
        raise RuleError("Choose a therapist.", "therapist")
    return therapist


def _assign(actor: User | None, client: User, therapist: User) -> bool:
    exists = db.session.scalar(select(Assignment.id).where(
        Assignment.client_id == client.id, Assignment.therapist_id == therapist.id))
    if exists is None:
        db.session.add(Assignment(client_id=client.id, therapist_id=therapist.id))
        record("assignment.added", actor=actor, target=("user", client.id),
               subject_id=client.id)
    return exists is None


def add_assignment(actor: User | None, client: User, therapist: User) -> bool:
    """Assign without committing, so a handover can share the transaction; True when the
    assignment is new (audited), False when it was there already."""
    if client.role != Role.CLIENT:
        raise RuleError("Only clients are assigned to therapists.")
    if therapist.role != Role.THERAPIST:
        raise RuleError("Choose a therapist.", "therapist")
    return _assign(actor, client, therapist)


def assign(actor: User, client: User, therapist_id: uuid.UUID) -> None:
    """Assign a therapist to a client (a client may have several)."""
    if client.role != Role.CLIENT:
        raise RuleError("Only clients are assigned to therapists.")
    _assign(actor, client, _therapist(therapist_id))
    db.session.commit()


def unassign(actor: User, client: User, therapist_id: uuid.UUID) -> bool:
    """Remove a therapist from a client; return False (and audit nothing) if none was assigned.

    Refused while the therapist still has the client's conversations (hand them over first).
    """
    try:
        removed = remove_assignment(actor, client, therapist_id)
        db.session.commit()
    except Exception:
        db.session.rollback()  # a refused change must not be committed by a later write
        raise
    return removed


def remove_assignment(actor: User, client: User, therapist_id: uuid.UUID) -> bool:
    """Unassign without committing, so a handover can share the transaction."""
    lock_users(client.id, therapist_id)
    result = db.session.execute(delete(Assignment).where(
        Assignment.client_id == client.id, Assignment.therapist_id == therapist_id))
    removed = bool(result.rowcount)
    if removed:
        record("assignment.removed", actor=actor, target=("user", client.id),
               subject_id=client.id)
        run_care_checks({client.id})
    return removed


def set_covering(actor: User, therapist: User, covering: bool) -> None:
    """Name a therapist a covering clinician (on call), or stop; refused if that would leave a
    conversation written to the practice with nobody to read it."""
    if therapist.role != Role.THERAPIST:
        raise RuleError("Only therapists can be covering clinicians.")
    if covering and not therapist.active:
        raise RuleError("This therapist's account is deactivated; reactivate it first.")
    lock_users(therapist.id)
    if therapist.covering == covering:
        return
    try:
        therapist.covering = covering
        record("practice.covering_added" if covering else "practice.covering_removed",
               actor=actor, target=("user", therapist.id))
        if not covering:
            db.session.flush()
            run_care_checks(None)
        db.session.commit()
    except Exception:
        db.session.rollback()  # a refused change must not be committed by a later write
        raise


def therapists_of(client_id: uuid.UUID) -> list[User]:
    return list(db.session.scalars(
        select(User).join(Assignment, Assignment.therapist_id == User.id)
        .where(Assignment.client_id == client_id).order_by(User.created_at)))


def covering_clinicians() -> list[User]:
    """The active therapists the practice names as covering clinicians, oldest first."""
    return list(db.session.scalars(
        select(User).where(User.role == Role.THERAPIST, User.active, User.covering)
        .order_by(User.created_at)))


def clients_of_ids(therapist_id: uuid.UUID) -> list[uuid.UUID]:
    return list(db.session.scalars(
        select(Assignment.client_id).where(Assignment.therapist_id == therapist_id)))


def clients_of(therapist_id: uuid.UUID) -> list[User]:
    return list(db.session.scalars(
        select(User).join(Assignment, Assignment.client_id == User.id)
        .where(Assignment.therapist_id == therapist_id).order_by(User.created_at)))


def user_by_alt_id(alt_id: str | None) -> User | None:
    """The account a half-finished sign-in (password right, code next) belongs to."""
    if not alt_id:
        return None
    return db.session.scalar(select(User).where(User.alt_id == alt_id))


@dataclass(frozen=True)
class AttemptShown:
    """A sign-in attempt as the Account page shows it (address and agent opened)."""

    at: datetime
    ip: str | None
    user_agent: str | None
    outcome: str


def recent_attempts(user: User, limit: int = 20) -> list[AttemptShown]:
    """The account's latest sign-in attempts, opened (one statement; one owner's key)."""
    rows = db.session.execute(
        select(SignInAttempt.id, SignInAttempt.at, SignInAttempt.ip_sealed,
               SignInAttempt.user_agent_sealed, SignInAttempt.outcome)
        .where(SignInAttempt.user_id == user.id)
        .order_by(SignInAttempt.at.desc()).limit(limit))
    return [AttemptShown(row.at,
                         sessions.open_optional(user.id, SignInAttempt.ip_sealed, row.id,
                                                row.ip_sealed),
                         sessions.open_optional(user.id, SignInAttempt.user_agent_sealed, row.id,
                                                row.user_agent_sealed),
                         row.outcome)
            for row in rows]


def active_sessions(user: User) -> list[sessions.SessionShown]:
    return sessions.list_for(user.id)


# --- the retention clock ------------------------------------------------------------

def set_last_service_on(actor: User, client: User, day: date | None) -> None:
    """Record a client's last date of service (a discharge or their last session).

    The retention clock runs from the later of this day and the client's last portal
    activity (portal.ops.retention). An administrator, or a therapist assigned to the client,
    records it; the day is not in the future and not before the account existed. Audited
    `account.last_service_recorded` (ids only).
    """
    try:
        if client.role != Role.CLIENT:
            raise RuleError("A last date of service is recorded for a client.")
        assigned = actor.role == Role.THERAPIST and db.session.scalar(
            select(Assignment.id).where(Assignment.client_id == client.id,
                                        Assignment.therapist_id == actor.id)) is not None
        if not actor.active or not (actor.role == Role.ADMIN or assigned):
            raise RuleError("Only an administrator or the client's therapist can record this.")
        if day is None:
            raise RuleError("Enter the last date of service.", "last_service_on")
        if day > practice.today():
            raise RuleError("The last date of service cannot be in the future.",
                            "last_service_on")
        opened = client.created_at.astimezone(practice.zone()).date()
        if day < opened:
            raise RuleError(f"The account was made on {opened:%B} {opened.day}, {opened.year}: "
                            "the last date of service cannot be before that.",
                            "last_service_on")
        client.last_service_on = day
        record("account.last_service_recorded", actor=actor, target=("user", client.id),
               subject_id=client.id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
