"""Shared fixtures: an app on a fresh database per test, a client, a CLI runner, builders."""

import os
import uuid

import pytest
from sqlalchemy import text

from portal import create_app
from portal.extensions import db as _db

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")


def _database_url(tmp_path) -> str:
    if POSTGRES_URL:
        return POSTGRES_URL
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def app(tmp_path):
    """Return an app bound to an empty database with every table created, context pushed."""
    url = _database_url(tmp_path)
    app = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": url,
                      "INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        if POSTGRES_URL:
            _reset_postgres()
        _db.create_all()
        from portal.crypto import ensure_canaries
        ensure_canaries()
        yield app
        _db.session.remove()
        if POSTGRES_URL:
            _reset_postgres()
        _db.engine.dispose()


def _reset_postgres() -> None:
    with _db.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


@pytest.fixture
def db(app):
    """Return the Flask-SQLAlchemy handle bound to the test database."""
    return _db


@pytest.fixture
def client(app):
    """Return a Flask test client."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """Return a CLI runner for `flask portal ...` commands."""
    return app.test_cli_runner()


def unique_email(prefix: str = "user") -> str:
    """Return an email address no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.org"
