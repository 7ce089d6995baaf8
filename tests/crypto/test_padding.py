"""Padding: a sealed short value's length says only which bucket it falls in.

Version 2 blobs hold a value of up to 1,022 bytes padded to 32, 64, ... 1,024 bytes; longer
values and everything sealed before padding are version 1 (unpadded), and still open.
"""

import os
import shutil
import sqlite3
import uuid

import pytest
from sqlalchemy import func, select

from portal.accounts.models import User
from portal.crypto import (
    Context,
    DecryptionError,
    context_for,
    envelope,
    open_bytes,
    open_text,
    rotation,
    sealing,
)
from portal.crypto.cli import keys_cli
from portal.crypto.envelope import forget_keys
from portal.crypto.registry import register_sealed
from portal.crypto.sealing import BUCKETS, MIN_BLOB_LEN, PADDED_MAX, seal
from portal.extensions import db
from tests.support.people import make_client

from .conftest import POSTGRES_URL, Note, make_owner

OVERHEAD = MIN_BLOB_LEN  # version + key id + nonce + tag
BUCKETED = {bucket + OVERHEAD for bucket in BUCKETS}


def name_context(user_id: uuid.UUID) -> Context:
    return context_for(User.name_sealed, user_id)


def aad(version: int, context: Context, owner: uuid.UUID, key_id: bytes) -> bytes:
    """The associated data as the format defines it, written out here independently."""
    table, column = context.table.encode(), context.column.encode()
    return (bytes([version, len(table)]) + table + bytes([len(column)]) + column
            + context.row_id.bytes + owner.bytes + key_id)


def seal_version_1(owner: uuid.UUID, context: Context, value: bytes | str) -> bytes:
    """A blob as the portal sealed every value before padding existed (unpadded)."""
    value = value.encode() if isinstance(value, str) else value
    handle = envelope.current_key(owner)
    nonce = os.urandom(12)
    return (bytes([1]) + handle.id_bytes + nonce
            + handle.aead.encrypt(nonce, value, aad(1, context, owner, handle.id_bytes)))


# ----------------------------------------------------------------------------- lengths


@pytest.mark.parametrize(("chars", "bucket"), [(1, 32), (10, 32), (31, 64), (32, 64),
                                               (33, 64), (120, 128)])
def test_names_seal_to_bucket_lengths(owner, chars, bucket):
    name = ("Alexandra Morgan Lee-Okafor " * 6)[:chars]
    assert len(name) == chars
    blob = seal(owner, name_context(owner), name)
    assert blob[0] == 2
    assert len(blob) == bucket + OVERHEAD
    assert open_text(owner, name_context(owner), blob) == name


def test_lengths_take_only_bucket_values_up_to_the_largest_and_then_grow(owner):
    context = name_context(owner)
    short, long_ = set(), set()
    for n in range(0, PADDED_MAX + 100):
        value = bytes([65 + n % 26]) * n
        blob = seal(owner, context, value)
        (short if n <= PADDED_MAX else long_).add(len(blob))
        assert open_bytes(owner, context, blob) == value
    assert short == BUCKETED  # 1,023 lengths, 6 blob sizes
    assert long_ == {n + OVERHEAD for n in range(PADDED_MAX + 1, PADDED_MAX + 100)}  # version 1


def test_bytes_not_characters_choose_the_bucket(owner):
    context = name_context(owner)
    assert len(seal(owner, context, "é" * 15)) == 32 + OVERHEAD  # 30 bytes + 2
    assert len(seal(owner, context, "é" * 16)) == 64 + OVERHEAD  # 32 bytes + 2
    emoji_name = "\U0001f9e0" * 63  # 252 bytes
    blob = seal(owner, context, emoji_name)
    assert len(blob) == 256 + OVERHEAD and open_text(owner, context, blob) == emoji_name
    # The longest subject (150) and name (200 characters) the forms take, in any script.
    for text in ("\U0001f9e0" * 150, "\u4e2d" * 200, "\U0001f9e0" * 200):
        blob = seal(owner, context, text)
        assert len(blob) == 1024 + OVERHEAD and open_text(owner, context, blob) == text


def test_padded_plaintext_is_length_value_zeros_under_version_2_associated_data(owner):
    context = name_context(owner)
    blob = seal(owner, context, "Robin")
    handle = envelope.current_key(owner)
    plain = handle.aead.decrypt(blob[17:29], blob[29:],
                                aad(2, context, owner, handle.id_bytes))
    assert plain == b"\x00\x05Robin" + bytes(32 - 7)


