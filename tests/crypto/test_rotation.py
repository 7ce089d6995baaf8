"""Rotation and shredding: rewrap, reencrypt (resumable), shred, status, and the CLI."""

import os
import uuid
from collections import Counter

import pytest
from sqlalchemy import select

from portal import crypto
from portal.accounts.models import User
from portal.crypto import Context, DecryptionError, blob_key_id, open_text, rotation
from portal.crypto.cli import keys_cli
from portal.crypto.models import DataKey
from portal.crypto.registry import register_sealed, unregister_sealed
from portal.extensions import db

from .conftest import Note, key_entry, make_note, make_owner

OLD = "test1:" + "A" * 43


def write_notes(owners, per_owner=4) -> dict[uuid.UUID, tuple[uuid.UUID, str, str]]:
    """Seal notes for each owner; return {note id: (owner, body, subject)}."""
    expected = {}
    for owner in owners:
        for i in range(per_owner):
            body = f"body {i} of {owner}"
            subject = f"subject {i} \U0001f512" if i % 2 == 0 else None
            note = Note(id=uuid.uuid4(), owner_id=owner)
            note.body_sealed = crypto.seal(owner, note.body_context(), body)
            if subject is not None:
                note.subject_sealed = crypto.seal(owner, note.subject_context(), subject)
            db.session.add(note)
            expected[note.id] = (owner, body, subject)
    db.session.commit()
    return expected


def assert_all_open(app, expected) -> list[Note]:
    """Open every note in a fresh app context (cold key cache) and compare."""
    db.session.commit()  # end this context's transaction (SQLite: BEGIN IMMEDIATE)
    with app.app_context():
        notes = db.session.scalars(select(Note)).all()
        assert len(notes) == len(expected)
        for note in notes:
            owner, body, subject = expected[note.id]
            assert open_text(owner, note.body_context(), note.body_sealed) == body
            if subject is None:
                assert note.subject_sealed is None
            else:
                assert open_text(owner, note.subject_context(), note.subject_sealed) == subject
        return notes


def blobs_by_note() -> dict[uuid.UUID, tuple[bytes, bytes | None]]:
    return {n.id: (n.body_sealed, n.subject_sealed) for n in db.session.scalars(select(Note))}


def live_keys() -> dict[uuid.UUID, list[DataKey]]:
    out: dict[uuid.UUID, list[DataKey]] = {}
    for key in db.session.scalars(select(DataKey).order_by(DataKey.created_at)):
        if key.retired_at is None and key.shredded_at is None:
            out.setdefault(key.owner_id, []).append(key)
    return out


def key_ids_named() -> Counter:
    named: Counter = Counter()
    for body, subject in blobs_by_note().values():
        for blob in (body, subject):
            if blob is not None:
                named[blob_key_id(blob)] += 1
    return named


# ----------------------------------------------------------------------------- rewrap


def test_rewrap_then_removing_the_old_master_key_keeps_everything_readable(app, make_app,
                                                                           notes):
    owners = [make_owner() for _ in range(3)]
    expected = write_notes(owners)
    k2 = os.urandom(32)
    new_and_old = make_app(PORTAL_MASTER_KEYS=key_entry("k2", k2) + "," + OLD)
    with new_and_old.app_context():
        assert_all_open(new_and_old, expected)  # the old key still unwraps
        before = rotation.status()
        assert before.master("test1").data_keys == 3
        result = rotation.rewrap(batch_size=2)
        assert (result.rewrapped, result.already_current, result.failed) == (3, 0, 0)
        after = rotation.status()
        assert after.master("test1").data_keys == 0
        assert after.master("test1").sealed_values == 0
        assert after.master("k2").data_keys == 3
        assert after.master("k2").sealed_values == len(expected) + len(expected) // 2
        assert rotation.rewrap().rewrapped == 0  # re-runnable
    new_only = make_app(PORTAL_MASTER_KEYS=key_entry("k2", k2))
    assert_all_open(new_only, expected)
    with new_only.app_context():
        assert {k.master_key_id for k in db.session.scalars(select(DataKey))} == {"k2"}


