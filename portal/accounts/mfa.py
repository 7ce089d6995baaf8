"""TOTP two-factor authentication and single-use recovery codes.

Seeds are sealed at rest. A code is accepted once: the time step it matched is stored and
any code for that step or an earlier one is refused, so an observed code cannot be replayed.

Recovery codes are 16 characters of Crockford's base32 (80 bits; no I, L, O or U), shown in
four groups of four ("K7QM-2XRD-9VTP-HC4W"). Typing ignores case, spaces and dashes, and
reads O as 0 and I or L as 1. A row holds HMAC-SHA256(user id + code) under the recovery
subkey, derived with HKDF from PORTAL_INDEX_KEY (outside the database; see
portal.crypto.keyring), so a copied database does not let anyone test guesses. A code typed
at sign-in is compared with every unused code of the person, each in constant time.

Codes made before keyed codes (an unkeyed SHA-256 of 40 bits, recoverable from a copied row
in minutes) are not accepted: portal.crypto.canary deletes them once per database, when it
creates the recovery-code canary at the first start-up of this version, and nothing is
sent. The account page then says the person has no recovery codes left and to make new ones;
staff, who must use two-step sign-in, make new ones there (Make new recovery codes).
"""

import base64
import hmac
import logging
import secrets
import time

import pyotp
import segno
from sqlalchemy import delete, func, select, update

from portal.accounts.models import RecoveryCode, User
from portal.crypto import Context, DecryptionError, context_for, open_text, seal
from portal.crypto.blind_index import recovery_code_digest
from portal.db import utcnow
from portal.extensions import db

log = logging.getLogger(__name__)

ISSUER = "coeo portal"
RECOVERY_CODE_COUNT = 10
RECOVERY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: 5 bits each
RECOVERY_LENGTH = 16  # 80 bits
RECOVERY_GROUP = 4
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
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


def normalize_recovery_code(code: str) -> str | None:
    """The 16 characters of a typed recovery code, or None when it cannot be one."""
    typed = normalize_code(code).upper().translate(_READ_AS)
    if len(typed) != RECOVERY_LENGTH or any(ch not in RECOVERY_ALPHABET for ch in typed):
        return None
    return typed


def format_recovery_code(code: str) -> str:
    """Show a code in groups of four, joined by dashes."""
    return "-".join(code[i:i + RECOVERY_GROUP] for i in range(0, len(code), RECOVERY_GROUP))


def new_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes with ten fresh ones; returns them for one showing."""
    db.session.execute(
        RecoveryCode.__table__.delete().where(RecoveryCode.user_id == user.id)
    )
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
        codes.append(format_recovery_code(raw))
        db.session.add(RecoveryCode(user_id=user.id,
                                    code_hash=recovery_code_digest(user.id, raw)))
    return codes


def use_recovery_code(user: User, code: str) -> bool:
    """Spend a recovery code; each works once. Anything not shaped like one is refused."""
    typed = normalize_recovery_code(code)
    if typed is None:
        return False
    digest = recovery_code_digest(user.id, typed)
    rows = db.session.execute(select(RecoveryCode.id, RecoveryCode.code_hash).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))).all()
    row = None
    for candidate in rows:  # every unused code is compared, none skipped
        if hmac.compare_digest(candidate.code_hash, digest) and row is None:
            row = candidate
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


def void_legacy_codes(digest_name: str) -> None:
    """Delete every recovery code made before keyed codes (an unkeyed 40-bit SHA-256 that a
    copy of the database cracks), in the transaction that starts the recovery-code key."""
    if digest_name != "recovery-codes":
        return
    result = db.session.execute(delete(RecoveryCode))
    if result.rowcount:
        log.warning("coeo portal: voided %d recovery codes made before keyed recovery codes; "
                    "people with two-step sign-in must make new ones", result.rowcount)
