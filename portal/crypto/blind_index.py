"""Keyed digests: the email blind index, the recovery-code digest and the other keyed digests.

Email: HMAC-SHA256 of the normalized address under a subkey derived (HKDF-SHA256, info
b"coeo-portal email index v1") from PORTAL_INDEX_KEY, never from a master key or SECRET_KEY.
Recovery codes: HMAC-SHA256 of the user id and the code under another subkey of the same key
(info b"coeo-portal recovery codes v1"), so neither digest can be tested without the key.
"""

import hmac
import unicodedata
import uuid
from hashlib import sha256

from portal.crypto.envelope import crypto_state


def normalize_email(email: str) -> str:
    """Strip, NFKC-normalize and casefold, so look-ups ignore case and Unicode look-alikes."""
    if not isinstance(email, str):
        raise TypeError("email must be a str")
    return unicodedata.normalize("NFKC", email.strip()).casefold()


def email_index(email: str) -> bytes:
    """Return the 32-byte blind index of an email address for the current app's index key."""
    message = normalize_email(email).encode("utf-8")
    return hmac.new(crypto_state().index_subkey, message, sha256).digest()


def recovery_code_digest(user_id: uuid.UUID, code: str) -> bytes:
    """Return the 32-byte HMAC of a normalized recovery code (portal.accounts.mfa) for a user."""
    return hmac.new(crypto_state().recovery_subkey, user_id.bytes + code.encode("ascii"),
                    sha256).digest()


def keyed_digest(name: str, message: bytes) -> bytes:
    """HMAC-SHA256 of `message` under the subkey of one keyed digest (keyring.DIGEST_INFOS):
    without PORTAL_INDEX_KEY nobody can compute it, so a stolen row cannot be tested."""
    return hmac.new(crypto_state().subkey(name), message, sha256).digest()


def pseudonym(name: str, user_id: uuid.UUID) -> uuid.UUID:
    """A UUID-shaped keyed stand-in for a user id (16 bytes of `keyed_digest`), for a column
    that must find a person's rows without naming them to someone holding only the database
    (an emergency grant's client, say)."""
    return uuid.UUID(bytes=keyed_digest(name, user_id.bytes)[:16])
