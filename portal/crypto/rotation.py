"""Key rotation and crypto-shredding as plain service functions (the CLI is a thin wrapper).

- `rewrap`: wrap every data key under the newest master key. Cheap: no field is touched.
  Afterwards `status` shows nothing depends on the old master key, and it can be removed.
- `reencrypt`: give owners fresh data keys and reseal their fields in batches, one commit per
  batch. Safe to re-run after a crash: an owner with more than one live key is resumed with
  its newest key, blobs already naming it are skipped, and old keys are retired only once no
  blob names them. Resealing writes today's format, so one run also pads every short value
  sealed before padding existed (`status` counts those as `unpadded`).
- `shred`: drop an owner's wrapped keys, for records past retention.

Blob headers name their data key, so status and the retire check count keys in SQL
(`substr`) without reading whole blobs.
"""

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, literal_column, select, update

from portal import hooks
from portal.crypto import envelope
from portal.crypto.envelope import as_uuid, forget_keys, preload_keys, provider, wrap_aad
from portal.crypto.errors import DecryptionError
from portal.crypto.hooks import report_decrypt_failure, report_key_event
from portal.crypto.models import DataKey
from portal.crypto.registry import SealedField, sealed_fields
from portal.crypto.sealing import (
    HEADER_LEN,
    UNPADDED_SHORT_MAX,
    VERSION,
    VERSIONS,
    current_format,
    open_bytes,
    seal_with,
)
from portal.db import utcnow
from portal.extensions import db

Progress = Callable[[int], None]
AGE_BUCKETS = ((timedelta(days=90), "under 90 days"), (timedelta(days=365), "90 days to 1 year"))
OLDEST_BUCKET = "over 1 year"


# ----------------------------------------------------------------------------- status


@dataclass
class MasterKeyStatus:
    key_id: str
    configured: bool
    current: bool
    data_keys: int = 0  # live or retired keys wrapped by it (shredded ones need nothing)
    sealed_values: int = 0  # blobs whose data key it wraps


@dataclass
class BucketStatus:
    state: str  # current, older (live, mid-reencrypt), retired, shredded
    age: str
    data_keys: int = 0
    sealed_values: int = 0


@dataclass
class FieldStatus:
    table: str
    column: str
    values: int = 0
    on_current_key: int = 0
    on_older_key: int = 0
    unopenable: int = 0  # unknown or shredded data key, or not a sealed blob
    unpadded: int = 0  # short values sealed before padding (version 1): reencrypt pads them


@dataclass
class KeyStatus:
    master_keys: list[MasterKeyStatus]
    buckets: list[BucketStatus]
    fields: list[FieldStatus]

    def master(self, key_id: str) -> MasterKeyStatus | None:
        return next((m for m in self.master_keys if m.key_id == key_id), None)


def _header_counts(sealed: SealedField) -> Counter[bytes]:
    """Count blobs per 17-byte header (version + data key id), in SQL."""
    blob = sealed.blob_column
    head = func.substr(blob, literal_column("1"), literal_column(str(HEADER_LEN)))
    rows = db.session.execute(
        select(head, func.count()).where(blob.is_not(None)).group_by(head)
    )
    return Counter({bytes(h or b""): n for h, n in rows})


def _unpadded_count(sealed: SealedField) -> int:
    """Count version 1 blobs short enough to hold a value that is padded today, in SQL."""
    blob = sealed.blob_column
    version = func.substr(blob, literal_column("1"), literal_column("1"))
    return db.session.scalar(
        select(func.count()).select_from(sealed.model).where(
            blob.is_not(None), version == bindparam("v1", bytes([VERSION]), type_=blob.type),
            func.length(blob) <= UNPADDED_SHORT_MAX)
    ) or 0


def _key_ids_in_use() -> set[uuid.UUID]:
    """Every data key id some registered blob names."""
    used: set[uuid.UUID] = set()
    for sealed in sealed_fields():
        blob = sealed.blob_column
        head = func.substr(blob, literal_column("1"), literal_column(str(HEADER_LEN)))
        for (h,) in db.session.execute(select(head).where(blob.is_not(None)).distinct()):
            h = bytes(h or b"")
            if len(h) == HEADER_LEN and h[0] in VERSIONS:
                used.add(uuid.UUID(bytes=h[1:]))
    return used


def _age_bucket(age: timedelta) -> str:
    for limit, label in AGE_BUCKETS:
        if age < limit:
            return label
    return OLDEST_BUCKET


