"""Start-up key checks: a wrong or missing master key stops the app with one line."""

import uuid

import pytest
from sqlalchemy import select

from portal import crypto
from portal.crypto import Context, KeyCanary, KeyConfigError, seal
from portal.crypto.canary import check_canaries, ensure_canaries
from portal.crypto.keyring import DIGEST_INFOS
from portal.extensions import db

from .conftest import key_entry, make_owner


def test_every_configured_key_gets_a_canary(app, make_app):
    digests = sorted(f"hmac:{name}" for name in DIGEST_INFOS)  # tests/crypto/test_key_checks.py
    assert sorted(db.session.scalars(select(KeyCanary.master_key_id))) == [*digests, "test1"]
    other = make_app(PORTAL_MASTER_KEYS=key_entry("k2") + ",test1:" + "A" * 43)
    with other.app_context():
        assert sorted(db.session.scalars(select(KeyCanary.master_key_id))) == [
            *digests, "k2", "test1"]
        assert ensure_canaries() == []
        check_canaries()


def test_a_key_that_does_not_open_its_canary_stops_the_app(app, make_app):
    with pytest.raises(SystemExit) as exc:
        make_app(PORTAL_MASTER_KEYS=key_entry("test1"))
    assert exc.value.code == "PORTAL_MASTER_KEYS: key 'test1' does not match this database"


def test_a_wrong_old_key_is_caught_too(app, make_app):
    with pytest.raises(SystemExit) as exc:
        make_app(PORTAL_MASTER_KEYS=key_entry("k2") + "," + key_entry("test1"))
    assert exc.value.code == "PORTAL_MASTER_KEYS: key 'test1' does not match this database"


def test_a_key_without_canary_is_checked_against_its_data_keys(app, make_app):
    seal(make_owner(), Context("t", "c", uuid.uuid4()), "x")
    db.session.commit()
    db.session.execute(db.delete(KeyCanary))
    db.session.commit()
    with pytest.raises(SystemExit) as exc:
        make_app(PORTAL_MASTER_KEYS=key_entry("test1"))
    assert exc.value.code == "PORTAL_MASTER_KEYS: key 'test1' does not match this database"


def test_data_keys_under_an_unconfigured_key_stop_the_app(app, make_app):
    for _ in range(12):
        seal(make_owner(), Context("t", "c", uuid.uuid4()), "x")
    db.session.commit()
    with pytest.raises(SystemExit) as exc:
        make_app(PORTAL_MASTER_KEYS=key_entry("k2"))
    assert exc.value.code == ("PORTAL_MASTER_KEYS: 12 data keys are wrapped by key 'test1', "
                              "which is not configured")
    # The check itself raises KeyConfigError for callers other than start-up.
    other = make_app(PORTAL_MASTER_KEYS=key_entry("k2"), PORTAL_SKIP_KEY_CHECK=True)
    with other.app_context(), pytest.raises(KeyConfigError, match="12 data keys"):
        check_canaries()


def test_one_data_key_is_singular(app, make_app, tmp_path):
    seal(make_owner(), Context("t", "c", uuid.uuid4()), "x")
    db.session.commit()
    key_file = tmp_path / "other.keys"
    key_file.write_text(key_entry("k9") + "\n")
    with pytest.raises(SystemExit) as exc:
        make_app(PORTAL_MASTER_KEY_FILE=str(key_file), PORTAL_MASTER_KEYS=None)
    assert exc.value.code == ("PORTAL_MASTER_KEY_FILE: 1 data key is wrapped by key 'test1', "
                              "which is not configured")


def test_check_is_skipped_before_migrations_and_when_asked(make_app):
    app = make_app()  # empty database: no key_canaries table yet, nothing to check
    with app.app_context():
        assert not db.inspect(db.engine).has_table("key_canaries")
    make_app(PORTAL_SKIP_KEY_CHECK=True, PORTAL_MASTER_KEYS=key_entry("k1"))


def test_an_unreachable_database_is_one_line_too(make_app, tmp_path):
    with pytest.raises(SystemExit) as exc:
        make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing/dir/x.db")
    assert exc.value.code == ("coeo portal: could not check the master keys against the "
                              "database (OperationalError)")


def test_init_app_stores_the_state(app):
    state = app.extensions["portal_crypto"]
    assert isinstance(state, crypto.CryptoState)
    assert state.provider.current_key_id == "test1"