# ----------------------------------------------------------------------------- reencrypt


def test_reencrypt_moves_every_field_to_new_keys(app, notes):
    owners = [make_owner() for _ in range(3)]
    expected = write_notes(owners, per_owner=5)
    old_keys = {o: keys[0].id for o, keys in live_keys().items()}
    progress = []
    result = rotation.reencrypt(batch_size=3, progress=progress.append)
    total = len(expected) + 3 * 3  # bodies + subjects of notes 0, 2, 4
    assert sum(progress) == total == rotation.count_sealed_values()
    assert (result.clients_rotated, result.clients_resumed) == (3, 0)
    assert (result.resealed, result.skipped, result.unreadable) == (total, 0, 0)
    assert (result.keys_retired, result.keys_kept) == (3, 0)

    assert_all_open(app, expected)
    current = {o: keys[-1].id for o, keys in live_keys().items()}
    assert all(len(keys) == 1 for keys in live_keys().values())
    assert set(current.values()).isdisjoint(old_keys.values())
    assert set(key_ids_named()) == set(current.values())
    retired = db.session.scalars(select(DataKey).where(DataKey.retired_at.is_not(None))).all()
    assert {k.id for k in retired} == set(old_keys.values())
    status = rotation.status()
    assert [(f.values, f.on_current_key, f.on_older_key) for f in status.fields] == [
        (15, 15, 0), (9, 9, 0)]


def test_reencrypt_of_one_client_leaves_the_others_alone(app, notes):
    alice, bob = make_owner(), make_owner()
    expected = write_notes([alice, bob])
    bob_blobs = {k: v for k, v in blobs_by_note().items() if expected[k][0] == bob}
    result = rotation.reencrypt(alice)
    assert (result.clients_rotated, result.resealed, result.keys_retired) == (1, 6, 1)
    assert {k: v for k, v in blobs_by_note().items() if expected[k][0] == bob} == bob_blobs
    assert len(db.session.scalars(select(DataKey).where(DataKey.owner_id == bob)).all()) == 1
    assert_all_open(app, expected)


def test_a_crashed_reencrypt_resumes_without_losing_or_resealing(app, notes, monkeypatch):
    owners = [make_owner() for _ in range(3)]
    expected = write_notes(owners, per_owner=6)
    real_seal_with = rotation.seal_with
    calls = 0

    def crash_on_the_tenth(*args):
        nonlocal calls
        calls += 1
        if calls == 10:
            raise RuntimeError("power cut")
        return real_seal_with(*args)

    monkeypatch.setattr(rotation, "seal_with", crash_on_the_tenth)
    with pytest.raises(RuntimeError, match="power cut"):
        rotation.reencrypt(batch_size=4)
    monkeypatch.setattr(rotation, "seal_with", real_seal_with)

    assert_all_open(app, expected)  # nothing lost: done batches committed, the rest untouched
    assert all(len(keys) == 2 for keys in live_keys().values())
    newest = {o: keys[-1].id for o, keys in live_keys().items()}
    done = {note_id: body for note_id, (body, _) in blobs_by_note().items()
            if blob_key_id(body) == newest[expected[note_id][0]]}
    assert len(done) == 8  # two committed batches of four bodies

    result = rotation.reencrypt(batch_size=4)
    assert (result.clients_rotated, result.clients_resumed) == (0, 3)
    assert result.skipped == 8
    assert result.resealed == rotation.count_sealed_values() - 8
    assert_all_open(app, expected)
    after = blobs_by_note()
    assert all(after[note_id][0] == body for note_id, body in done.items())  # not resealed
    assert live_keys() == {o: [db.session.get(DataKey, k)] for o, k in newest.items()}
    assert set(key_ids_named()) == set(newest.values())
    assert db.session.scalar(select(db.func.count()).select_from(DataKey)) == 6