def status(now: datetime | None = None) -> KeyStatus:
    """Count data keys per master key, and sealed values per data key generation and age."""
    now = now or utcnow()
    keys = provider()
    configured = keys.key_ids()
    rows = [envelope.KeyRow(*r) for r in db.session.execute(select(*envelope.KEY_COLUMNS))]
    by_id = {row.id: row for row in rows}
    newest: dict[uuid.UUID, envelope.KeyRow] = {}
    for row in rows:
        best = newest.get(row.owner_id)
        if row.live and (best is None or (row.created_at, row.id.bytes)
                         > (best.created_at, best.id.bytes)):
            newest[row.owner_id] = row
    current_ids = {row.id for row in newest.values()}

    def state_of(row: envelope.KeyRow) -> str:
        if row.shredded_at is not None or row.wrapped is None:
            return "shredded"
        if row.retired_at is not None:
            return "retired"
        return "current" if row.id in current_ids else "older"

    values_per_key: Counter[uuid.UUID] = Counter()
    fields_out = []
    for sealed in sealed_fields():
        fs = FieldStatus(sealed.table, sealed.column)
        for header, count in _header_counts(sealed).items():
            fs.values += count
            row = None
            if len(header) == HEADER_LEN and header[0] in VERSIONS:
                row = by_id.get(uuid.UUID(bytes=header[1:]))
            if row is None or state_of(row) == "shredded":
                fs.unopenable += count
                continue
            values_per_key[row.id] += count
            if row.id in current_ids:
                fs.on_current_key += count
            else:
                fs.on_older_key += count
        fs.unpadded = _unpadded_count(sealed)
        fields_out.append(fs)

    masters = {k: MasterKeyStatus(k, True, k == keys.current_key_id) for k in configured}
    buckets: dict[tuple[str, str], BucketStatus] = {}
    for row in rows:
        state = state_of(row)
        bucket_key = (state, _age_bucket(now - row.created_at))
        bucket = buckets.setdefault(bucket_key, BucketStatus(*bucket_key))
        bucket.data_keys += 1
        bucket.sealed_values += values_per_key[row.id]
        if state != "shredded":
            master = masters.setdefault(row.master_key_id,
                                        MasterKeyStatus(row.master_key_id, False, False))
            master.data_keys += 1
            master.sealed_values += values_per_key[row.id]
    order = {"current": 0, "older": 1, "retired": 2, "shredded": 3}
    ages = [label for _, label in AGE_BUCKETS] + [OLDEST_BUCKET]
    return KeyStatus(
        master_keys=list(masters.values()),
        buckets=sorted(buckets.values(), key=lambda b: (order[b.state], ages.index(b.age))),
        fields=fields_out,
    )


# ----------------------------------------------------------------------------- rewrap


@dataclass
class RewrapResult:
    master_key_id: str
    rewrapped: int = 0
    already_current: int = 0
    not_configured: int = 0  # wrapped by a master key that is not configured: left alone
    failed: int = 0  # configured key, but the wrapped blob would not open


def keys_to_rewrap() -> int:
    """How many data keys `rewrap` would touch (for a progress bar)."""
    return db.session.scalar(
        select(func.count()).select_from(DataKey).where(
            DataKey.wrapped.is_not(None), DataKey.master_key_id != provider().current_key_id)
    ) or 0


@contextmanager
def _key_operation() -> Iterator[None]:
    """Roll back whatever a key operation left uncommitted if it fails, and always drop the
    unwrapped keys it cached."""
    try:
        yield
    except BaseException:
        db.session.rollback()
        raise
    finally:
        forget_keys()


def rewrap(*, batch_size: int = 500, progress: Progress | None = None,
           actor: Any = None) -> RewrapResult:
    """Wrap every data key under the newest master key; one commit per batch; re-runnable."""
    keys = provider()
    target = keys.current_key_id
    configured = set(keys.key_ids())
    result = RewrapResult(target)
    result.already_current = db.session.scalar(
        select(func.count()).select_from(DataKey)
        .where(DataKey.wrapped.is_not(None), DataKey.master_key_id == target)) or 0
    ids = list(db.session.scalars(
        select(DataKey.id).where(DataKey.wrapped.is_not(None), DataKey.master_key_id != target)
        .order_by(DataKey.id)))
    with _key_operation():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            for row in db.session.scalars(select(DataKey).where(DataKey.id.in_(chunk))):
                if row.master_key_id not in configured:
                    result.not_configured += 1
                    continue
                try:
                    key = keys.unwrap(row.master_key_id, row.wrapped or b"",
                                      wrap_aad(row.owner_id, row.id, row.master_key_id))
                except DecryptionError:
                    result.failed += 1
                    continue
                _, row.wrapped = keys.wrap(key, wrap_aad(row.owner_id, row.id, target),
                                           key_id=target)
                row.master_key_id = target
                result.rewrapped += 1
            db.session.commit()
            if progress:
                progress(len(chunk))
        report_key_event("crypto.rewrap", actor=actor, details=_counts(result))
        db.session.commit()
    return result


