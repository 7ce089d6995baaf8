"""Sealing and opening inside an Alembic revision, on the migration's own connection.

A revision that turns a readable column into a sealed one must seal every existing row, and
its downgrade must open them again; both need the keys. `flask db upgrade` runs inside the
app, so the keys are loaded (`app.extensions["portal_crypto"]`), but the session's connection
is not the migration's: on SQLite a second connection would wait for the migration's write
lock forever. `MigrationKeys` reads and creates data keys through the connection it is given.

This is the one module of `portal` a revision may import: its interface (seal, open, digest)
is kept stable, because old revisions keep calling it.

    keys = MigrationKeys(op.get_bind())
    blob = keys.seal(owner_id, "user_sessions", "ip", row_id, "203.0.113.9")
"""

import uuid
from datetime import timedelta

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app
from sqlalchemy import Connection, Uuid, bindparam, column, insert, select, table
from sqlalchemy.types import DateTime, LargeBinary, String

from portal.crypto.blind_index import keyed_digest
from portal.crypto.envelope import DataKeyHandle, KeyRow, wrap_aad
from portal.crypto.errors import DecryptionError, KeyConfigError
from portal.crypto.sealing import Context, open_with, seal_with
from portal.db import new_id, utcnow

_DATA_KEYS = table("data_keys", column("id", Uuid()), column("owner_id", Uuid()),
                   column("master_key_id", String()), column("wrapped", LargeBinary()),
                   column("created_at", DateTime(timezone=True)),
                   column("retired_at", DateTime(timezone=True)),
                   column("shredded_at", DateTime(timezone=True)))
_KEYS_OF = select(_DATA_KEYS).where(_DATA_KEYS.c.owner_id == bindparam("owner", type_=Uuid()))


class MigrationKeys:
    """Seal and open values for a revision; one per revision run (it caches unwrapped keys)."""

    def __init__(self, connection: Connection) -> None:
        state = current_app.extensions.get("portal_crypto")
        if state is None:
            raise KeyConfigError("this migration seals or opens data: run it with the portal's "
                                 "keys configured (flask --app wsgi db upgrade)")
        self.connection = connection
        self.state = state
        self._rows: dict[uuid.UUID, dict[uuid.UUID, KeyRow]] = {}
        self._handles: dict[uuid.UUID, DataKeyHandle] = {}

    def _key_rows(self, owner: uuid.UUID) -> dict[uuid.UUID, KeyRow]:
        rows = self._rows.get(owner)
        if rows is None:
            rows = {row.id: KeyRow(*row) for row in self.connection.execute(
                _KEYS_OF, {"owner": owner})}
            self._rows[owner] = rows
        return rows

    def _handle(self, row: KeyRow) -> DataKeyHandle:
        handle = self._handles.get(row.id)
        if handle is None:
            if row.wrapped is None or row.shredded_at is not None:
                raise DecryptionError("shredded")
            key = self.state.provider.unwrap(row.master_key_id, row.wrapped,
                                             wrap_aad(row.owner_id, row.id, row.master_key_id))
            handle = DataKeyHandle(row.id, row.owner_id, key)
            self._handles[row.id] = handle
        return handle

    def _current(self, owner: uuid.UUID) -> DataKeyHandle:
        rows = self._key_rows(owner)
        live = [row for row in rows.values() if row.live]
        if live:
            return self._handle(max(live, key=lambda r: (r.created_at, r.id.bytes)))
        created_at = utcnow()
        if rows:
            created_at = max(created_at, max(r.created_at for r in rows.values())
                             + timedelta(microseconds=1))
        key, key_id = AESGCM.generate_key(bit_length=256), new_id()
        master = self.state.provider.current_key_id
        _, wrapped = self.state.provider.wrap(key, wrap_aad(owner, key_id, master),
                                              key_id=master)
        self.connection.execute(insert(_DATA_KEYS).values(
            id=key_id, owner_id=owner, master_key_id=master, wrapped=wrapped,
            created_at=created_at))
        row = KeyRow(key_id, owner, master, wrapped, created_at, None, None)
        rows[key_id] = row
        handle = DataKeyHandle(key_id, owner, key)
        self._handles[key_id] = handle
        return handle

    def seal(self, owner: uuid.UUID, table_name: str, column_name: str, row_id: uuid.UUID,
             plaintext: bytes | str) -> bytes:
        """What `portal.crypto.seal` would store (padded, under the owner's current key)."""
        return seal_with(self._current(_uuid(owner)),
                         Context(table_name, column_name, _uuid(row_id)), plaintext)

    def open(self, owner: uuid.UUID, table_name: str, column_name: str, row_id: uuid.UUID,
             blob: bytes) -> bytes:
        """What `portal.crypto.open_bytes` would return; DecryptionError if it will not open."""
        blob = bytes(blob)
        owner = _uuid(owner)
        key_id = uuid.UUID(bytes=blob[1:17])
        row = self._key_rows(owner).get(key_id)
        if row is None:
            raise DecryptionError("unknown-key")
        return open_with(self._handle(row), Context(table_name, column_name, _uuid(row_id)),
                         blob)

    def open_text(self, owner: uuid.UUID, table_name: str, column_name: str,
                  row_id: uuid.UUID, blob: bytes) -> str:
        return self.open(owner, table_name, column_name, row_id, blob).decode("utf-8")

    def digest(self, name: str, message: bytes) -> bytes:
        """`portal.crypto.blind_index.keyed_digest` for the keys the app loaded."""
        return keyed_digest(name, message)


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
