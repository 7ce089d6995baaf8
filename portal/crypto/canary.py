"""Canaries: one known value per key, so a wrong key stops the app at start-up.

Without them a mistyped key would only show up when a page fails to open a message, and a
new data key wrapped under the wrong key would be written meanwhile.

Master keys: a known value wrapped by each. Keyed digests (the email blind index, the
recovery codes; `CryptoState.digest_keys`): the HMAC of a known value under each subkey, in
the same key_canaries table under an id "hmac:<name>" (a colon never appears in a master key
id, so the two never meet). A database that has users but no index canary yet (made before
these canaries) is checked against one user's blind index instead: their sealed email, opened
and indexed again, must give the stored index.

Recovery codes made before the "hmac:recovery-codes" canary existed are an unkeyed SHA-256 of
a 40-bit code, which anyone holding a copy of the database can crack. They are voided (deleted)
in the transaction that creates that canary, once per database: the account page then says
the person has no recovery codes left and should make new ones (see portal.accounts.mfa).
"""

import hmac
from hashlib import sha256

from sqlalchemy import Uuid, func, select
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.exc import IntegrityError

from portal import hooks
from portal.crypto.blind_index import email_index
from portal.crypto.envelope import crypto_state, provider, wrap_aad
from portal.crypto.errors import DecryptionError, KeyConfigError
from portal.crypto.keyring import KeyProvider
from portal.crypto.models import DataKey, KeyCanary
from portal.crypto.sealing import Context, open_text
from portal.extensions import db

CANARY_PLAINTEXT = b"coeo-portal master key canary v1"
DIGEST_CANARY_TEXT = b"coeo-portal keyed digest canary v1"
DIGEST_PREFIX = "hmac:"
RECOVERY_CANARY = DIGEST_PREFIX + "recovery-codes"


def digest_canary(name: str, key: bytes) -> bytes:
    """The canary value of one keyed digest: HMAC-SHA256 of a fixed text, bound to its name."""
    return hmac.new(key, DIGEST_CANARY_TEXT + b"\x00" + name.encode("utf-8"), sha256).digest()


def canary_aad(master_key_id: str) -> bytes:
    """Associated data of a canary: binds it to its master key id."""
    return b"coeo-portal canary v1\x00" + master_key_id.encode("utf-8")


def _source(keys: KeyProvider) -> str:
    return getattr(keys, "source", "PORTAL_MASTER_KEYS")


def ensure_canaries() -> list[str]:
    """Create a canary for every configured master key that has none; return their ids.

    Commits. A canary created at the same moment by another process wins; ours is dropped.
    """
    keys = provider()
    existing = set(db.session.scalars(select(KeyCanary.master_key_id)))
    missing = [key_id for key_id in keys.key_ids() if key_id not in existing]
    for key_id in missing:
        _, blob = keys.wrap(CANARY_PLAINTEXT, canary_aad(key_id), key_id=key_id)
        db.session.add(KeyCanary(master_key_id=key_id, blob=blob))
    digest_rows = {row.master_key_id: row for row in db.session.scalars(
        select(KeyCanary).where(KeyCanary.master_key_id.startswith(DIGEST_PREFIX)))}
    for name, _source, key in crypto_state().digest_keys():
        canary_id = DIGEST_PREFIX + name
        if canary_id in existing:
            row = digest_rows.get(canary_id)
            if row is not None and not hmac.compare_digest(row.blob, digest_canary(name, key)):
                row.blob = digest_canary(name, key)  # no users: nothing keyed under the old
                missing.append(canary_id)
            continue
        if canary_id == RECOVERY_CANARY:
            _void_legacy_recovery_codes()
        db.session.add(KeyCanary(master_key_id=canary_id, blob=digest_canary(name, key)))
        missing.append(canary_id)
    if missing:
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            check_canaries()
            return []
    return missing


