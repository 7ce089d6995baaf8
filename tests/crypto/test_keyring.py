"""Master key and index key settings: parsing, one-line errors, development key files."""

import os
import stat

import pytest

from portal.crypto import KeyConfigError, LocalKeyProvider
from portal.crypto.errors import DecryptionError
from portal.crypto.keyring import build_state, encode_key, parse_master_keys

from .conftest import key_entry

INDEX = "B" * 43


def state(tmp_path, **config):
    config.setdefault("ENV_NAME", "testing")
    return build_state(config, tmp_path)


def test_entries_parse_first_wraps_and_others_unwrap():
    k1, k2 = os.urandom(32), os.urandom(32)
    keys = parse_master_keys(f" new:{encode_key(k1)} , old:{encode_key(k2)}=,")
    assert keys == [("new", k1), ("old", k2)]
    provider = LocalKeyProvider(keys)
    assert provider.current_key_id == "new"
    assert provider.key_ids() == ["new", "old"]
    key_id, blob = provider.wrap(b"data key", b"aad")
    assert key_id == "new"
    assert provider.unwrap("new", blob, b"aad") == b"data key"
    _, old_blob = provider.wrap(b"data key", b"aad", key_id="old")
    assert provider.unwrap("old", old_blob, b"aad") == b"data key"


def test_standard_base64_alphabet_is_accepted_too():
    key = bytes([0xFB]) * 32
    standard = __import__("base64").b64encode(key).decode()
    assert parse_master_keys(f"k:{standard}") == [("k", key)]


def test_key_file_may_hold_one_entry_per_line_with_comments(tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"# newest first\n{key_entry('b')}\n{key_entry('a')}\n")
    built = state(tmp_path, PORTAL_MASTER_KEY_FILE=str(path), PORTAL_INDEX_KEY=INDEX)
    assert built.provider.key_ids() == ["b", "a"]
    assert built.provider.source == "PORTAL_MASTER_KEY_FILE"


def test_wrapped_key_does_not_unwrap_with_other_aad_or_key():
    provider = LocalKeyProvider([("k1", os.urandom(32)), ("k2", os.urandom(32))])
    _, blob = provider.wrap(b"data key", b"aad")
    with pytest.raises(DecryptionError, match="unwrap-failed"):
        provider.unwrap("k1", blob, b"other aad")
    with pytest.raises(DecryptionError, match="unwrap-failed"):
        provider.unwrap("k2", blob, b"aad")
    with pytest.raises(DecryptionError, match="unknown-master-key"):
        provider.unwrap("k9", blob, b"aad")
    with pytest.raises(DecryptionError, match="unwrap-failed"):
        provider.unwrap("k1", blob[:20], b"aad")


@pytest.mark.parametrize(("value", "message"), [
    ("k1:" + "A" * 42, "PORTAL_MASTER_KEYS: entry 1 is not id:base64url-32-bytes"),
    (key_entry("k1") + ",k2", "PORTAL_MASTER_KEYS: entry 2 is not id:base64url-32-bytes"),
    (key_entry("k1") + ",:" + "A" * 43,
     "PORTAL_MASTER_KEYS: entry 2 is not id:base64url-32-bytes"),
    ("k1:" + "A" * 44, "PORTAL_MASTER_KEYS: entry 1 is not id:base64url-32-bytes"),
    ("k 1:" + "A" * 43, "PORTAL_MASTER_KEYS: entry 1 is not id:base64url-32-bytes"),
    ("k1:" + "A" * 40 + "!!!", "PORTAL_MASTER_KEYS: entry 1 is not id:base64url-32-bytes"),
    (key_entry("k1") + "," + key_entry("k1"), "PORTAL_MASTER_KEYS: key id 'k1' appears twice"),
    (" , ", "PORTAL_MASTER_KEYS: no master key configured"),
], ids=lambda value: None if value.startswith("PORTAL_") else "")  # no random key in an id
def test_malformed_master_keys_name_the_setting_in_one_line(tmp_path, value, message):
    with pytest.raises(KeyConfigError) as err:
        state(tmp_path, PORTAL_MASTER_KEYS=value, PORTAL_INDEX_KEY=INDEX)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_error_never_echoes_key_material(tmp_path):
    secret = encode_key(os.urandom(32))
    with pytest.raises(KeyConfigError) as err:
        state(tmp_path, PORTAL_MASTER_KEYS=f"k1:{secret},k2:{secret[:-1]}",
              PORTAL_INDEX_KEY=INDEX)
    assert secret[:-1] not in str(err.value)


