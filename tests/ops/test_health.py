"""/healthz and /readyz: JSON, no sign-in, 503 naming the failing check."""

import base64

import flask_migrate
import pytest

from portal.extensions import db
from tests.ops.support import ROOT, build_app, free_port, upgrade_to_head

MIGRATIONS = str(ROOT / "migrations")
OTHER_KEY = base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()


@pytest.fixture
def migrated(app):
    """Rebuild the test database with the real migrations (flask db upgrade) instead."""
    db.drop_all()
    db.session.commit()
    upgrade_to_head(app)
    return app


@pytest.fixture
def dead_database_app(tmp_path):
    """An app whose PostgreSQL is not there (a port nobody listens on).

    The start-up key check is skipped: it would refuse to start at all, which is right for a
    new process; this stands for a running process whose database went away.
    """
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/coeo"
    app = build_app(url, tmp_path / "dead", PORTAL_SKIP_KEY_CHECK=True)
    yield app
    with app.app_context():
        db.engine.dispose()


def readyz(app):
    response = app.test_client().get("/readyz")
    body = response.get_json()
    assert response.mimetype == "application/json"
    return response.status_code, body


def test_healthz_says_alive_without_touching_the_database(dead_database_app):
    response = dead_database_app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_is_ready_on_a_database_migrated_to_head(migrated):
    status, body = readyz(migrated)
    assert status == 200, body
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "migrations", "keys"}
    assert all(check["ok"] for check in body["checks"].values())
    assert "failing" not in body


def test_readyz_needs_no_sign_in_and_says_nothing_private(migrated):
    response = migrated.test_client().get("/readyz")
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    for secret in (migrated.config["PORTAL_MASTER_KEYS"].split(":")[1],
                   migrated.config["SQLALCHEMY_DATABASE_URI"], "sign-in"):
        assert secret not in text


def test_readyz_names_migrations_when_the_database_is_one_revision_behind(migrated):
    with migrated.app_context():
        flask_migrate.downgrade(directory=MIGRATIONS, revision="-1")
    status, body = readyz(migrated)
    assert status == 503
    assert body["status"] == "not ready"
    assert body["failing"] == ["migrations"]
    assert body["checks"]["migrations"] == {
        "ok": False, "reason": "database is not at the latest migration"}
    with migrated.app_context():
        flask_migrate.upgrade(directory=MIGRATIONS)
    assert readyz(migrated)[0] == 200


def test_readyz_names_migrations_when_none_were_ever_applied(app):
    status, body = readyz(app)  # create_all() made the tables; Alembic never ran
    assert status == 503
    assert body["failing"] == ["migrations"]
    assert body["checks"]["migrations"]["reason"] == "no migrations applied"


def test_readyz_names_keys_when_a_configured_key_does_not_open_the_canary(migrated, tmp_path):
    url = migrated.config["SQLALCHEMY_DATABASE_URI"]
    with pytest.raises(SystemExit, match="does not match this database"):
        build_app(url, tmp_path / "wrong", PORTAL_MASTER_KEYS=f"test1:{OTHER_KEY}")
    # The same wrong key in a process that is already running (the start-up check skipped):
    wrong = build_app(url, tmp_path / "wrong", PORTAL_MASTER_KEYS=f"test1:{OTHER_KEY}",
                        PORTAL_SKIP_KEY_CHECK=True)
    try:
        status, body = readyz(wrong)
    finally:
        with wrong.app_context():
            db.engine.dispose()
    assert status == 503
    assert body["failing"] == ["keys"]
    assert body["checks"]["keys"] == {
        "ok": False, "reason": "a configured key does not match this database"}
    assert OTHER_KEY not in str(body)
    assert readyz(migrated)[0] == 200  # the right key still opens it


def test_readyz_names_the_database_when_it_is_unreachable(dead_database_app):
    status, body = readyz(dead_database_app)
    assert status == 503
    assert body["failing"][0] == "database"
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["database"]["reason"].startswith("database unreachable")
    assert "127.0.0.1" not in str(body) and "postgres" not in str(body)


def test_a_page_that_needs_the_unreachable_database_answers_a_friendly_503(dead_database_app):
    client = dead_database_app.test_client()
    page = client.get("/sign-in").get_data(as_text=True)
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    response = client.post("/sign-in", data={"csrf_token": token, "email": "a@example.org",
                                             "password": "long enough password here"})
    text = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "briefly unavailable" in text
    assert "Traceback" not in text and "OperationalError" not in text