def check_canaries() -> None:
    """Raise KeyConfigError (one line) when the configured keys do not fit this database.

    A configured key must open its canary, or, if it has none yet, one of the data keys it
    wrapped. Every data key must be wrapped by a configured key.
    """
    keys = provider()
    source = _source(keys)
    configured = keys.key_ids()
    canaries = dict(db.session.execute(select(KeyCanary.master_key_id, KeyCanary.blob)).all())
    _check_master_keys(keys, source, configured, canaries)
    _check_digest_keys(canaries)


def _check_master_keys(keys: KeyProvider, source: str, configured: list[str],
                       canaries: dict[str, bytes]) -> None:
    for key_id in configured:
        if key_id in canaries:
            if not _opens_canary(keys, key_id, canaries[key_id]):
                raise KeyConfigError(f"{source}: key {key_id!r} does not match this database")
            continue
        sample = db.session.execute(
            select(DataKey.id, DataKey.owner_id, DataKey.wrapped)
            .where(DataKey.master_key_id == key_id, DataKey.wrapped.is_not(None)).limit(1)
        ).first()
        if sample is not None:
            try:
                keys.unwrap(key_id, sample.wrapped, wrap_aad(sample.owner_id, sample.id, key_id))
            except DecryptionError:
                raise KeyConfigError(
                    f"{source}: key {key_id!r} does not match this database") from None
    counts = db.session.execute(
        select(DataKey.master_key_id, func.count())
        .where(DataKey.wrapped.is_not(None))
        .group_by(DataKey.master_key_id).order_by(DataKey.master_key_id)
    )
    for key_id, count in counts:
        if key_id not in configured:
            noun = "data key is" if count == 1 else "data keys are"
            raise KeyConfigError(
                f"{source}: {count} {noun} wrapped by key {key_id!r}, which is not configured")


def _opens_canary(keys: KeyProvider, key_id: str, blob: bytes) -> bool:
    try:
        return keys.unwrap(key_id, blob, canary_aad(key_id)) == CANARY_PLAINTEXT
    except DecryptionError:
        return False


def _check_digest_keys(canaries: dict[str, bytes]) -> None:
    """Each keyed digest's subkey must give its canary (or, with none yet, a user's index)."""
    for name, source, key in crypto_state().digest_keys():
        stored = canaries.get(DIGEST_PREFIX + name)
        if stored is None:
            if name == "email-index" and not _index_fits_a_user():
                raise KeyConfigError(f"{source}: does not match this database "
                                     "(a user's email index)")
            continue
        if not hmac.compare_digest(stored, digest_canary(name, key)) and _has_users():
            raise KeyConfigError(f"{source}: does not match this database ({name} canary)")


# The accounts' table, named here rather than imported: the base imports no feature. Only
# the id, the blind index and the sealed email are read (sealed_column's naming rule gives
# the email's associated data: table "users", column "email").
_USERS = sql_table("users", sql_column("id", Uuid()), sql_column("email_index"),
                   sql_column("email_sealed"))


def _has_users() -> bool:
    """Whether anything can be keyed under the digest keys yet (a canary alone guards nothing:
    ensure_canaries renews it, e.g. after a development index.key was made again)."""
    return db.session.execute(select(_USERS.c.id).limit(1)).first() is not None


def _index_fits_a_user() -> bool:
    """True when one user's stored email index is the index of their sealed email (or when
    there is no user whose email opens, so nothing can be told)."""
    row = db.session.execute(select(_USERS.c.id, _USERS.c.email_index, _USERS.c.email_sealed)
                             .order_by(_USERS.c.id).limit(1)).first()
    if row is None:
        return True
    try:
        email = open_text(row.id, Context("users", "email", row.id), row.email_sealed)
    except DecryptionError:
        return True  # a shredded or unreadable email says nothing about the index key
    return hmac.compare_digest(email_index(email), row.email_index)


def _void_legacy_recovery_codes() -> None:
    """Ask the feature that keeps recovery codes to void those made before keyed codes."""
    for void in hooks.digest_key_started:
        void(RECOVERY_CANARY.removeprefix(DIGEST_PREFIX))