@pytest.mark.parametrize(("config", "message"), [
    ({}, "PORTAL_MASTER_KEYS: no master key configured (production needs one)"),
    ({"PORTAL_DEV_KEYS": True},
     "PORTAL_MASTER_KEYS: no master key configured (production needs one)"),
    ({"PORTAL_MASTER_KEYS": key_entry("k1")},
     "PORTAL_INDEX_KEY: no index key configured (production needs one)"),
])
def test_production_refuses_to_start_without_keys(tmp_path, config, message):
    with pytest.raises(KeyConfigError) as err:
        build_state({"ENV_NAME": "production", **config}, tmp_path)
    assert str(err.value) == message
    assert not (tmp_path / "master.keys").exists()


def test_production_init_app_exits_with_one_line(make_app):
    with pytest.raises(SystemExit) as exc:
        make_app(ENV_NAME="production", PORTAL_MASTER_KEYS=None, PORTAL_INDEX_KEY=None,
                 SECRET_KEY="s" * 40, MAIL_SERVER="localhost", MAIL_USE_TLS=True)
    assert exc.value.code == "PORTAL_MASTER_KEYS: no master key configured (production needs one)"


@pytest.mark.parametrize(("config", "message"), [
    ({"PORTAL_INDEX_KEY": "short"}, "PORTAL_INDEX_KEY: not a base64url-32-bytes value"),
    ({"PORTAL_INDEX_KEY": "A" * 43}, "PORTAL_INDEX_KEY: must differ from every master key"),
    ({"PORTAL_MASTER_KEY_FILE": "/nonexistent/keys", "PORTAL_MASTER_KEYS": None},
     "PORTAL_MASTER_KEY_FILE: cannot read /nonexistent/keys (No such file or directory)"),
    ({"PORTAL_MASTER_KEY_FILE": "/x"},
     "PORTAL_MASTER_KEYS: set it or PORTAL_MASTER_KEY_FILE, not both"),
    ({"PORTAL_MASTER_KEYS": None},
     "PORTAL_MASTER_KEYS: no master key configured (set it or PORTAL_MASTER_KEY_FILE)"),
])
def test_other_key_errors_are_one_line(tmp_path, config, message):
    base = {"PORTAL_MASTER_KEYS": "test1:" + "A" * 43, "PORTAL_INDEX_KEY": INDEX}
    with pytest.raises(KeyConfigError) as err:
        state(tmp_path, **{**base, **config})
    assert str(err.value) == message


def test_development_creates_private_key_files_and_warns_once(tmp_path, capsys):
    config = {"ENV_NAME": "development", "PORTAL_DEV_KEYS": True}
    first = build_state(config, tmp_path / "instance")
    warning = capsys.readouterr().err
    master, index = tmp_path / "instance" / "master.keys", tmp_path / "instance" / "index.key"
    for path in (master, index):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "master.keys" in warning
    assert "lost" in warning and "Back it up" in warning and "apart from the" in warning
    assert first.provider.current_key_id.startswith("dev-")
    assert master.read_text().split(":")[1].strip() not in warning

    again = build_state(config, tmp_path / "instance")
    assert capsys.readouterr().err == ""
    assert again.provider.key_ids() == first.provider.key_ids()
    assert again.index_subkey == first.index_subkey


def test_development_with_configured_keys_creates_no_files(tmp_path, capsys):
    build_state({"ENV_NAME": "development", "PORTAL_DEV_KEYS": True,
                 "PORTAL_MASTER_KEYS": key_entry("k1"), "PORTAL_INDEX_KEY": INDEX}, tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert capsys.readouterr().err == ""


def test_reprs_show_key_ids_only(tmp_path):
    key = os.urandom(32)
    built = state(tmp_path, PORTAL_MASTER_KEYS=f"k1:{encode_key(key)}", PORTAL_INDEX_KEY=INDEX)
    for text in (repr(built), repr(built.provider), str(built.provider)):
        assert "k1" in text
        assert encode_key(key) not in text
        assert INDEX not in text
        assert key.hex() not in text
