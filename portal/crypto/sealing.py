"""Seal and open field values with the owner's data key (AES-256-GCM).

Blob = version (0x01) + 16-byte data key id + 12-byte random nonce + ciphertext and tag.
Associated data = version, table, column, row id, owner id and data key id, so a blob copied
to another row, column or owner does not open. Every failure to open is a DecryptionError.

`seal` and `open_bytes` have a fast path for a warm key cache: one dict lookup and the AEAD
call, so sealing a 2 KB message costs little more than bare AES-GCM. Anything unusual (cold
cache, wrong types, odd blob) takes the slow path, which validates and explains.
"""

import re
import uuid
from dataclasses import dataclass, field
from os import urandom

from cryptography.exceptions import InvalidTag

from portal.crypto import envelope
from portal.crypto.envelope import DataKeyHandle, as_uuid, fast_keys, key_for_blob
from portal.crypto.errors import DecryptionError
from portal.crypto.hooks import report_decrypt_failure

VERSION = 1
HEADER_LEN = 1 + 16
NONCE_LEN = 12
TAG_LEN = 16
MIN_BLOB_LEN = HEADER_LEN + NONCE_LEN + TAG_LEN
UNREADABLE = "this item could not be decrypted"
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class Context:
    """Where a sealed value lives: table, column and the application-made row id."""

    table: str
    column: str
    row_id: uuid.UUID
    _aad: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in (self.table, self.column):
            if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
                raise ValueError("context table and column must be SQL identifiers")
        if not isinstance(self.row_id, uuid.UUID):
            raise TypeError("context row_id must be a uuid.UUID")
        table, column = self.table.encode("ascii"), self.column.encode("ascii")
        # Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        object.__setattr__(self, "_aad", bytes([VERSION, len(table)]) + table
                           + bytes([len(column)]) + column + self.row_id.bytes)


def seal(owner_id: uuid.UUID, context: Context, plaintext: bytes | str) -> bytes:
    """Encrypt `plaintext` for `owner_id` at `context`; creates the owner's data key if new."""
    if plaintext.__class__ is not bytes:
        plaintext = _as_bytes(plaintext)
    try:
        handle = fast_keys.get()[1][owner_id.int]  # type: ignore[index]
        aad = context._aad + handle.tail
    except (LookupError, AttributeError, TypeError):
        handle = None
    if handle is None:  # outside the except block, so errors do not chain a KeyError
        return seal_with(_current_handle(owner_id, context), context, plaintext)
    nonce = urandom(12)  # NONCE_LEN
    return b"".join((handle.header, nonce, handle.encrypt(nonce, plaintext, aad)))


def seal_with(handle: DataKeyHandle, context: Context, plaintext: bytes | str) -> bytes:
    """Seal under a given data key (rotation uses it to reseal under the target key)."""
    if not isinstance(context, Context):
        raise TypeError("context must be a portal.crypto.Context")
    if plaintext.__class__ is not bytes:
        plaintext = _as_bytes(plaintext)
    nonce = urandom(NONCE_LEN)
    aad = context._aad + handle.tail
    return b"".join((handle.header, nonce, handle.aead.encrypt(nonce, plaintext, aad)))


def _current_handle(owner_id: uuid.UUID | str, context: Context) -> DataKeyHandle:
    if not isinstance(context, Context):
        raise TypeError("context must be a portal.crypto.Context")
    return envelope.current_key(as_uuid(owner_id))


def _as_bytes(plaintext: object) -> bytes:
    if isinstance(plaintext, str):
        return plaintext.encode("utf-8")
    if isinstance(plaintext, bytes | bytearray | memoryview):
        return bytes(plaintext)
    raise TypeError("plaintext must be bytes or str")


def open_bytes(owner_id: uuid.UUID, context: Context, blob: bytes) -> bytes:
    """Decrypt a blob sealed for `owner_id` at `context`; DecryptionError if it will not open."""
    try:
        # The header (version + key id) is the cache key, so this checks the version too.
        handle = fast_keys.get()[0][blob[:17]]  # type: ignore[index]
        if handle.owner_int == owner_id.int:
            return handle.decrypt(blob[17:29], blob[29:], context._aad + handle.tail)
    except InvalidTag:
        raise DecryptionError("tampered") from None
    except (LookupError, AttributeError, TypeError, ValueError):
        pass  # cold cache, odd types or a short blob: the slow path says what is wrong
    return _open_slow(owner_id, context, blob)


def _open_slow(owner_id: uuid.UUID | str, context: Context, blob: bytes) -> bytes:
    if not isinstance(context, Context):
        raise TypeError("context must be a portal.crypto.Context")
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise TypeError("sealed value must be bytes")
    owner = as_uuid(owner_id)
    blob = bytes(blob)
    key_id = _header_key_id(blob)
    if len(blob) < MIN_BLOB_LEN:
        raise DecryptionError("truncated")
    handle = key_for_blob(owner, key_id)
    try:
        return handle.aead.decrypt(blob[17:29], blob[29:], context._aad + handle.tail)
    except InvalidTag:
        raise DecryptionError("tampered") from None


def _header_key_id(blob: bytes) -> bytes:
    if not blob:
        raise DecryptionError("malformed")
    if blob[0] != VERSION:
        raise DecryptionError("unknown-version")
    if len(blob) < HEADER_LEN:
        raise DecryptionError("truncated")
    return bytes(blob[1:HEADER_LEN])


def open_text(owner_id: uuid.UUID, context: Context, blob: bytes) -> str:
    """Open a sealed UTF-8 string."""
    data = open_bytes(owner_id, context, blob)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionError("not-text") from None


def open_text_or_none(owner_id: uuid.UUID, context: Context, blob: bytes | None) -> str | None:
    """Open an optional sealed string: None stays None, a bad blob raises DecryptionError."""
    return None if blob is None else open_text(owner_id, context, blob)


def open_text_safe(owner_id: uuid.UUID, context: Context, blob: bytes | None) -> str:
    """Open for display: UNREADABLE (and the failure hooks) instead of an exception.

    A missing value (None) is shown as "". A ciphertext that will not open must never become
    a 500, so templates call this; the hooks audit the failure with ids only.
    """
    if blob is None:
        return ""
    try:
        return open_text(owner_id, context, blob)
    except DecryptionError as exc:
        report_decrypt_failure(owner_id, context, exc.reason)
        return UNREADABLE


def blob_key_id(blob: bytes) -> uuid.UUID:
    """Return the data key id a blob names (rotation and status read only this header)."""
    return uuid.UUID(bytes=_header_key_id(bytes(blob[:HEADER_LEN])))