def test_a_crash_while_creating_keys_creates_none(app, notes, monkeypatch):
    owners = [make_owner() for _ in range(3)]
    write_notes(owners, per_owner=1)
    real = crypto.envelope.create_data_key
    made = []

    def fail_on_third(owner_id):
        made.append(owner_id)
        if len(made) == 3:
            raise RuntimeError("crash")
        return real(owner_id)

    monkeypatch.setattr(crypto.envelope, "create_data_key", fail_on_third)
    with pytest.raises(RuntimeError):
        rotation.reencrypt()
    assert db.session.scalar(select(db.func.count()).select_from(DataKey)) == 3


def test_values_that_will_not_open_keep_their_key(app, notes):
    alice, bob = make_owner(), make_owner()
    expected = write_notes([alice, bob], per_owner=2)
    broken_id = next(k for k, v in expected.items() if v[0] == alice)
    broken = db.session.get(Note, broken_id)
    broken.body_sealed = broken.body_sealed[:-1] + bytes([broken.body_sealed[-1] ^ 1])
    db.session.commit()
    failures = []
    crypto.on_decrypt_failure.append(lambda o, c, r: failures.append((o, c.row_id, r)))
    try:
        result = rotation.reencrypt()
    finally:
        crypto.on_decrypt_failure.pop()
    assert failures == [(alice, broken_id, "tampered")]
    assert (result.unreadable, result.keys_retired, result.keys_kept) == (1, 1, 1)
    assert result.failures == {"crypto_test_notes.body_sealed": 1}
    assert len(live_keys()[alice]) == 2 and len(live_keys()[bob]) == 1
    again = rotation.reencrypt()  # alice resumes; bob gets another fresh key
    assert (again.clients_resumed, again.clients_rotated, again.unreadable) == (1, 1, 1)


@pytest.mark.parametrize("owner_form", ["expression", "callable"])
def test_reencrypt_with_other_owner_forms(app, owner_form):
    owner = Note.owner_id if owner_form == "expression" else (lambda note: note.owner_id)
    register_sealed(Note, "body_sealed", owner=owner)
    try:
        alice, bob = make_owner(), make_owner()
        expected = {k: (o, b, None) for k, (o, b, _) in write_notes([alice, bob], 3).items()}
        db.session.execute(db.update(Note).values(subject_sealed=None))
        db.session.commit()
        assert rotation.count_sealed_values(alice) == 3
        result = rotation.reencrypt(bob, batch_size=2)
        assert (result.resealed, result.keys_retired) == (3, 1)
        result = rotation.reencrypt(batch_size=2)
        assert (result.resealed, result.keys_retired) == (6, 2)
        assert_all_open(app, expected)
        assert rotation.shred(alice).sealed_values == 3
    finally:
        unregister_sealed(Note, "body_sealed")


def test_user_fields_rotate_when_registered(app):
    for field in ("email_sealed", "name_sealed", "totp_seed_sealed"):
        register_sealed(User, field, owner="id")
    try:
        user_id = uuid.uuid4()
        user = User(id=user_id, role="client", email_index=b"e" * 32,
                    email_sealed=b"", name_sealed=b"")
        user.email_sealed = crypto.seal(user.id, Context("users", "email_sealed", user.id),
                                        "ada@example.org")
        user.name_sealed = crypto.seal(user.id, Context("users", "name_sealed", user.id), "Ada")
        db.session.add(user)
        db.session.commit()
        result = rotation.reencrypt()
        assert (result.resealed, result.unreadable) == (2, 0)
        with app.app_context():
            user = db.session.get(User, user_id)
            assert open_text(user_id, Context("users", "name_sealed", user_id),
                             user.name_sealed) == "Ada"
    finally:
        for field in ("email_sealed", "name_sealed", "totp_seed_sealed"):
            unregister_sealed(User, field)


# ----------------------------------------------------------------------------- shred