# ----------------------------------------------------------------------------- reencrypt


@dataclass
class ReencryptResult:
    clients_rotated: int = 0  # got a fresh data key in this run
    clients_resumed: int = 0  # already had a newer key from an interrupted run
    resealed: int = 0
    skipped: int = 0  # already sealed under the client's newest key
    unreadable: int = 0  # would not open; left as they are (their keys are kept)
    shredded: int = 0  # under shredded keys: unreadable on purpose, left alone
    keys_retired: int = 0
    keys_kept: int = 0  # old keys some blob still names (see `unreadable`)
    failures: dict[str, int] = field(default_factory=dict)  # per field label


def count_sealed_values(owner_id: uuid.UUID | str | None = None) -> int:
    """Count non-NULL sealed values (of one owner, or all)."""
    owner = as_uuid(owner_id) if owner_id is not None else None
    total = 0
    for sealed in sealed_fields():
        blob = sealed.blob_column
        owner_expr = sealed.owner_expression()
        if owner is None or owner_expr is not None:
            query = select(func.count()).select_from(sealed.model).where(blob.is_not(None))
            if owner is not None:
                query = query.where(owner_expr == owner)
            total += db.session.scalar(query) or 0
        else:
            total += sum(1 for batch in _batches(sealed, owner, 1000) for _ in batch)
    return total


def _batches(sealed: SealedField, owner: uuid.UUID | None, size: int
             ) -> Iterator[list[tuple[Any, uuid.UUID, bytes, Any]]]:
    """Yield (row id, owner, blob, ORM row or None) in key order, `size` rows at a time.

    Keyset paging on the row id: rows resealed by an earlier batch are not revisited and
    nothing is skipped when other rows change in between.
    """
    pk, blob = sealed.pk_column, sealed.blob_column
    owner_expr = sealed.owner_expression()
    last = None
    while True:
        if owner_expr is not None:
            query = select(pk, owner_expr, blob).select_from(sealed.model)
            if owner is not None:
                query = query.where(owner_expr == owner)
        else:
            query = select(sealed.model)
        query = query.where(blob.is_not(None))
        if last is not None:
            query = query.where(pk > last)
        rows = db.session.execute(query.order_by(pk).limit(size)).all()
        if not rows:
            return
        if owner_expr is not None:
            batch = [(r[0], r[1], r[2], None) for r in rows]
            last = rows[-1][0]
        else:
            objs = [r[0] for r in rows]
            last = getattr(objs[-1], sealed.row_id_attr)
            batch = [(getattr(o, sealed.row_id_attr), sealed.owner_of(o),
                      getattr(o, sealed.attr), o) for o in objs]
            if owner is not None:
                batch = [item for item in batch if item[1] == owner]
        yield batch


def _plan(owner: uuid.UUID | None) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """Split owners with live keys into (resume: several live keys, fresh: exactly one)."""
    query = (select(DataKey.owner_id, func.count())
             .where(DataKey.retired_at.is_(None), DataKey.shredded_at.is_(None),
                    DataKey.wrapped.is_not(None))
             .group_by(DataKey.owner_id))
    if owner is not None:
        query = query.where(DataKey.owner_id == owner)
    resume, fresh = set(), set()
    for owner_id, live in db.session.execute(query):
        (resume if live > 1 else fresh).add(owner_id)
    return resume, fresh


def reencrypt(client_id: uuid.UUID | str | None = None, *, batch_size: int = 500,
              progress: Progress | None = None, actor: Any = None) -> ReencryptResult:
    """Move every registered sealed field to fresh data keys (one owner, or all).

    1. Owners with one live key get a new one, all in a single commit (so a crash here
       leaves nothing half-made); owners with several are resumed with their newest.
    2. Each field is paged in batches; each blob not naming its owner's newest key is opened
       and resealed; one commit per batch. Values that will not open are counted and left.
    3. Older live keys of those owners are retired once no blob names them.
    """
    owner = as_uuid(client_id) if client_id is not None else None
    result = ReencryptResult()
    forget_keys()
    with _key_operation():
        resume, fresh = _plan(owner)
        result.clients_resumed, result.clients_rotated = len(resume), len(fresh)
        in_scope = resume | fresh
        fresh_list = sorted(fresh)
        for start in range(0, len(fresh_list), 1000):
            preload_keys(fresh_list[start:start + 1000])
            for owner_id in fresh_list[start:start + 1000]:
                envelope.create_data_key(owner_id)
        db.session.commit()
        forget_keys()

        for sealed in sealed_fields():
            for batch in _batches(sealed, owner, batch_size):
                _reseal_batch(sealed, batch, in_scope, result)
                db.session.commit()
                if progress:
                    progress(len(batch))

        retire = _keys_to_retire(in_scope, result)
        now = utcnow()
        for start in range(0, len(retire), 1000):
            db.session.execute(update(DataKey).where(DataKey.id.in_(retire[start:start + 1000]))
                               .values(retired_at=now))
        result.keys_retired = len(retire)
        report_key_event("crypto.reencrypt", actor=actor, target=owner, details=_counts(result))
        db.session.commit()
    return result


