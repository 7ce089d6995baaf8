"""Master keys (key-encryption keys) behind a small provider interface, and the index key.

The index key (PORTAL_INDEX_KEY) never keys anything itself: HKDF-SHA256 derives one subkey
per use, each with its own info string, so a digest made for one use says nothing about
another (`DIGEST_INFOS`): the email blind index, the recovery codes, the audit chain's MACs,
the emergency grants' client index, the estimate PDFs' digests, the sign-in sources and the
password pepper.

The stored format is (master key id, opaque wrapped blob), so a cloud KMS or a Vault transit
provider can replace `LocalKeyProvider` later without touching a row. Key bytes live only in
AESGCM objects inside the provider: never in the database, a log, an exception or a repr.
"""

import base64
import binascii
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from portal.crypto.errors import DecryptionError, KeyConfigError
from portal.db import utcnow

KEY_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# 32 bytes = 43 base64 characters (+ one "="); the standard alphabet is accepted too.
KEY_B64_RE = re.compile(r"[A-Za-z0-9_+/-]{43}=?")
ENTRY_SHAPE = "id:base64url-32-bytes"
INDEX_INFO = b"coeo-portal email index v1"
RECOVERY_INFO = b"coeo-portal recovery codes v1"
# Every keyed digest, by the name of its canary ("hmac:<name>"): one HKDF subkey each.
DIGEST_INFOS = {
    "email-index": INDEX_INFO,
    "recovery-codes": RECOVERY_INFO,
    "audit-chain": b"coeo-portal audit chain v1",  # the audit trail's row MACs
    "emergency-index": b"coeo-portal emergency grant index v1",  # whose emergency grant
    "estimate-pdf": b"coeo-portal estimate pdf digest v1",  # an issued estimate's PDF
    "signin-source": b"coeo-portal sign-in source v1",  # one account's sign-in sources
    "password-pepper": b"coeo-portal password pepper v1",  # keys a password before Argon2id
}
DEV_MASTER_FILE = "master.keys"
DEV_INDEX_FILE = "index.key"

