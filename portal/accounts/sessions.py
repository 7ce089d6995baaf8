"""Server-side sign-in sessions.

Flask's cookie session is signed, not revocable: a copy kept after sign-out would still work
(flask-login issue 480). So the cookie only carries a random token; the session lives in
`user_sessions`, every request checks it, and signing out deletes it. Its IP address and user
agent are sealed under the account's key (`seal_optional`) and opened only for the Account
page (`list_for`); sessions idle for METADATA_RETENTION_DAYS are purged (accounts.housekeeping).
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Response, current_app, g, request, session
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import LargeBinary, Uuid, bindparam, delete, select, update

from portal.accounts.models import User, UserSession
from portal.crypto import context_for, open_text_safe, seal
from portal.db import new_id, utcnow
from portal.db.transactions import write_transaction
from portal.extensions import db

SESSION_KEY = "sid"
# Write last_seen at most this often (and at least every quarter of the idle timeout, so a
# short timeout still sees activity). The server may therefore end a session up to this much
# before the page's own countdown does; keep it small next to the one-minute warning.
TOUCH_EVERY = timedelta(seconds=5)


def idle_timeout() -> timedelta:
    """Return the idle timeout (SESSION_IDLE_MINUTES may be fractional)."""
    return timedelta(minutes=float(current_app.config["SESSION_IDLE_MINUTES"]))


def absolute_lifetime() -> timedelta:
    return timedelta(hours=float(current_app.config["SESSION_ABSOLUTE_HOURS"]))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def client_details() -> tuple[str | None, str | None]:
    """This request's client address and user agent (at most 255 characters), or Nones."""
    if not request:
        return None, None
    agent = (request.user_agent.string or "")[:255] or None
    return request.remote_addr, agent


def seal_optional(owner_id: uuid.UUID, attribute, row_id: uuid.UUID,
                  text: str | None) -> bytes | None:
    """Seal an optional value of a row (None stays None: nothing is known)."""
    return None if text is None else seal(owner_id, context_for(attribute, row_id), text)


def open_optional(owner_id: uuid.UUID, attribute, row_id: uuid.UUID,
                  blob: bytes | None) -> str | None:
    """Open what `seal_optional` stored for display: None for nothing, and a value that will
    not open is shown as unreadable (and reported), never a 500."""
    if blob is None:
        return None
    return open_text_safe(owner_id, context_for(attribute, row_id), blob)


def start(user: User, *, mfa_verified: bool) -> UserSession:
    """Open a new server session and put a fresh token in a cleared cookie session."""
    token = secrets.token_urlsafe(32)  # 256 bits
    ip, agent = client_details()
    row = UserSession(id=new_id(), token_hash=_digest(token), user_id=user.id,
                      mfa_verified=mfa_verified)
    row.ip_sealed = seal_optional(user.id, UserSession.ip_sealed, row.id, ip)
    row.user_agent_sealed = seal_optional(user.id, UserSession.user_agent_sealed, row.id, agent)
    db.session.add(row)
    session.clear()
    # Flask-WTF caches this request's CSRF token in g; it belongs to the cleared session, so a
    # page rendered after this point (the recovery codes) would carry a token that fails.
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    session[SESSION_KEY] = token
    return row


def renew(user: User) -> UserSession | None:
    """Give this browser a new session token (after a password change or enrolling in two-step
    sign-in): the old token stops working, and the browser stays signed in with the new one."""
    row = current()
    if row is None:
        return None
    mfa_verified = row.mfa_verified
    db.session.delete(row)
    fresh = start(user, mfa_verified=mfa_verified)
    g.user_session = fresh
    return fresh


def current() -> UserSession | None:
    """Return this request's live session row (loaded by the user loader)."""
    return g.get("user_session")


# Built once: every signed-in request runs it (constructing a statement costs more than
# running this one; see README, "Conventions for speed").
_BY_TOKEN = select(UserSession).where(
    UserSession.token_hash == bindparam("digest", type_=LargeBinary()))


def load(alt_id: str) -> User | None:
    """Flask-Login's user loader: the cookie's user must match a live server session."""
    token = session.get(SESSION_KEY)
    if not token or not isinstance(token, str):
        return None
    row = db.session.scalar(_BY_TOKEN, {"digest": _digest(token)})
    if row is None or row.user.alt_id != alt_id or not row.user.active:
        return None
    if row.user.mfa_enabled and not row.mfa_verified:
        return None  # a session from before two-step sign-in was turned on
    now = utcnow()
    idle = idle_timeout()
    # The writes below end the read and run in transactions of their own: on SQLite a read
    # cannot be upgraded to a write once another process has written.
    if now - row.last_seen_at > idle or now - row.created_at > absolute_lifetime():
        with write_transaction():
            db.session.execute(delete(UserSession).where(UserSession.id == row.id))
        g.session_expired = True
        return None
    # A stylesheet or script fetched by an open tab is not activity; only pages move the clock.
    if request.endpoint != "static" and now - row.last_seen_at > min(TOUCH_EVERY, idle / 4):
        with write_transaction(durable=False):  # a lost touch only shortens the idle clock
            db.session.execute(update(UserSession).where(UserSession.id == row.id)
                               .values(last_seen_at=now))
    g.user_session = row
    return row.user


