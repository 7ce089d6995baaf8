"""Data keys: created on first use, wrapped, unwrapped at most once per owner per context."""

import uuid

import pytest

from portal import crypto
from portal.crypto import Context, open_text, seal
from portal.crypto.envelope import (
    create_data_key,
    current_key,
    fast_keys,
    forget_keys,
    key_cache,
    provider,
    wrap_aad,
)
from portal.crypto.errors import DecryptionError
from portal.crypto.models import DataKey
from portal.extensions import db

from .conftest import make_owner


def seal_names(owners):
    blobs = {}
    for owner in owners:
        context = Context("users", "name_sealed", owner)
        blobs[owner] = (context, seal(owner, context, f"name of {owner}"))
    db.session.commit()
    return blobs


def test_first_seal_creates_one_wrapped_key_per_owner(owner):
    seal(owner, Context("t", "c", uuid.uuid4()), "a")
    seal(owner, Context("t", "c", uuid.uuid4()), "b")
    db.session.commit()
    rows = db.session.scalars(db.select(DataKey)).all()
    assert len(rows) == 1
    row = rows[0]
    assert row.owner_id == owner and row.master_key_id == "test1"
    assert len(row.wrapped) == 12 + 32 + 16
    assert row.retired_at is None and row.shredded_at is None
    # The wrapped key is bound to its owner, its id and its master key id.
    keys = provider()
    assert len(keys.unwrap("test1", row.wrapped, wrap_aad(owner, row.id, "test1"))) == 32
    with pytest.raises(DecryptionError):
        keys.unwrap("test1", row.wrapped, wrap_aad(uuid.uuid4(), row.id, "test1"))
    with pytest.raises(DecryptionError):
        keys.unwrap("test1", row.wrapped, wrap_aad(owner, uuid.uuid4(), "test1"))
    with pytest.raises(DecryptionError):
        keys.unwrap("test1", row.wrapped, wrap_aad(owner, row.id, "other"))
    assert "wrapped" not in repr(row) and str(owner) in repr(row)


def test_unwrap_happens_at_most_once_per_owner_per_app_context(app, monkeypatch):
    owners = [make_owner() for _ in range(3)]
    blobs = seal_names(owners)
    keys = provider()
    calls = []
    real_unwrap = keys.unwrap
    monkeypatch.setattr(keys, "unwrap", lambda *a: calls.append(a[0]) or real_unwrap(*a))

    with app.app_context():  # a new request: cold cache
        for _ in range(5):
            for owner, (context, blob) in blobs.items():
                assert open_text(owner, context, blob) == f"name of {owner}"
                seal(owner, context, "again")
        assert len(calls) == 3
    with app.app_context():
        open_text(owners[0], *blobs[owners[0]])
        assert len(calls) == 4


def test_preload_keys_uses_one_select_for_many_owners(app, count_statements):
    owners = [make_owner() for _ in range(25)]
    blobs = seal_names(owners)
    with app.app_context():
        count_statements.statements.clear()
        assert crypto.preload_keys(owners) == 25
        assert count_statements.selects == 1
        for owner, (context, blob) in blobs.items():
            assert open_text(owner, context, blob) == f"name of {owner}"
        crypto.preload_keys(owners)
        assert count_statements.selects == 1
        assert key_cache().unwraps == 25


def test_preload_covers_owners_without_keys_and_older_keys(app, count_statements):
    fresh, rotated = make_owner(), make_owner()
    context = Context("users", "name_sealed", rotated)
    old_blob = seal(rotated, context, "old")
    create_data_key(rotated)
    db.session.commit()
    forget_keys()
    count_statements.statements.clear()
    crypto.preload_keys([fresh, rotated, rotated])
    assert count_statements.selects == 1
    assert open_text(rotated, context, old_blob) == "old"
    assert count_statements.selects == 1
    assert key_cache().unwraps == 2


def test_current_key_is_the_newest_live_one(owner):
    first = current_key(owner)
    second = create_data_key(owner)
    db.session.commit()
    forget_keys()
    assert current_key(owner).id == second.id
    row = db.session.get(DataKey, second.id)
    row.retired_at = row.created_at
    db.session.commit()
    forget_keys()
    assert current_key(owner).id == first.id
    context = Context("t", "c", uuid.uuid4())
    assert crypto.blob_key_id(seal(owner, context, "x")) == first.id


def test_a_key_created_by_another_process_is_found(app, owner):
    context = Context("t", "c", uuid.uuid4())
    seal(owner, context, "x")
    db.session.commit()
    with app.app_context():  # "another process" rotates the owner's key
        newer = create_data_key(owner)
        blob = crypto.seal(owner, context, "newer")
        assert crypto.blob_key_id(blob) == newer.id
        db.session.commit()
    # This context cached the owner's rows before the new key existed; it looks again.
    assert open_text(owner, context, blob) == "newer"


def test_key_cache_lives_no_longer_than_the_app_context(app, owner):
    seal(owner, Context("t", "c", uuid.uuid4()), "outer")
    db.session.commit()
    outer = fast_keys.get()
    assert outer is not None and outer[0] is key_cache().by_header
    with app.app_context():
        assert fast_keys.get() is None  # the inner context starts cold
        seal(owner, Context("t", "c", uuid.uuid4()), "x")
        assert key_cache().by_header
        inner = fast_keys.get()
        assert inner is not None and inner is not outer
    assert fast_keys.get() is outer  # restored when the inner context tore down
    with app.app_context():
        assert not key_cache().by_header
    forget_keys()
    assert fast_keys.get() is None


def test_no_key_cache_outside_an_app_context(app, owner):
    import contextvars

    def outside():
        with pytest.raises(RuntimeError):
            seal(owner, Context("t", "c", uuid.uuid4()), "x")

    seal(owner, Context("t", "c", uuid.uuid4()), "warm")
    ctx = contextvars.Context()  # a fresh thread-like context: no app context, no fast keys
    ctx.run(outside)
