"""Seal and open: round trips, and every way a blob can fail to open."""

import logging
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal import crypto
from portal.accounts.models import User
from portal.crypto import Context, DecryptionError, open_bytes, open_text, seal
from portal.crypto.envelope import forget_keys
from portal.crypto.models import DataKey
from portal.extensions import db

from .conftest import key_entry, make_owner

fixture_settings = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    deadline=None,
    database=None,
)


def ctx(row_id=None, table="messages", column="body_sealed") -> Context:
    return Context(table, column, row_id or uuid.uuid4())


@fixture_settings
@given(text=st.text())
def test_any_text_round_trips(owner, text):
    context = ctx()
    assert open_text(owner, context, seal(owner, context, text)) == text


@fixture_settings
@given(data=st.binary(max_size=5000))
def test_any_bytes_round_trip(owner, data):
    context = ctx()
    assert open_bytes(owner, context, seal(owner, context, data)) == data


@pytest.mark.parametrize("value", ["", "plain", "\U0001f600 \U00010348 \u4e2d\u6587 \u00e9",
                                   "x" * 3_000_000, "\U0001f9e0" * 100_000])
def test_edge_texts_round_trip(owner, value):
    context = ctx()
    blob = seal(owner, context, value)
    assert open_text(owner, context, blob) == value
    forget_keys()  # and on the slow path, from the database
    assert open_text(owner, context, blob) == value


def test_empty_and_large_bytes_round_trip(owner):
    context = ctx()
    for value in (b"", b"\x00", bytes(range(256)) * 40_000):
        assert open_bytes(owner, context, seal(owner, context, value)) == value
    assert open_bytes(owner, context, seal(owner, context, bytearray(b"ab"))) == b"ab"


def test_blob_layout_is_version_key_nonce_ciphertext_tag(owner):
    blob = seal(owner, ctx(), b"hello")
    assert blob[0] == 2  # short: padded to the 32-byte bucket (tests/crypto/test_padding.py)
    assert len(blob) == 1 + 16 + 12 + 32 + 16
    key_id = crypto.blob_key_id(blob)
    assert db.session.get(DataKey, key_id).owner_id == owner
    long_blob = seal(owner, ctx(), b"x" * 2000)
    assert long_blob[0] == 1  # long: unpadded
    assert len(long_blob) == 1 + 16 + 12 + 2000 + 16
    assert crypto.blob_key_id(long_blob) == key_id


@pytest.mark.parametrize("change", ["table", "column", "row"])
def test_blob_moved_to_another_place_does_not_open(owner, change):
    row_id = uuid.uuid4()
    blob = seal(owner, Context("messages", "body_sealed", row_id), "secret")
    other = {
        "table": Context("estimates", "body_sealed", row_id),
        "column": Context("messages", "subject_sealed", row_id),
        "row": Context("messages", "body_sealed", uuid.uuid4()),
    }[change]
    with pytest.raises(DecryptionError) as err:
        open_text(owner, other, blob)
    assert err.value.reason == "tampered"


def test_context_names_are_unambiguous(owner):
    row_id = uuid.uuid4()
    blob = seal(owner, Context("ab", "c", row_id), "secret")
    with pytest.raises(DecryptionError):
        open_text(owner, Context("a", "bc", row_id), blob)


def test_blob_of_another_owner_does_not_open(app):
    alice, bob = make_owner(), make_owner()
    context = ctx()
    blob = seal(alice, context, "alice's note")
    with pytest.raises(DecryptionError) as err:
        open_text(bob, context, blob)
    assert err.value.reason == "unknown-key"
    forget_keys()
    crypto.preload_keys([alice, bob])
    with pytest.raises(DecryptionError):
        open_text(bob, context, blob)