def end_current() -> None:
    """Delete this request's server session; the cookie copy becomes worthless."""
    token = session.get(SESSION_KEY)
    if token:
        db.session.execute(delete(UserSession).where(UserSession.token_hash == _digest(token)))


def forget_site_data(response: Response) -> Response:
    """Ask the browser to drop its cache, cookies and storage of this site (after sign-out)."""
    response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
    return response


def end_all(user_id: uuid.UUID, *, except_id: uuid.UUID | None = None) -> int:
    """End every session of a user (optionally keeping one); returns how many ended."""
    stmt = delete(UserSession).where(UserSession.user_id == user_id)
    if except_id is not None:
        stmt = stmt.where(UserSession.id != except_id)
    return db.session.execute(stmt).rowcount


def end_one(user_id: uuid.UUID, session_id: uuid.UUID) -> bool:
    """End one of the user's own sessions; someone else's session id does nothing."""
    result = db.session.execute(delete(UserSession).where(
        UserSession.user_id == user_id, UserSession.id == session_id))
    return result.rowcount == 1


@dataclass(frozen=True)
class SessionShown:
    """One of a person's sessions as the Account page shows it (address and agent opened)."""

    id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime
    ip: str | None
    user_agent: str | None


_SESSIONS_OF = (select(UserSession.id, UserSession.user_id, UserSession.created_at,
                       UserSession.last_seen_at, UserSession.ip_sealed,
                       UserSession.user_agent_sealed)
                .where(UserSession.user_id == bindparam("user_id", type_=Uuid()))
                .order_by(UserSession.last_seen_at.desc()))


def list_for(user_id: uuid.UUID) -> list[SessionShown]:
    """A person's sessions, newest activity first, opened (one statement; one owner's key)."""
    return [SessionShown(row.id, row.created_at, row.last_seen_at,
                         open_optional(row.user_id, UserSession.ip_sealed, row.id, row.ip_sealed),
                         open_optional(row.user_id, UserSession.user_agent_sealed, row.id,
                                       row.user_agent_sealed))
            for row in db.session.execute(_SESSIONS_OF, {"user_id": user_id})]


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("FxiOS/", "Firefox"),
             ("CriOS/", "Chrome"), ("Chromium/", "Chromium"), ("Chrome/", "Chrome"),
             ("Safari/", "Safari"))
_SYSTEMS = (("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("CrOS", "ChromeOS"),
            ("Windows", "Windows"), ("Macintosh", "Mac"), ("Mac OS X", "Mac"), ("Linux", "Linux"))


def describe_device(user_agent: str | None) -> str:
    """Say which browser and system a user agent is, in words ('Firefox on Windows')."""
    agent = user_agent or ""
    browser = next((name for marker, name in _BROWSERS if marker in agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Unknown device"


# --- the remembered browser -------------------------------------------------------------
# A browser that has signed in to an account is given a signed cookie naming the account (its
# id, never a name or an address) and a random device id. During a lockout pause the right
# password is still accepted from it (service.authenticate), so a stranger who knows an email
# cannot keep its owner out. Signed with SECRET_KEY; the salt keeps it from passing for any
# other signed value of the app.

DEVICE_SALT = "coeo-portal remembered browser v1"
DEVICE_DAYS = 365


def device_cookie_name() -> str:
    secure = bool(current_app.config.get("SESSION_COOKIE_SECURE"))
    return ("__Host-" if secure else "") + "coeo_device"


def _device_signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=DEVICE_SALT)


def _device() -> dict | None:
    raw = request.cookies.get(device_cookie_name()) if request else None
    if not raw or len(raw) > 400:
        return None
    try:
        value = _device_signer().loads(raw, max_age=DEVICE_DAYS * 86400)
    except BadSignature:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("u"), str) \
            or not isinstance(value.get("d"), str):
        return None
    return value


def remembered_user_id() -> uuid.UUID | None:
    """The account this browser has signed in to before (a valid device cookie), or None."""
    value = _device()
    if value is None:
        return None
    try:
        return uuid.UUID(value["u"])
    except ValueError:
        return None


def remember_device(response: Response, user: User) -> Response:
    """Set (or refresh) the device cookie after a successful sign-in of `user`."""
    value = _device()
    device_id = value["d"] if value is not None and value["u"] == str(user.id) \
        else secrets.token_urlsafe(16)
    response.set_cookie(device_cookie_name(),
                        _device_signer().dumps({"u": str(user.id), "d": device_id}),
                        max_age=DEVICE_DAYS * 86400, path="/", httponly=True,
                        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
                        samesite="Lax")
    return response
