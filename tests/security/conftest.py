"""Fixtures for the security walks: one world per test module, and a guard against 500s."""

from collections.abc import Iterator

import pytest

from portal import create_app
from portal.crypto import ensure_canaries
from portal.extensions import db
from tests.conftest import POSTGRES_URL, _reset_postgres
from tests.security.support import IsolatedClient, World, build_world

# Small limits keep the oversized-body requests cheap; the checks are the same at any size.
WORLD_CONFIG = {"MAX_CONTENT_LENGTH": 2 * 1024 * 1024, "ATTACHMENT_MAX_BYTES": 256 * 1024}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    """Build one app and database with people and records, shared by a module's tests."""
    path = tmp_path_factory.mktemp("security")
    url = POSTGRES_URL or f"sqlite:///{path / 'security.db'}"
    app = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": url,
                      "INSTANCE_PATH": str(path), **WORLD_CONFIG})
    app.test_client_class = IsolatedClient
    with app.app_context():
        if POSTGRES_URL:
            _reset_postgres()
        db.create_all()
        ensure_canaries()
        built = build_world(app)
        db.session.commit()  # on SQLite an open transaction holds the write lock
        yield built
        db.session.remove()
        if POSTGRES_URL:
            _reset_postgres()
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _guarded(no_server_errors) -> None:
    """Every test that uses the world fails if a request answered with a server error
    (tests/conftest.py; it watches the world's app)."""