def test_slow_path_and_seal_with_pad_the_same_way(owner):
    context = name_context(owner)
    forget_keys()  # cold cache: the slow path seals
    cold = seal(owner, context, "Sam")
    forget_keys()
    assert open_text(owner, context, cold) == "Sam"  # and opens, from the database
    resealed = sealing.seal_with(envelope.current_key(owner), context, "Sam")
    assert cold[0] == resealed[0] == 2 and len(cold) == len(resealed) == 32 + OVERHEAD


# ----------------------------------------------------------------------------- versions


@pytest.mark.parametrize("value", ["Ana", "x" * 254, "x" * PADDED_MAX, "x" * (PADDED_MAX + 1),
                                   "long body " * 300, ""])
def test_version_1_blobs_still_open(owner, value):
    context = name_context(owner)
    old = seal_version_1(owner, context, value)
    assert len(old) == len(value.encode()) + OVERHEAD
    assert open_text(owner, context, old) == value  # warm cache
    forget_keys()
    assert open_text(owner, context, old) == value  # slow path


@pytest.mark.parametrize("value", ["Ana", "x" * PADDED_MAX, "long body " * 300])
@pytest.mark.parametrize("cold", [False, True])
def test_a_blob_whose_version_byte_is_changed_does_not_open(owner, value, cold):
    context = name_context(owner)
    for blob in (seal(owner, context, value), seal_version_1(owner, context, value)):
        swapped = bytes([3 - blob[0]]) + blob[1:]  # 1 <-> 2
        if cold:
            forget_keys()
        with pytest.raises(DecryptionError) as err:
            open_text(owner, context, swapped)
        assert err.value.reason == "tampered"
        assert open_text(owner, context, blob) == value


def test_unpad_refuses_what_padding_never_writes():
    assert sealing.unpad(sealing.pad(b"abc")) == b"abc"
    for bad in (b"", b"\x00", b"\x00\x05abc", b"\x00\x01a\x01" + bytes(28),
                b"\xff\xff" + bytes(30)):
        with pytest.raises(DecryptionError) as err:
            sealing.unpad(bad)
        assert err.value.reason == "malformed"


def test_current_format_tells_old_short_blobs_apart(owner):
    context = name_context(owner)
    assert sealing.current_format(seal(owner, context, "Ana"))
    long_ = "x" * (PADDED_MAX + 1)
    assert sealing.current_format(seal(owner, context, long_))  # long: version 1 is current
    assert not sealing.current_format(seal_version_1(owner, context, "Ana"))
    assert not sealing.current_format(seal_version_1(owner, context, "x" * PADDED_MAX))
    assert sealing.current_format(seal_version_1(owner, context, long_))


# ----------------------------------------------------------------------------- reseal


def test_reencrypt_pads_old_short_values_and_leaves_long_ones_unpadded(app, notes):
    owners = [make_owner(), make_owner()]
    expected = {}
    for i, owner in enumerate(owners * 3):
        note = Note(id=uuid.uuid4(), owner_id=owner)
        subject, body = "s" * (i * 20 + 1), "body " * 300
        note.subject_sealed = seal_version_1(owner, note.subject_context(), subject)
        note.body_sealed = seal_version_1(owner, note.body_context(), body)
        db.session.add(note)
        expected[note.id] = (owner, subject, body)
    db.session.commit()
    before = {f.column: f.unpadded for f in rotation.status().fields}
    assert before == {"subject_sealed": 6, "body_sealed": 0}

    result = rotation.reencrypt(batch_size=4)
    assert (result.resealed, result.unreadable) == (12, 0)
    after = {f.column: f.unpadded for f in rotation.status().fields}
    assert after == {"subject_sealed": 0, "body_sealed": 0}
    forget_keys()
    for note in db.session.scalars(select(Note)):
        owner, subject, body = expected[note.id]
        assert note.subject_sealed[0] == 2 and len(note.subject_sealed) in BUCKETED
        assert note.body_sealed[0] == 1 and len(note.body_sealed) == len(body) + OVERHEAD
        assert open_text(owner, note.subject_context(), note.subject_sealed) == subject
        assert open_text(owner, note.body_context(), note.body_sealed) == body


