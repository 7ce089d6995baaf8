"""Per-client data keys: created on first use, stored wrapped, unwrapped once per app context.

Each owner (a user id) has a 256-bit data key. The database holds it only wrapped by a master
key, with associated data naming the owner, the data key id and the master key id, so a
wrapped key copied to another row or relabelled with another master key will not unwrap.
Unwrapped keys are cached on `flask.g`, which lives for one request or one CLI command.
"""

import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import NamedTuple

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import appcontext_pushed, appcontext_tearing_down, current_app, g
from sqlalchemy import Uuid, bindparam, event, select

from portal.crypto.errors import DecryptionError
from portal.crypto.keyring import CryptoState, KeyProvider
from portal.crypto.models import DataKey
from portal.db import new_id, utcnow
from portal.extensions import db

CACHE_ATTR = "_portal_crypto_keys"
PENDING_INFO = "portal_crypto_new_keys"
WRAP_AAD_LABEL = b"coeo-portal data key v1\x00"
SEAL_VERSION = 1  # unpadded (long values, and every value sealed before padding)
PADDED_VERSION = 2  # padded to a length bucket (see portal.crypto.sealing)
HEADER_PREFIX = bytes([SEAL_VERSION])
PADDED_PREFIX = bytes([PADDED_VERSION])
PRELOAD_CHUNK = 1000  # owners per SELECT; keeps IN lists inside every driver's limits


def crypto_state() -> CryptoState:
    """Return the state `init_app` built for the current app."""
    try:
        return current_app.extensions["portal_crypto"]
    except KeyError:
        raise RuntimeError("portal.crypto.init_app(app) has not run for this app") from None


def provider() -> KeyProvider:
    """Return the current app's master key provider."""
    return crypto_state().provider


def as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    """Accept a UUID or its string form; anything else is a programming error."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        return uuid.UUID(value)
    raise TypeError("owner id must be a uuid.UUID")


def wrap_aad(owner_id: uuid.UUID, data_key_id: uuid.UUID, master_key_id: str) -> bytes:
    """Associated data of a wrapped data key: owner, data key id and master key id."""
    return (WRAP_AAD_LABEL + owner_id.bytes + data_key_id.bytes
            + master_key_id.encode("utf-8"))


class KeyRow(NamedTuple):
    """One data_keys row as loaded (plain values, so a rollback cannot expire it)."""

    id: uuid.UUID
    owner_id: uuid.UUID
    master_key_id: str
    wrapped: bytes | None
    created_at: datetime
    retired_at: datetime | None
    shredded_at: datetime | None

    @property
    def live(self) -> bool:
        return self.retired_at is None and self.shredded_at is None and self.wrapped is not None


KEY_COLUMNS = (DataKey.id, DataKey.owner_id, DataKey.master_key_id, DataKey.wrapped,
               DataKey.created_at, DataKey.retired_at, DataKey.shredded_at)
# Built once: most pages run it (see README, "Conventions for speed").
_KEYS_OF = select(*KEY_COLUMNS).where(DataKey.owner_id.in_(
    bindparam("owners", expanding=True, type_=Uuid())))


class DataKeyHandle:
    """An unwrapped data key with the bytes the seal format needs precomputed.

    `padded` is False; `padded_twin()` is the same key with `padded` True, which the cache
    files under the version 2 header, so opening learns the blob's version from the one
    lookup it makes anyway (the open of a 2 KB message has no room for another test)."""

    __slots__ = ("aead", "decrypt", "encrypt", "header", "id", "id_bytes", "owner_id",
                 "owner_int", "padded", "padded_header", "tail")

    def __init__(self, data_key_id: uuid.UUID, owner_id: uuid.UUID, key: bytes) -> None:
        self.id = data_key_id
        self.id_bytes = data_key_id.bytes
        self.owner_id = owner_id
        self.owner_int = owner_id.int
        self.aead = AESGCM(key)
        self.encrypt, self.decrypt = self.aead.encrypt, self.aead.decrypt  # hot path: bound once
        self.header = HEADER_PREFIX + self.id_bytes
        self.padded_header = PADDED_PREFIX + self.id_bytes
        self.tail = owner_id.bytes + self.id_bytes  # end of every seal's associated data
        self.padded = False

    def padded_twin(self) -> "DataKeyHandle":
        twin = object.__new__(DataKeyHandle)
        for name in DataKeyHandle.__slots__:
            setattr(twin, name, getattr(self, name))
        twin.padded = True
        return twin

    def __repr__(self) -> str:
        return f"<DataKeyHandle {self.id} owner={self.owner_id}>"


class KeyCache:
    """Per app context: unwrapped keys by id, current key per owner, rows loaded per owner."""

    __slots__ = ("by_header", "current", "rows", "unwraps")

    def __init__(self) -> None:
        # Keyed by the 17-byte blob header (version + key id): one lookup checks both. Each
        # key is there twice, under the header of each version (`add`).
        self.by_header: dict[bytes, DataKeyHandle] = {}
        self.current: dict[int, DataKeyHandle] = {}
        self.rows: dict[int, dict[uuid.UUID, KeyRow]] = {}
        self.unwraps = 0

    def add(self, handle: DataKeyHandle) -> None:
        """Cache an unwrapped key under the header of every blob version that names it."""
        self.by_header[handle.header] = handle
        self.by_header[handle.padded_header] = handle.padded_twin()

    def forget_key(self, key_id: uuid.UUID, owner_int: int) -> None:
        """Drop a key whose row a rollback discarded, and what was derived from its owner's rows."""
        self.by_header.pop(HEADER_PREFIX + key_id.bytes, None)
        self.by_header.pop(PADDED_PREFIX + key_id.bytes, None)
        self.rows.pop(owner_int, None)
        self.current.pop(owner_int, None)

    def __repr__(self) -> str:
        return f"<KeyCache keys={len(self.by_header) // 2} owners={len(self.rows)}>"


