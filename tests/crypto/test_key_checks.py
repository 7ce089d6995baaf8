"""Start-up and /readyz check the keyed-digest keys (email index, recovery codes) as they
check master keys; development never makes a new key over data kept under the old one."""

import pytest
from sqlalchemy import select

from portal.accounts.models import User
from portal.crypto import KeyCanary, ensure_canaries
from portal.crypto.canary import DIGEST_PREFIX, check_canaries
from portal.crypto.errors import KeyConfigError
from portal.extensions import db
from tests.support.people import make_user

MASTER = "test1:" + "A" * 43  # the testing config's
WRONG_INDEX = "C" * 43
PRODUCTION = {"ENV_NAME": "production", "PORTAL_MASTER_KEYS": MASTER, "SECRET_KEY": "s" * 40,
              "MAIL_SERVER": "localhost", "MAIL_USE_TLS": True}


def test_every_digest_key_has_a_canary(app):
    ids = set(db.session.scalars(select(KeyCanary.master_key_id)))
    assert {"hmac:email-index", "hmac:recovery-codes", "hmac:audit-chain",
            "hmac:emergency-index", "hmac:estimate-pdf", "hmac:signin-source",
            "hmac:password-pepper"} <= ids


@pytest.mark.parametrize("name", ["audit-chain", "emergency-index", "estimate-pdf",
                                  "signin-source", "password-pepper"])
def test_a_changed_canary_of_any_digest_key_stops_start_up(app, make_app, name):
    make_user()
    row = db.session.get(KeyCanary, f"hmac:{name}")
    row.blob = bytes(32)
    db.session.commit()
    with pytest.raises(SystemExit) as exc:
        make_app()
    assert exc.value.code == f"PORTAL_INDEX_KEY: does not match this database ({name} canary)"


def test_a_wrong_index_key_stops_production_start_up_with_one_line(app, make_app):
    make_user()
    with pytest.raises(SystemExit) as exc:
        make_app(**PRODUCTION, PORTAL_INDEX_KEY=WRONG_INDEX)
    assert exc.value.code == "PORTAL_INDEX_KEY: does not match this database (email-index canary)"
    assert WRONG_INDEX not in exc.value.code
    make_app(**PRODUCTION, PORTAL_INDEX_KEY="B" * 43)  # the right key starts


def test_a_missing_index_key_stops_production_start_up(make_app):
    with pytest.raises(SystemExit) as exc:
        make_app(**PRODUCTION, PORTAL_INDEX_KEY=None)
    assert exc.value.code == "PORTAL_INDEX_KEY: no index key configured (production needs one)"


def test_a_changed_recovery_canary_stops_start_up(app, make_app):
    make_user()
    row = db.session.get(KeyCanary, "hmac:recovery-codes")
    row.blob = bytes(32)
    db.session.commit()
    with pytest.raises(SystemExit) as exc:
        make_app()
    assert exc.value.code == ("PORTAL_INDEX_KEY: does not match this database "
                              "(recovery-codes canary)")


def test_without_canaries_a_users_email_index_is_checked(app, make_app):
    make_user()
    db.session.execute(db.delete(KeyCanary).where(KeyCanary.master_key_id.startswith(
        DIGEST_PREFIX)))
    db.session.commit()
    with pytest.raises(SystemExit) as exc:
        make_app(PORTAL_INDEX_KEY=WRONG_INDEX)
    assert exc.value.code == ("PORTAL_INDEX_KEY: does not match this database "
                              "(a user's email index)")
    make_app()  # the right key passes and writes the canaries
    assert db.session.get(KeyCanary, "hmac:email-index") is not None


def test_a_canary_with_no_users_is_renewed_not_fatal(app, make_app):
    before = db.session.get(KeyCanary, "hmac:email-index").blob
    db.session.commit()
    other = make_app(PORTAL_INDEX_KEY=WRONG_INDEX)
    with other.app_context():
        assert db.session.get(KeyCanary, "hmac:email-index").blob != before
        check_canaries()


def test_readyz_is_503_naming_no_secret_when_the_index_key_is_wrong(app, make_app):
    make_user()
    running = make_app(PORTAL_INDEX_KEY=WRONG_INDEX, PORTAL_SKIP_KEY_CHECK=True)
    with running.app_context(), pytest.raises(KeyConfigError):
        check_canaries()
    response = running.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert "keys" in body["failing"]
    assert body["checks"]["keys"] == {"ok": False,
                                      "reason": "a configured key does not match this database"}
    assert WRONG_INDEX not in response.get_data(as_text=True)
    assert "B" * 43 not in response.get_data(as_text=True)


def test_development_refuses_a_new_index_key_over_existing_accounts(app, make_app, tmp_path):
    make_user()
    instance = tmp_path / "dev-instance"
    with pytest.raises(SystemExit) as exc:
        make_app(ENV_NAME="development", PORTAL_DEV_KEYS=True, PORTAL_MASTER_KEYS=MASTER,
                 PORTAL_INDEX_KEY=None, INSTANCE_PATH=str(instance))
    path = instance / "index.key"
    assert exc.value.code == (
        f"{path}: missing, and this database already holds accounts; restore the file from "
        "your backup or set PORTAL_INDEX_KEY (a new key would not open them)")
    assert "\n" not in exc.value.code
    assert not path.exists()


def test_development_refuses_a_new_master_key_over_sealed_data(app, make_app, tmp_path):
    make_user()  # sealing the name and email made a data key
    instance = tmp_path / "dev-instance"
    with pytest.raises(SystemExit) as exc:
        make_app(ENV_NAME="development", PORTAL_DEV_KEYS=True, PORTAL_MASTER_KEYS=None,
                 PORTAL_INDEX_KEY="B" * 43, INSTANCE_PATH=str(instance))
    assert exc.value.code.startswith(f"{instance / 'master.keys'}: missing, and this database "
                                     "already holds sealed data; restore")
    assert not (instance / "master.keys").exists()


def test_development_makes_an_index_key_for_an_empty_database(app, make_app, tmp_path):
    assert db.session.scalar(select(User.id)) is None
    db.session.commit()
    instance = tmp_path / "dev-instance"
    made = make_app(ENV_NAME="development", PORTAL_DEV_KEYS=True, PORTAL_MASTER_KEYS=MASTER,
                    PORTAL_INDEX_KEY=None, INSTANCE_PATH=str(instance))
    assert (instance / "index.key").exists()
    with made.app_context():
        assert ensure_canaries() == []
