"""Password rules (NIST SP 800-63B-4, single-factor) and peppered Argon2id hashing.

At least 15 characters counted as code points, up to 128, any Unicode and spaces, no
composition rules, no expiry; refused when common, breached or built from the user's own
details. Verification uses the password exactly as typed.

The password is keyed before it is hashed: Argon2id of HMAC-SHA256(password) under the
"password-pepper" subkey of PORTAL_INDEX_KEY, which is not in the database (SP 800-63B
5.1.1.2 recommends such a secret salt). A stolen `users.password_hash` then cannot be tested
against guesses at all without the key, however weak the password. Hashes made before the
pepper (no PEPPER_PREFIX) still verify, and `needs_rehash` says so, so the next sign-in
stores the peppered hash.
"""

import re
import unicodedata
from functools import cache
from importlib import resources
from itertools import pairwise

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

from portal.crypto.blind_index import keyed_digest

MIN_LENGTH = 15
MAX_LENGTH = 128
SUGGESTION = (
    "Try a passphrase: four or five unrelated words you can picture, "
    "like “lantern orbit maple quietly”."
)
# The example in the hint is refused too: someone will copy it.
_EXAMPLES = frozenset({"lantern orbit maple quietly"})
_KEYBOARD_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm", "abcdefghijklmnopqrstuvwxyz")
PEPPER = "password-pepper"
PEPPER_PREFIX = "pepper1:"  # then an Argon2id hash of the keyed password


@cache
def _blocklist() -> frozenset[str]:
    text = resources.files("portal.accounts").joinpath("data/common-passwords.txt").read_text()
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _is_sequence(folded: str) -> bool:
    """Spot keyboard walks and counting runs such as 123456789012345 or qwertyuiopasdfg."""
    compact = re.sub(r"\s+", "", folded)
    hits = 0
    for a, b in pairwise(compact):
        if any(a + b in row or b + a in row for row in _KEYBOARD_ROWS) or a + b in "90":
            hits += 1
    return len(compact) > 1 and hits >= len(compact) - 2


def _is_repetition(folded: str) -> bool:
    compact = re.sub(r"\s+", "", folded)
    for size in range(1, len(compact) // 2 + 1):
        unit = compact[:size]
        if len(compact) % size == 0 and unit * (len(compact) // size) == compact:
            return True
    return len(set(compact)) <= 3


def _contains(folded: str, part: str) -> bool:
    """Say whether a personal detail appears in the password.

    Parts of four or more characters count anywhere ("gardner" in "mrgardner2024"); a
    three-letter part only as a word of its own, so "Sam" refuses "sam likes tea" but not
    "the same old song"; shorter parts are ignored.
    """
    if len(part) >= 4:
        return part in folded
    if len(part) == 3:
        return re.search(rf"(?<![^\W\d_]){re.escape(part)}(?![^\W\d_])", folded) is not None
    return False


def problems(password: str, *, email: str = "", name: str = "", practice: str = "") -> list[str]:
    """Return why a new password is refused (empty when it is acceptable)."""
    length = len(password)
    if length < MIN_LENGTH:
        return [f"Use at least {MIN_LENGTH} characters (this has {length}). {SUGGESTION}"]
    if length > MAX_LENGTH:
        return [f"Use at most {MAX_LENGTH} characters (this has {length})."]
    folded = _fold(password)
    squeezed = re.sub(r"\s+", " ", folded).strip()
    stripped = re.sub(r"[\d\W_]+$", "", squeezed)
    found: list[str] = []
    if (squeezed in _blocklist() or squeezed.replace(" ", "") in _blocklist()
            or (len(stripped) >= 4 and stripped in _blocklist()) or squeezed in _EXAMPLES):
        found.append("This password is on a list of common or breached passwords, so it is "
                     "easy to guess.")
    elif _is_repetition(folded) or _is_sequence(folded):
        found.append("This password is a repeated or keyboard pattern, so it is easy to guess.")
    personal = []
    if email:
        local = _fold(email).split("@", 1)[0]
        if _fold(email) in folded or _contains(folded, local):
            personal.append("your email address")
    if name and any(_contains(folded, part) for part in re.split(r"\W+", _fold(name))):
        personal.append("your name")
    if practice and _contains(folded, _fold(practice)):
        personal.append(f"the practice's name ({practice})")
    if personal:
        found.append("Please leave out " + " and ".join(personal) + ": "
                     + ("it is" if len(personal) == 1 else "they are")
                     + " among the first things someone would try.")
    if found:
        found[-1] += " " + SUGGESTION
    return found


def _hasher() -> PasswordHasher:
    cfg = current_app.config
    return PasswordHasher(time_cost=cfg["ARGON2_TIME_COST"], memory_cost=cfg["ARGON2_MEMORY_COST"],
                          parallelism=cfg["ARGON2_PARALLELISM"])


def _peppered(password: str) -> str:
    return keyed_digest(PEPPER, password.encode("utf-8")).hex()


def hash_password(password: str) -> str:
    """Hash the keyed password with Argon2id under the configured parameters."""
    return PEPPER_PREFIX + _hasher().hash(_peppered(password))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Check a password exactly as typed; a missing hash verifies a decoy so timing matches."""
    hasher = _hasher()
    keyed = _peppered(password)
    if stored_hash is None:
        target, typed = _decoy_hash(), keyed
    elif stored_hash.startswith(PEPPER_PREFIX):
        target, typed = stored_hash[len(PEPPER_PREFIX):], keyed
    else:  # made before the pepper: verified as it was made, replaced at this sign-in
        target, typed = stored_hash, password
    try:
        ok = hasher.verify(target, typed)
    except (VerificationError, InvalidHashError):
        return False
    return ok and stored_hash is not None


def needs_rehash(stored_hash: str) -> bool:
    """Say whether the stored hash is unpeppered or used older parameters than today's."""
    if not stored_hash.startswith(PEPPER_PREFIX):
        return True
    return _hasher().check_needs_rehash(stored_hash[len(PEPPER_PREFIX):])


def _decoy_hash() -> str:
    """Return a real Argon2 hash made once per parameter set, so unknown emails cost the same."""
    cfg = current_app.config
    return _decoy_for(cfg["ARGON2_TIME_COST"], cfg["ARGON2_MEMORY_COST"],
                      cfg["ARGON2_PARALLELISM"])


@cache
def _decoy_for(time_cost: int, memory_cost: int, parallelism: int) -> str:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost,
                          parallelism=parallelism).hash("decoy password that never matches")