def _keys_to_retire(in_scope: set[uuid.UUID], result: ReencryptResult) -> list[uuid.UUID]:
    """Older live keys of the owners in scope that no blob names any more."""
    used = _key_ids_in_use()
    live: dict[uuid.UUID, list[envelope.KeyRow]] = defaultdict(list)
    rows = db.session.execute(select(*envelope.KEY_COLUMNS).where(
        DataKey.retired_at.is_(None), DataKey.shredded_at.is_(None),
        DataKey.wrapped.is_not(None)))
    for raw in rows:
        row = envelope.KeyRow(*raw)
        if row.owner_id in in_scope:
            live[row.owner_id].append(row)
    retire = []
    for owner_rows in live.values():
        newest = max(owner_rows, key=lambda r: (r.created_at, r.id.bytes))
        for row in owner_rows:
            if row.id == newest.id:
                continue
            if row.id in used:
                result.keys_kept += 1
            else:
                retire.append(row.id)
    return retire


def _reseal_batch(sealed: SealedField, batch: list[tuple[Any, uuid.UUID, bytes, Any]],
                  in_scope: set[uuid.UUID], result: ReencryptResult) -> None:
    preload_keys({o for _, o, _, _ in batch if o in in_scope})
    updates = []
    for row_id, owner_id, blob, obj in batch:
        if owner_id not in in_scope:
            continue
        target = envelope.current_key(owner_id)
        # Resumed runs skip what is done: the newest key, and the format seal writes today.
        if bytes(blob[1:HEADER_LEN]) == target.id_bytes and current_format(blob):
            result.skipped += 1
            continue
        context = sealed.context(row_id)
        try:
            plaintext = open_bytes(owner_id, context, bytes(blob))
        except DecryptionError as exc:
            if exc.reason == "shredded":
                result.shredded += 1
                continue
            result.unreadable += 1
            result.failures[sealed.label] = result.failures.get(sealed.label, 0) + 1
            report_decrypt_failure(owner_id, context, exc.reason)
            continue
        new_blob = seal_with(target, context, plaintext)
        if obj is not None:
            setattr(obj, sealed.attr, new_blob)
        else:
            updates.append({"b_row_id": row_id, "b_blob": new_blob})
        result.resealed += 1
    if updates:
        table = sealed.pk_column.table
        db.session.execute(
            update(table).where(sealed.pk_column == bindparam("b_row_id"))
            .values({sealed.blob_column.name: bindparam("b_blob")}),
            updates,
        )


# ----------------------------------------------------------------------------- shred


@dataclass
class ShredResult:
    client_id: uuid.UUID
    data_keys: int = 0
    sealed_values: int = 0  # now unreadable


class ShredRefused(Exception):
    """A `hooks.shred_guards` check refused the shred; the message says why in one line."""


def shred(client_id: uuid.UUID | str, *, actor: Any = None) -> ShredResult:
    """Crypto-shred: drop the owner's wrapped data keys, so their sealed values never open.

    Every `hooks.shred_guards` check runs first, inside the operation; one that gives a
    reason refuses the shred (`ShredRefused`) and no key changes."""
    owner = as_uuid(client_id)
    result = ShredResult(owner)
    with _key_operation():
        for guard in hooks.shred_guards:
            reason = guard(owner)
            if reason:
                raise ShredRefused(reason)
        result.sealed_values = count_sealed_values(owner)
        outcome = db.session.execute(
            update(DataKey).where(DataKey.owner_id == owner, DataKey.shredded_at.is_(None))
            .values(wrapped=None, shredded_at=utcnow()))
        result.data_keys = outcome.rowcount or 0  # type: ignore[attr-defined]
        report_key_event("crypto.shred", actor=actor, target=owner,
                         details={"data_keys": result.data_keys,
                                  "sealed_values": result.sealed_values})
        db.session.commit()
    return result


def _counts(result: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(result).items() if isinstance(v, int | str | dict)}


def live_keys_by_owner() -> dict[uuid.UUID, list[uuid.UUID]]:
    """Live data key ids per owner, oldest first."""
    out: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    query = (select(DataKey.owner_id, DataKey.id)
             .where(DataKey.shredded_at.is_(None), DataKey.retired_at.is_(None))
             .order_by(DataKey.created_at))
    for owner_id, key_id in db.session.execute(query):
        out[owner_id].append(key_id)
    return dict(out)
