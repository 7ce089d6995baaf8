"""Seal and open field values with the owner's data key (AES-256-GCM).

Blob = version + 16-byte data key id + 12-byte random nonce + ciphertext and tag (45 bytes of
overhead). Associated data = version, table, column, row id, owner id and data key id, so a
blob copied to another row, column or owner, or given another version byte, does not open.
Every failure to open is a DecryptionError.

Two versions, both opened:
- 0x02, padded: every value of up to PADDED_MAX (1,022) bytes: names, emails, subjects,
  IPs, TOTP seeds, file names, short messages. The plaintext is the value's length (2 bytes,
  big-endian), the value and zero bytes, to the smallest of BUCKETS (32, 64, 128, 256, 512,
  1,024 bytes), so the blob's length says only which bucket the value falls in. The largest
  bucket holds the longest name (200 characters) or subject (150) the forms accept in any
  script (up to 4 UTF-8 bytes a character); with 256 as the largest, a long name in
  Chinese or Cyrillic would show its exact length.
- 0x01, unpadded: longer values (message bodies, attachments, documents), as they have
  always been sealed, and every value sealed before padding existed. Their length shows
  (to the byte: it says how much someone wrote, not who they are); padding them to a
  multiple of 1,024 would cost a copy of the value on every open, which the 2 KB open of
  bench/crypto_bench.py has no room for. `portal keys reencrypt` reseals old short values
  as version 2.

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

VERSION = 1  # unpadded: long values, and values sealed before padding
PADDED_VERSION = 2  # padded to a bucket
VERSIONS = (VERSION, PADDED_VERSION)
HEADER_LEN = 1 + 16
NONCE_LEN = 12
TAG_LEN = 16
MIN_BLOB_LEN = HEADER_LEN + NONCE_LEN + TAG_LEN  # the fixed overhead: 45 bytes

# Padded plaintext sizes, smallest first. Changing them never stops a blob opening (the
# length prefix says where the value ends); `portal keys reencrypt` repads to the new ones.
BUCKETS = (32, 64, 128, 256, 512, 1024)
LENGTH_PREFIX = 2  # bytes of the big-endian value length that starts a padded plaintext
PADDED_MAX = BUCKETS[-1] - LENGTH_PREFIX  # longest value that is padded: 1,022 bytes
# A version 1 blob no longer than this holds a value that is sealed padded today.
UNPADDED_SHORT_MAX = MIN_BLOB_LEN + PADDED_MAX
if list(BUCKETS) != sorted(set(BUCKETS)) or BUCKETS[0] <= LENGTH_PREFIX or PADDED_MAX > 0xFFFF:
    raise RuntimeError("BUCKETS must be distinct ascending sizes that a 2-byte length fits")
# Per value length 0..PADDED_MAX: its length prefix and the zero bytes that fill its bucket
# (precomputed, so padding is one join).
_PREFIX = [n.to_bytes(LENGTH_PREFIX, "big") for n in range(PADDED_MAX + 1)]
_FILL = [bytes(next(b for b in BUCKETS if b >= n + LENGTH_PREFIX) - LENGTH_PREFIX - n)
         for n in range(PADDED_MAX + 1)]
UNREADABLE = "this item could not be decrypted"
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class Context:
    """Where a sealed value lives: table, column and the application-made row id."""

    table: str
    column: str
    row_id: uuid.UUID
    _aad: bytes = field(init=False, repr=False, compare=False)  # version 1
    _padded_aad: bytes = field(init=False, repr=False, compare=False)  # version 2

    def __post_init__(self) -> None:
        for name in (self.table, self.column):
            if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
                raise ValueError("context table and column must be SQL identifiers")
        if not isinstance(self.row_id, uuid.UUID):
            raise TypeError("context row_id must be a uuid.UUID")
        table, column = self.table.encode("ascii"), self.column.encode("ascii")
        # Length-prefixed, so ("ab", "c") and ("a", "bc") differ; the version comes first.
        where = (bytes([len(table)]) + table + bytes([len(column)]) + column
                 + self.row_id.bytes)
        object.__setattr__(self, "_aad", bytes([VERSION]) + where)
        object.__setattr__(self, "_padded_aad", bytes([PADDED_VERSION]) + where)


def pad(value: bytes) -> bytes:
    """The padded plaintext of a value of up to PADDED_MAX bytes: length, value, zeros."""
    n = len(value)
    return b"".join((_PREFIX[n], value, _FILL[n]))


def unpad(data: bytes) -> bytes:
    """The value a padded plaintext holds; DecryptionError("malformed") if it is not one."""
    size = len(data)
    if size >= LENGTH_PREFIX:
        end = LENGTH_PREFIX + ((data[0] << 8) | data[1])
        if end <= size and data.count(0, end) == size - end:
            return data[LENGTH_PREFIX:end]
    raise DecryptionError("malformed")


def seal(owner_id: uuid.UUID, context: Context, plaintext: bytes | str) -> bytes:
    """Encrypt `plaintext` for `owner_id` at `context`; creates the owner's data key if new."""
    if plaintext.__class__ is not bytes:
        plaintext = _as_bytes(plaintext)
    try:
        handle = fast_keys.get()[1][owner_id.int]  # type: ignore[index]
        if len(plaintext) > PADDED_MAX:
            header, aad = handle.header, context._aad + handle.tail
        else:
            header, aad = handle.padded_header, context._padded_aad + handle.tail
            plaintext = pad(plaintext)
    except (LookupError, AttributeError, TypeError):
        handle = None
    if handle is None:  # outside the except block, so errors do not chain a KeyError
        return seal_with(_current_handle(owner_id, context), context, plaintext)
    nonce = urandom(12)  # NONCE_LEN
    return b"".join((header, nonce, handle.encrypt(nonce, plaintext, aad)))