@fixture_settings
@given(data=st.data())
def test_any_flipped_bit_is_refused(owner, data):
    context = ctx()
    blob = seal(owner, context, data.draw(st.binary(max_size=64), label="plaintext"))
    position = data.draw(st.integers(0, len(blob) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    tampered = bytearray(blob)
    tampered[position] ^= 1 << bit
    with pytest.raises(DecryptionError):
        open_bytes(owner, context, bytes(tampered))


def test_every_truncation_is_refused(owner):
    context = ctx()
    blob = seal(owner, context, b"0123456789")
    for length in range(len(blob)):
        with pytest.raises(DecryptionError):
            open_bytes(owner, context, blob[:length])


@pytest.mark.parametrize("version", [0, 3, 255])
def test_unknown_version_is_refused(owner, version):
    context = ctx()
    blob = seal(owner, context, b"x")
    with pytest.raises(DecryptionError) as err:
        open_bytes(owner, context, bytes([version]) + blob[1:])
    assert err.value.reason == "unknown-version"
    with pytest.raises(DecryptionError):
        crypto.blob_key_id(bytes([version]) + blob[1:])


def test_removed_master_key_refuses_to_open(app, make_app, owner):
    context = ctx()
    blob = seal(owner, context, "written under test1")
    db.session.commit()
    # Started without the old key (and without the start-up check that would refuse it).
    other = make_app(PORTAL_MASTER_KEYS=key_entry("k2"), PORTAL_SKIP_KEY_CHECK=True)
    with other.app_context(), pytest.raises(DecryptionError) as err:
        open_text(owner, context, blob)
    assert err.value.reason == "unknown-master-key"


def test_wrong_master_key_material_refuses_to_open(app, make_app, owner):
    context = ctx()
    blob = seal(owner, context, "written under test1")
    db.session.commit()
    other = make_app(PORTAL_MASTER_KEYS=key_entry("test1"), PORTAL_SKIP_KEY_CHECK=True)
    with other.app_context(), pytest.raises(DecryptionError) as err:
        open_text(owner, context, blob)
    assert err.value.reason == "unwrap-failed"


def test_no_key_nonce_pair_repeats_in_100000_seals(app):
    owners = [make_owner() for _ in range(4)]
    context = ctx()
    seen = set()
    for i in range(100_000):
        blob = seal(owners[i % 4], context, b"m")
        seen.add(blob[1:29])  # data key id + nonce
    assert len(seen) == 100_000


def test_errors_and_reprs_carry_no_plaintext_or_key(app, owner, caplog):
    secret = "my diagnosis is confidential-7731"
    context = ctx()
    blob = seal(owner, context, secret)
    with pytest.raises(DecryptionError) as err:
        open_text(owner, ctx(), blob)
    texts = [str(err.value), repr(err.value), repr(context),
             repr(app.extensions["portal_crypto"]),
             repr(app.extensions["portal_crypto"].provider)]
    from portal.crypto.envelope import key_cache
    texts.append(repr(key_cache()))
    texts.extend(repr(h) for h in key_cache().by_header.values())
    master = "A" * 43
    for text in texts:
        assert secret not in text
        assert "confidential" not in text
        assert master not in text
    assert str(err.value) == "sealed value could not be opened (tampered)"
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_open_text_safe_shows_the_unreadable_text_and_calls_hooks(owner, caplog):
    calls = []
    crypto.on_decrypt_failure.append(lambda o, c, r: calls.append((o, c, r)))
    try:
        context = ctx()
        blob = seal(owner, context, "fine")
        assert crypto.open_text_safe(owner, context, blob) == "fine"
        assert crypto.open_text_safe(owner, context, None) == ""
        broken = blob[:-1] + bytes([blob[-1] ^ 1])
        with caplog.at_level(logging.WARNING, logger="portal.crypto"):
            shown = crypto.open_text_safe(owner, context, broken)
        assert shown == crypto.UNREADABLE == "this item could not be decrypted"
        assert calls == [(owner, context, "tampered")]
        assert str(owner) in caplog.text and "tampered" in caplog.text
        assert "fine" not in caplog.text
    finally:
        crypto.on_decrypt_failure.pop()


def test_a_failing_hook_does_not_break_the_page(owner):
    def boom(*args):
        raise RuntimeError("audit down")

    crypto.on_decrypt_failure.append(boom)
    try:
        assert crypto.open_text_safe(owner, ctx(), b"\x01" + b"\x00" * 60) == crypto.UNREADABLE
    finally:
        crypto.on_decrypt_failure.remove(boom)


def test_open_text_or_none(owner):
    context = ctx()
    assert crypto.open_text_or_none(owner, context, None) is None
    assert crypto.open_text_or_none(owner, context, seal(owner, context, "a")) == "a"


def test_non_utf8_plaintext_is_not_text(owner):
    context = ctx()
    with pytest.raises(DecryptionError) as err:
        open_text(owner, context, seal(owner, context, b"\xff\xfe"))
    assert err.value.reason == "not-text"


def test_owner_id_may_be_given_as_a_string(owner):
    context = ctx()
    blob = seal(str(owner), context, "a")
    assert open_text(str(owner), context, blob) == "a"
    assert open_text(owner, context, blob) == "a"


def test_programming_errors_are_type_errors(owner):
    with pytest.raises(TypeError):
        seal(owner, ("messages", "body", uuid.uuid4()), "a")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        seal(owner, ctx(), 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        open_bytes(owner, ctx(), None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Context("messages", "body", "not-a-uuid")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Context("messages; drop", "body", uuid.uuid4())


def test_a_rolled_back_new_key_is_not_used_afterwards(app):
    owner = make_owner()
    context = ctx()
    seal(owner, context, "lost with the rollback")
    db.session.rollback()
    assert db.session.query(DataKey).count() == 0
    blob = seal(owner, context, "kept")
    db.session.commit()
    forget_keys()
    assert open_text(owner, context, blob) == "kept"
    assert db.session.get(DataKey, crypto.blob_key_id(blob)) is not None


def test_seal_for_an_owner_added_in_the_same_transaction(app):
    user = User(id=uuid.uuid4(), role="client", email_index=b"i" * 32, email_sealed=b"",
                name_sealed=b"")
    context = Context("users", "name_sealed", user.id)
    user.name_sealed = seal(user.id, context, "Ada")
    db.session.add(user)
    db.session.commit()
    forget_keys()
    assert open_text(user.id, context, db.session.get(User, user.id).name_sealed) == "Ada"


def test_a_key_made_inside_a_rolled_back_savepoint_is_not_used(app):
    owner = make_owner()
    context = ctx()
    savepoint = db.session.begin_nested()
    seal(owner, context, "lost with the savepoint")
    savepoint.rollback()
    blob = seal(owner, context, "kept")
    db.session.commit()
    forget_keys()
    assert open_text(owner, context, blob) == "kept"
    assert db.session.scalar(db.select(db.func.count()).select_from(DataKey)) == 1