DEV_WARNING = """\
coeo portal: created development key files in {instance}
  {master} holds the master key for every sealed message, name and estimate in this database.
  If that file is lost, everything sealed with it is lost. Back it up now, apart from the
  database (not in the same backup). {index} holds the email look-up key.
"""


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps and unwraps data keys under named master keys.

    `wrap` uses `current_key_id` unless `key_id` names another configured key (canaries need
    one per key). `unwrap` raises DecryptionError ("unknown-master-key", "unwrap-failed").
    """

    @property
    def current_key_id(self) -> str: ...

    def key_ids(self) -> list[str]: ...

    def wrap(self, plaintext: bytes, aad: bytes, *,
             key_id: str | None = None) -> tuple[str, bytes]: ...

    def unwrap(self, key_id: str, blob: bytes, aad: bytes) -> bytes: ...


class LocalKeyProvider:
    """Master keys held in process memory; AES-256-GCM, random 96-bit nonce, caller's aad.

    Blob = 12-byte nonce + ciphertext + tag. The first key wraps; the others only unwrap.
    `source` names where the keys came from, for one-line error messages.
    """

    def __init__(self, keys: Sequence[tuple[str, bytes]], *,
                 source: str = "PORTAL_MASTER_KEYS") -> None:
        if not keys:
            raise KeyConfigError(f"{source}: no master key configured")
        self.source = source
        self._order = [key_id for key_id, _ in keys]
        if len(set(self._order)) != len(self._order):
            raise KeyConfigError(f"{source}: a key id appears twice")
        self._aeads = {key_id: AESGCM(key) for key_id, key in keys}
        self._material = {key_id: _fingerprint(key) for key_id, key in keys}

    @classmethod
    def from_text(cls, text: str, *, source: str) -> "LocalKeyProvider":
        """Build from "id:base64url" entries separated by commas or new lines."""
        return cls(parse_master_keys(text, source=source), source=source)

    @property
    def current_key_id(self) -> str:
        return self._order[0]

    def key_ids(self) -> list[str]:
        return list(self._order)

    def wrap(self, plaintext: bytes, aad: bytes, *,
             key_id: str | None = None) -> tuple[str, bytes]:
        key_id = key_id or self._order[0]
        try:
            aead = self._aeads[key_id]
        except KeyError:
            raise KeyConfigError(f"{self.source}: key {key_id!r} is not configured") from None
        nonce = os.urandom(12)
        return key_id, nonce + aead.encrypt(nonce, plaintext, aad)

    def unwrap(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        aead = self._aeads.get(key_id)
        if aead is None:
            raise DecryptionError("unknown-master-key")
        if len(blob) < 12 + 16:
            raise DecryptionError("unwrap-failed")
        try:
            return aead.decrypt(blob[:12], blob[12:], aad)
        except InvalidTag:
            raise DecryptionError("unwrap-failed") from None

    def shares_material_with(self, key: bytes) -> bool:
        """Say whether `key` equals one of the master keys (the index key must not)."""
        return _fingerprint(key) in self._material.values()

    def __repr__(self) -> str:
        return f"<LocalKeyProvider {self.source} keys={self._order!r}>"


def _fingerprint(key: bytes) -> bytes:
    # Compare keys by a one-way digest so no second copy of the material is kept around.
    h = hashes.Hash(hashes.SHA256())
    h.update(b"coeo-portal key fingerprint\x00" + key)
    return h.finalize()


def parse_master_keys(text: str, *, source: str = "PORTAL_MASTER_KEYS") -> list[tuple[str, bytes]]:
    """Parse "id:base64url-32-bytes" entries (commas or new lines; # starts a comment line)."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    raw_entries = re.split(r"[,\n]", "\n".join(lines))
    keys: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for number, raw in enumerate(raw_entries, start=1):
        entry = raw.strip()
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        key_id, encoded = key_id.strip(), encoded.strip()
        key = _decode_key(encoded) if sep and KEY_ID_RE.fullmatch(key_id) else None
        if key is None:
            raise KeyConfigError(f"{source}: entry {number} is not {ENTRY_SHAPE}")
        if key_id in seen:
            raise KeyConfigError(f"{source}: key id {key_id!r} appears twice")
        seen.add(key_id)
        keys.append((key_id, key))
    return keys


def _decode_key(encoded: str) -> bytes | None:
    if not KEY_B64_RE.fullmatch(encoded):
        return None
    encoded = encoded.rstrip("=").replace("+", "-").replace("/", "_") + "="
    try:
        key = base64.urlsafe_b64decode(encoded)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == 32 else None


def encode_key(key: bytes) -> str:
    """Return the base64url form (no padding) used in settings and key files."""
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")


def _subkey(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


class CryptoState:
    """What `init_app` keeps in `app.extensions["portal_crypto"]`: provider and subkeys.

    `index_source` names where the index key came from (a setting or a dev file), for
    one-line error messages; never the key.
    """

    __slots__ = ("_index_subkey", "_recovery_subkey", "_subkeys", "env_name", "index_source",
                 "provider")

    def __init__(self, provider: KeyProvider, index_key: bytes, env_name: str, *,
                 index_source: str = "PORTAL_INDEX_KEY") -> None:
        self.provider = provider
        self.env_name = env_name
        self.index_source = index_source
        self._subkeys = {name: _subkey(index_key, info) for name, info in DIGEST_INFOS.items()}
        self._index_subkey = self._subkeys["email-index"]
        self._recovery_subkey = self._subkeys["recovery-codes"]

    @property
    def index_subkey(self) -> bytes:
        """Keys the email blind index."""
        return self._index_subkey

    @property
    def recovery_subkey(self) -> bytes:
        """Keys the HMAC of each recovery code (portal.accounts.mfa)."""
        return self._recovery_subkey

    def subkey(self, name: str) -> bytes:
        """The subkey of one keyed digest (a name of DIGEST_INFOS); KeyError for another."""
        return self._subkeys[name]

    def digest_keys(self) -> list[tuple[str, str, bytes]]:
        """(canary name, setting it comes from, key) for every keyed digest: one canary each.

        A key added for another keyed digest (an audit MAC key, say) is listed here too, so
        portal.crypto.canary checks it at start-up and in /readyz like the others.
        """
        return [(name, self.index_source, key) for name, key in self._subkeys.items()]

    def __repr__(self) -> str:
        return f"<CryptoState {self.env_name} provider={self.provider!r}>"


def build_state(config: Mapping[str, Any], instance_path: str | os.PathLike[str], *,
                holds_data: Callable[[str], bool] | None = None) -> CryptoState:
    """Read the keys named by the config; create dev key files when allowed. One-line errors.

    `holds_data(kind)` ("master" or "index") says whether the database already holds data
    under a key of that kind: a development key file is then never created anew (a new key
    would not open or find that data), and the error says what to do instead.
    """
    env_name = str(config.get("ENV_NAME") or "")
    production = env_name == "production"
    dev_keys = bool(config.get("PORTAL_DEV_KEYS")) and not production
    instance = Path(instance_path)
    created: list[Path] = []

    provider = _master_provider(config, instance, production=production, dev_keys=dev_keys,
                                created=created, holds_data=holds_data)
    index_key, index_source = _index_key(config, instance, production=production,
                                         dev_keys=dev_keys, created=created,
                                         holds_data=holds_data)
    if isinstance(provider, LocalKeyProvider) and provider.shares_material_with(index_key):
        raise KeyConfigError("PORTAL_INDEX_KEY: must differ from every master key")
    if created:
        print(DEV_WARNING.format(instance=instance, master=DEV_MASTER_FILE,
                                 index=DEV_INDEX_FILE), file=sys.stderr, end="", flush=True)
    return CryptoState(provider, index_key, env_name, index_source=index_source)


def _refuse_new_dev_key(path: Path, kind: str, holds_data: Callable[[str], bool] | None,
                        what: str) -> None:
    if path.exists() or holds_data is None or not holds_data(kind):
        return
    setting = "PORTAL_MASTER_KEYS" if kind == "master" else "PORTAL_INDEX_KEY"
    raise KeyConfigError(f"{path}: missing, and this database already holds {what}; restore "
                         f"the file from your backup or set {setting} (a new key would not "
                         "open them)")


def _master_provider(config: Mapping[str, Any], instance: Path, *, production: bool,
                     dev_keys: bool, created: list[Path],
                     holds_data: Callable[[str], bool] | None = None) -> KeyProvider:
    inline = (config.get("PORTAL_MASTER_KEYS") or "").strip()
    key_file = (config.get("PORTAL_MASTER_KEY_FILE") or "").strip()
    if inline and key_file:
        raise KeyConfigError("PORTAL_MASTER_KEYS: set it or PORTAL_MASTER_KEY_FILE, not both")
    if inline:
        source, text = "PORTAL_MASTER_KEYS", inline
    elif key_file:
        source, text = "PORTAL_MASTER_KEY_FILE", _read_secret(Path(key_file),
                                                              "PORTAL_MASTER_KEY_FILE")
    elif dev_keys:
        path = instance / DEV_MASTER_FILE
        _refuse_new_dev_key(path, "master", holds_data, "sealed data")
        entry = f"dev-{utcnow():%Y%m%d}:{encode_key(os.urandom(32))}\n"
        if _create_secret_file(path, entry):
            created.append(path)
        source, text = str(path), _read_secret(path, str(path))
    elif production:
        raise KeyConfigError("PORTAL_MASTER_KEYS: no master key configured (production needs one)")
    else:
        raise KeyConfigError("PORTAL_MASTER_KEYS: no master key configured "
                             "(set it or PORTAL_MASTER_KEY_FILE)")
    keys = parse_master_keys(text, source=source)
    if not keys:
        raise KeyConfigError(f"{source}: no master key configured"
                             + (" (production needs one)" if production else ""))
    return LocalKeyProvider(keys, source=source)


def _index_key(config: Mapping[str, Any], instance: Path, *, production: bool,
               dev_keys: bool, created: list[Path],
               holds_data: Callable[[str], bool] | None = None) -> tuple[bytes, str]:
    value = (config.get("PORTAL_INDEX_KEY") or "").strip()
    source = "PORTAL_INDEX_KEY"
    if not value and dev_keys:
        path = instance / DEV_INDEX_FILE
        _refuse_new_dev_key(path, "index", holds_data, "accounts")
        if _create_secret_file(path, encode_key(os.urandom(32)) + "\n"):
            created.append(path)
        source, value = str(path), _read_secret(path, str(path)).strip()
    if not value:
        raise KeyConfigError("PORTAL_INDEX_KEY: no index key configured"
                             + (" (production needs one)" if production else ""))
    key = _decode_key(value)
    if key is None:
        raise KeyConfigError(f"{source}: not a base64url-32-bytes value")
    return key, source


def _create_secret_file(path: Path, content: str) -> bool:
    """Create `path` readable by its owner only; False when it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        os.fchmod(fh.fileno(), 0o600)  # whatever the umask says
        fh.write(content)
    return True


def _read_secret(path: Path, setting: str) -> str:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not ASCII text"
        raise KeyConfigError(f"{setting}: cannot read {path} ({reason})") from None
