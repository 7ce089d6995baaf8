"""Canaries: one known value per master key, so a wrong key stops the app at start-up.

Without them a mistyped key would only show up when a page fails to open a message, and a
new data key wrapped under the wrong key would be written meanwhile.
"""

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal.crypto.envelope import provider, wrap_aad
from portal.crypto.errors import DecryptionError, KeyConfigError
from portal.crypto.keyring import KeyProvider
from portal.crypto.models import DataKey, KeyCanary
from portal.extensions import db

CANARY_PLAINTEXT = b"coeo-portal master key canary v1"


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