def test_shred_makes_one_owners_fields_unreadable_and_no_one_elses(app, notes):
    alice, bob = make_owner(), make_owner()
    expected = write_notes([alice, bob], per_owner=3)
    events = []
    crypto.on_key_event.append(lambda action, **kw: events.append((action, kw)))
    try:
        result = rotation.shred(alice)
    finally:
        crypto.on_key_event.pop()
    assert (result.data_keys, result.sealed_values) == (1, 5)
    assert events == [("crypto.shred", {"actor": None, "target": alice,
                                        "details": {"data_keys": 1, "sealed_values": 5}})]
    db.session.commit()
    with app.app_context():
        for note in db.session.scalars(select(Note)):
            owner, body, _ = expected[note.id]
            if owner == alice:
                with pytest.raises(DecryptionError) as err:
                    open_text(owner, note.body_context(), note.body_sealed)
                assert err.value.reason == "shredded"
                assert crypto.open_text_safe(owner, note.body_context(),
                                             note.body_sealed) == crypto.UNREADABLE
            else:
                assert open_text(owner, note.body_context(), note.body_sealed) == body
    key = db.session.scalars(select(DataKey).where(DataKey.owner_id == alice)).one()
    assert key.wrapped is None and key.shredded_at is not None
    status = rotation.status()
    assert [f.unopenable for f in status.fields] == [3, 2]
    assert any(b.state == "shredded" and b.data_keys == 1 for b in status.buckets)
    # New records of the same client get a new key and stay readable.
    note = make_note(alice, "after retention")
    assert open_text(alice, note.body_context(), note.body_sealed) == "after retention"
    # Values under shredded keys are not failures of a later rotation.
    later = rotation.reencrypt(alice)
    assert (later.resealed, later.shredded, later.unreadable) == (1, 5, 0)


# ----------------------------------------------------------------------------- CLI


def test_cli_status_rewrap_reencrypt_print_counts(app, make_app, notes):
    write_notes([make_owner(), make_owner()], per_owner=2)
    runner = app.test_cli_runner()
    out = runner.invoke(keys_cli, ["status"])
    assert out.exit_code == 0, out.output
    assert "test1" in out.output and "current" in out.output
    assert "crypto_test_notes.body_sealed" in out.output

    out = runner.invoke(keys_cli, ["reencrypt", "--batch-size", "1"])
    assert out.exit_code == 0, out.output
    assert "2 given new data keys" in out.output
    assert "6 re-encrypted" in out.output and "2 retired" in out.output

    rotated = make_app(PORTAL_MASTER_KEYS=key_entry("k2") + "," + OLD)
    with rotated.app_context():
        out = rotated.test_cli_runner().invoke(keys_cli, ["rewrap"])
        assert out.exit_code == 0, out.output
        assert "Re-wrapped 4 data keys under 'k2'" in out.output
        out = rotated.test_cli_runner().invoke(keys_cli, ["status"])
        assert "nothing depends on 'test1'" in out.output


def test_cli_shred_asks_for_a_typed_confirmation(app, notes):
    alice = make_owner()
    write_notes([alice], per_owner=1)
    runner = app.test_cli_runner()
    out = runner.invoke(keys_cli, ["shred", "--client", str(alice)], input="yes\n")
    assert out.exit_code == 1
    assert "nothing shredded" in out.output
    assert db.session.scalars(select(DataKey)).one().wrapped is not None

    out = runner.invoke(keys_cli, ["shred", "--client", str(alice)], input="SHRED\n")
    assert out.exit_code == 0, out.output
    assert "Shredded 1 data keys; 2 sealed values are now unreadable" in out.output
    db.session.expire_all()
    assert db.session.scalars(select(DataKey)).one().wrapped is None


def test_cli_shred_accepts_the_client_id_as_confirmation(app, notes):
    alice = make_owner()
    write_notes([alice], per_owner=1)
    out = app.test_cli_runner().invoke(keys_cli, ["shred", "--client", str(alice)],
                                       input=f"{alice}\n")
    assert out.exit_code == 0, out.output


def test_cli_reencrypt_reports_unreadable_values_with_exit_code(app, notes):
    alice = make_owner()
    write_notes([alice], per_owner=1)
    note = db.session.scalars(select(Note)).one()
    note.body_sealed = b"\x01" + b"\x00" * 50
    db.session.commit()
    out = app.test_cli_runner().invoke(keys_cli, ["reencrypt"])
    assert out.exit_code == 1
    assert "1 could not be opened" in out.output