def test_a_resumed_reencrypt_does_not_skip_an_old_short_value_under_the_newest_key(app, notes):
    owner = make_owner()
    padded, old = Note(id=uuid.uuid4(), owner_id=owner), Note(id=uuid.uuid4(), owner_id=owner)
    for note in (padded, old):
        note.body_sealed = seal(owner, note.body_context(), "b" * 2000)
    padded.subject_sealed = seal(owner, padded.subject_context(), "done already")
    envelope.create_data_key(owner)  # as an interrupted run leaves it: two live keys
    db.session.commit()
    forget_keys()
    newest = envelope.current_key(owner)
    # An old process (from before padding) wrote this value under the newest key.
    old.subject_sealed = seal_version_1(owner, old.subject_context(), "written by old code")
    assert old.subject_sealed[1:17] == newest.id_bytes
    db.session.add_all([padded, old])
    db.session.commit()

    result = rotation.reencrypt()
    assert result.clients_resumed == 1
    assert (result.resealed, result.skipped) == (4, 0)
    db.session.expire_all()
    assert old.subject_sealed[0] == 2 and old.subject_sealed[1:17] == newest.id_bytes
    assert open_text(owner, old.subject_context(), old.subject_sealed) == "written by old code"


def _register_user_fields() -> None:
    for attr, column in (("name_sealed", "name"), ("email_sealed", "email")):
        register_sealed(User, attr, owner="id", table="users", column=column)


def _sealed_lengths(column: str) -> dict[int, int]:
    rows = db.session.execute(select(func.length(getattr(User, column)), func.count())
                              .group_by(func.length(getattr(User, column))))
    return dict(rows.all())


def test_cli_reencrypt_converts_every_users_name_and_email(app):
    _register_user_fields()
    people = {}
    for n in (1, 7, 19, 30, 31, 45, 62, 63, 90, 126, 127, 200):
        name = ("Kristen Alexandra " * 12)[:n].strip() or "K"
        user = make_client(name, email=f"{'p' * n}@example.org")
        user.name_sealed = seal_version_1(user.id, name_context(user.id), name)
        user.email_sealed = seal_version_1(user.id, context_for(User.email_sealed, user.id),
                                           f"{'p' * n}@example.org")
        people[user.id] = (name, f"{'p' * n}@example.org")
    db.session.commit()
    assert len(_sealed_lengths("name_sealed")) > len(BUCKETS)  # before: lengths show

    runner = app.test_cli_runner()
    out = runner.invoke(keys_cli, ["status"])
    assert out.exit_code == 0, out.output
    assert "pads them" in out.output

    out = runner.invoke(keys_cli, ["reencrypt"])
    assert out.exit_code == 0, out.output
    assert "0 could not be opened" in out.output
    out = runner.invoke(keys_cli, ["status"])
    assert "pads them" not in out.output

    db.session.commit()
    assert set(_sealed_lengths("name_sealed")) <= BUCKETED
    assert set(_sealed_lengths("email_sealed")) <= BUCKETED
    forget_keys()
    db.session.expire_all()
    for user in db.session.scalars(select(User)):
        if user.id in people:
            name = open_text(user.id, name_context(user.id), user.name_sealed)
            email = open_text(user.id, context_for(User.email_sealed, user.id),
                              user.email_sealed)
            assert (name, email) == people[user.id]


# ----------------------------------------------------------------------------- at rest


def _copied_database_lengths(app, tmp_path) -> dict[str, set[int]]:
    """What a thief with a copy of the database files (no keys) sees of the lengths."""
    columns = ("name_sealed", "email_sealed")
    if POSTGRES_URL:  # the same question of the server's tables
        return {c: set(_sealed_lengths(c)) for c in columns}
    source = db.engine.url.database
    stolen = tmp_path / "stolen"
    stolen.mkdir()
    for suffix in ("", "-wal"):
        if os.path.exists(source + suffix):
            shutil.copyfile(source + suffix, stolen / ("portal.db" + suffix))
    queries = {c: f"SELECT length({c}), count(*) FROM users GROUP BY 1"  # noqa: S608
               for c in columns}  # column names from the tuple above, not input
    conn = sqlite3.connect(stolen / "portal.db")
    try:
        return {c: {length for length, _ in conn.execute(q)} for c, q in queries.items()}
    finally:
        conn.close()


def test_a_copied_database_shows_only_bucketed_lengths_of_names_and_emails(app, tmp_path):
    name_lengths, email_lengths = set(), set()
    for n in range(1, 121, 3):
        name = ("Alex Morgan Lee-Okafor " * 6)[:n]
        email = f"{'c' * n}{n}@example.org"
        make_client(name, email=email)
        name_lengths.add(len(name.strip().encode()))
        email_lengths.add(len(email.encode()))
    db.session.commit()
    seen = _copied_database_lengths(app, tmp_path)
    for column, lengths in (("name_sealed", name_lengths), ("email_sealed", email_lengths)):
        buckets_used = {next(b for b in BUCKETS if b >= n + 2) for n in lengths}
        assert seen[column] <= BUCKETED, column
        assert len(seen[column]) <= len(buckets_used), column
        assert len(lengths) > 2 * len(seen[column])  # 40 lengths, a few sizes
