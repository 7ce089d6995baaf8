"""TOTP two-factor authentication and single-use recovery codes.

Seeds are sealed at rest. A code is accepted once: the time step it matched is stored and
any code for that step or an earlier one is refused, so an observed code cannot be replayed.
"""

import base64
import hashlib
import hmac
import secrets
import time

import pyotp
import segno
from sqlalchemy import func, select, update

from portal.accounts.models import RecoveryCode, User
from portal.crypto import Context, DecryptionError, context_for, open_text, seal
from portal.db import utcnow
from portal.extensions import db

ISSUER = "coeo portal"
RECOVERY_CODE_COUNT = 10
STEP_SECONDS = 30


def new_seed() -> str:
    return pyotp.random_base32()


def seal_seed(user: User, seed: str) -> bytes:
    return seal(user.id, context_for(User.totp_seed_sealed, user.id), seed)


def open_seed(user: User, sealed: bytes | None = None) -> str | None:
    blob = sealed if sealed is not None else user.totp_seed_sealed
    if blob is None:
        return None
    try:
        return open_text(user.id, context_for(User.totp_seed_sealed, user.id), blob)
    except DecryptionError:
        return None


def _pending_context(user: User) -> Context:
    """A seed being enrolled lives in the session cookie, not a column: its own name."""
    return Context("users", "totp_pending", user.id)


def seal_pending_seed(user: User, seed: str) -> str:
    """Seal a seed that is being enrolled, as text for the cookie session until it is proven.

    Sealed, so the signed-but-readable cookie never shows the key.
    """
    return base64.b64encode(
        seal(user.id, _pending_context(user), seed)).decode()


def open_pending_seed(user: User, blob: str | None) -> str | None:
    """The seed `seal_pending_seed` sealed, or None when there is none or it does not open."""
    if not blob:
        return None
    try:
        return open_text(user.id, _pending_context(user), base64.b64decode(blob))
    except (DecryptionError, ValueError):
        return None


def provisioning_uri(seed: str, account_label: str) -> str:
    return pyotp.TOTP(seed).provisioning_uri(name=account_label, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """Render the enrolment QR code as inline SVG markup (no image request, no script)."""
    qr = segno.make(uri, error="m")
    # A viewBox and no fixed size, so the stylesheet can scale it without cropping.
    return qr.svg_inline(scale=5, dark="#2b2118", light="#ffffff", border=4, omitsize=True,
                         title="QR code for your authenticator app")


def format_key(seed: str) -> str:
    """Group the key in fours so it can be typed by hand."""
    return " ".join(seed[i:i + 4] for i in range(0, len(seed), 4))


def normalize_code(code: str) -> str:
    return "".join(ch for ch in (code or "") if not ch.isspace() and ch != "-")


def matching_step(seed: str, code: str, at: float | None = None) -> int | None:
    """Return the time step a 6-digit code belongs to (±1 step of drift), or None."""
    code = normalize_code(code)
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(seed)
    now = at if at is not None else time.time()
    current = int(now // STEP_SECONDS)
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def accept_totp(user: User, code: str) -> bool:
    """Accept a code once: atomically move the user's last used step forward."""
    seed = open_seed(user)
    if seed is None:
        return False
    step = matching_step(seed, code)
    if step is None:
        return False
    result = db.session.execute(
        update(User)
        .where(User.id == user.id,
               (User.totp_last_step.is_(None)) | (User.totp_last_step < step))
        .values(totp_last_step=step)
    )
    return result.rowcount == 1


def _code_hash(user: User, code: str) -> bytes:
    return hashlib.sha256(user.id.bytes + normalize_code(code).lower().encode()).digest()


def new_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes with ten fresh ones; returns them for one showing."""
    db.session.execute(
        RecoveryCode.__table__.delete().where(RecoveryCode.user_id == user.id)
    )
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = secrets.token_hex(5)  # 10 hex characters, 40 bits
        code = f"{raw[:5]}-{raw[5:]}"
        codes.append(code)
        db.session.add(RecoveryCode(user_id=user.id, code_hash=_code_hash(user, code)))
    return codes


def use_recovery_code(user: User, code: str) -> bool:
    """Spend a recovery code; each works once."""
    code = normalize_code(code)
    if len(code) != 10:
        return False
    digest = _code_hash(user, code)
    row = db.session.scalar(select(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.code_hash == digest,
        RecoveryCode.used_at.is_(None)))
    if row is None:
        return False
    result = db.session.execute(
        update(RecoveryCode).where(RecoveryCode.id == row.id, RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
    )
    return result.rowcount == 1


def recovery_codes_left(user: User) -> int:
    return db.session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))) or 0