# The cache lives on flask.g. `fast_keys` holds the current app context's (by_header, current)
# dicts for the seal/open fast path: reaching them through g costs more than the AES-GCM of a
# 2 KB message. It is set to None when an app context is pushed and reset when that context
# tears down, so it never outlives (or crosses into) another context; a context it does not
# track leaves it None, and the slow path through g is used.
FastKeys = tuple[dict[bytes, "DataKeyHandle"], dict[int, "DataKeyHandle"]]
fast_keys: ContextVar[FastKeys | None] = ContextVar("portal_crypto_fast_keys", default=None)
RESET_ATTR = "_portal_crypto_fast_reset"


def _on_appcontext_pushed(sender, **extra) -> None:
    if RESET_ATTR not in g:  # the same context pushed again keeps its first token
        setattr(g, RESET_ATTR, fast_keys.set(None))


def _on_appcontext_tearing_down(sender, **extra) -> None:
    token = g.pop(RESET_ATTR, None)
    if token is None:
        return
    try:
        fast_keys.reset(token)
    except ValueError:  # torn down in another contextvars.Context: just disable it here
        fast_keys.set(None)


appcontext_pushed.connect(_on_appcontext_pushed)
appcontext_tearing_down.connect(_on_appcontext_tearing_down)


def key_cache() -> KeyCache:
    """Return this app context's cache, creating it on first use."""
    cache = g.get(CACHE_ATTR)
    if cache is None:
        cache = KeyCache()
        setattr(g, CACHE_ATTR, cache)
    if RESET_ATTR in g:
        fast = fast_keys.get()
        if fast is None or fast[0] is not cache.by_header:
            fast_keys.set((cache.by_header, cache.current))
    return cache


def forget_keys() -> None:
    """Drop every cached key (rotation calls this after changing data_keys)."""
    g.pop(CACHE_ATTR, None)
    if RESET_ATTR in g:
        fast_keys.set(None)


def _load_rows(cache: KeyCache, owners: Iterable[uuid.UUID]) -> None:
    owners = list(owners)
    if not owners:
        return
    result = db.session.execute(_KEYS_OF, {"owners": owners}).all()
    fresh: dict[int, dict[uuid.UUID, KeyRow]] = {owner.int: {} for owner in owners}
    for raw in result:
        row = KeyRow(*raw)
        fresh[row.owner_id.int][row.id] = row
    cache.rows.update(fresh)


def _rows_for(cache: KeyCache, owner: uuid.UUID, *, reload: bool = False
              ) -> dict[uuid.UUID, KeyRow]:
    rows = None if reload else cache.rows.get(owner.int)
    if rows is None:
        _load_rows(cache, [owner])
        rows = cache.rows[owner.int]
    return rows


def _newest_live(rows: dict[uuid.UUID, KeyRow]) -> KeyRow | None:
    live = [row for row in rows.values() if row.live]
    return max(live, key=lambda r: (r.created_at, r.id.bytes)) if live else None


def _handle(cache: KeyCache, row: KeyRow) -> DataKeyHandle:
    handle = cache.by_header.get(HEADER_PREFIX + row.id.bytes)
    if handle is not None:
        return handle
    if row.wrapped is None or row.shredded_at is not None:
        raise DecryptionError("shredded")
    key = provider().unwrap(row.master_key_id, row.wrapped,
                            wrap_aad(row.owner_id, row.id, row.master_key_id))
    if len(key) != 32:
        raise DecryptionError("unwrap-failed")
    cache.unwraps += 1
    handle = DataKeyHandle(row.id, row.owner_id, key)
    cache.add(handle)
    return handle