def seal_with(handle: DataKeyHandle, context: Context, plaintext: bytes | str) -> bytes:
    """Seal under a given data key (rotation uses it to reseal under the target key)."""
    if not isinstance(context, Context):
        raise TypeError("context must be a portal.crypto.Context")
    if plaintext.__class__ is not bytes:
        plaintext = _as_bytes(plaintext)
    nonce = urandom(NONCE_LEN)
    if len(plaintext) > PADDED_MAX:
        header, aad = handle.header, context._aad + handle.tail
    else:
        header, aad = handle.padded_header, context._padded_aad + handle.tail
        plaintext = pad(plaintext)
    return b"".join((header, nonce, handle.aead.encrypt(nonce, plaintext, aad)))


def current_format(blob: bytes) -> bool:
    """Whether `seal` would write this blob's version for its value today.

    False for a version 1 blob short enough to hold a value that is padded now (sealed
    before padding existed): rotation reseals those."""
    return bool(blob) and (blob[0] != VERSION or len(blob) > UNPADDED_SHORT_MAX)


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
            if handle.padded:  # a version 2 header (see DataKeyHandle.padded_twin)
                return unpad(handle.decrypt(blob[17:29], blob[29:],
                                            context._padded_aad + handle.tail))
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
    return open_with(key_for_blob(owner, key_id), context, blob)


def open_with(handle: DataKeyHandle, context: Context, blob: bytes) -> bytes:
    """Open a blob under a given data key (the one its header names), either version."""
    padded = blob[0] == PADDED_VERSION
    aad = (context._padded_aad if padded else context._aad) + handle.tail
    try:
        data = handle.aead.decrypt(blob[17:29], blob[29:], aad)
    except InvalidTag:
        raise DecryptionError("tampered") from None
    return unpad(data) if padded else data


def _header_key_id(blob: bytes) -> bytes:
    if not blob:
        raise DecryptionError("malformed")
    if blob[0] not in VERSIONS:
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