def current_key(owner_id: uuid.UUID | str) -> DataKeyHandle:
    """Return the owner's current data key (newest live one), creating it on first use."""
    owner = as_uuid(owner_id)
    cache = key_cache()
    handle = cache.current.get(owner.int)
    if handle is None:
        newest = _newest_live(_rows_for(cache, owner))
        handle = _handle(cache, newest) if newest else create_data_key(owner)
        cache.current[owner.int] = handle
    return handle


def key_for_blob(owner_id: uuid.UUID, data_key_id: bytes) -> DataKeyHandle:
    """Return the owner's data key named by a blob header; DecryptionError if there is none."""
    cache = key_cache()
    handle = cache.by_header.get(HEADER_PREFIX + data_key_id)
    if handle is not None:
        if handle.owner_int != owner_id.int:
            raise DecryptionError("unknown-key")
        return handle
    key_id = uuid.UUID(bytes=data_key_id)
    rows = _rows_for(cache, owner_id)
    if key_id not in rows:  # perhaps created since we looked (another process rotating)
        rows = _rows_for(cache, owner_id, reload=True)
    row = rows.get(key_id)
    if row is None:
        raise DecryptionError("unknown-key")
    return _handle(cache, row)


def create_data_key(owner_id: uuid.UUID | str) -> DataKeyHandle:
    """Add a fresh data key for the owner to the session (the caller's transaction commits it).

    Its created_at is later than any existing key of the owner, so "newest" is never a tie.
    """
    owner = as_uuid(owner_id)
    cache = key_cache()
    rows = _rows_for(cache, owner)
    created_at = utcnow()
    if rows:
        latest = max(row.created_at for row in rows.values())
        created_at = max(created_at, latest + timedelta(microseconds=1))
    key = AESGCM.generate_key(bit_length=256)
    key_id = new_id()
    keys = provider()
    master_key_id = keys.current_key_id
    used_id, wrapped = keys.wrap(key, wrap_aad(owner, key_id, master_key_id),
                                 key_id=master_key_id)
    if used_id != master_key_id:  # a provider must wrap under the key the aad names
        raise RuntimeError("key provider wrapped under an unexpected master key")
    db.session.add(DataKey(id=key_id, owner_id=owner, master_key_id=master_key_id,
                           wrapped=wrapped, created_at=created_at))
    rows[key_id] = KeyRow(key_id, owner, master_key_id, wrapped, created_at, None, None)
    handle = DataKeyHandle(key_id, owner, key)
    cache.add(handle)
    # Remembered on the session whose transaction holds the row (see _after_soft_rollback).
    db.session.info.setdefault(PENDING_INFO, []).append((cache, key_id, owner.int))
    return handle


def preload_keys(owner_ids: Iterable[uuid.UUID | str]) -> int:
    """Load and unwrap the live keys of many owners with one SELECT (per 1000 owners).

    For list pages that open many owners' names. Owners already cached cost nothing.
    Returns the number of keys unwrapped. Keys that cannot be unwrapped are skipped here;
    opening a blob under them raises DecryptionError as usual.
    """
    cache = key_cache()
    wanted = list(dict.fromkeys(as_uuid(o) for o in owner_ids))
    missing = [o for o in wanted if o.int not in cache.rows]
    for start in range(0, len(missing), PRELOAD_CHUNK):
        _load_rows(cache, missing[start:start + PRELOAD_CHUNK])
    before = cache.unwraps
    for owner in wanted:
        rows = cache.rows[owner.int]
        for row in rows.values():
            if row.wrapped is not None and row.shredded_at is None:  # retired ones too
                try:
                    _handle(cache, row)
                except DecryptionError:
                    continue
        newest = _newest_live(rows)
        if newest is not None and owner.int not in cache.current:
            handle = cache.by_header.get(HEADER_PREFIX + newest.id.bytes)
            if handle is not None:
                cache.current[owner.int] = handle
    return cache.unwraps - before


def _after_commit(session) -> None:
    session.info.pop(PENDING_INFO, None)


def _after_soft_rollback(session, previous_transaction) -> None:
    # A key created in a transaction that rolled back does not exist: forget it, or a later
    # seal in the same app context would name a key that is not in the database. (A rolled
    # back savepoint forgets keys made before it too; they are simply loaded again.)
    for cache, key_id, owner_int in session.info.pop(PENDING_INFO, ()):
        cache.forget_key(key_id, owner_int)


event.listen(db.session, "after_commit", _after_commit)
event.listen(db.session, "after_soft_rollback", _after_soft_rollback)
