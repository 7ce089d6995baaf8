"""Shared fixtures: an app on a fresh database per test, a client, `auth` (sign the client in
and out), a CLI runner, isolated test-client requests, a guard against server errors and a
real SMTP server. The builders (make_user, PASSWORD, csrf_from...) are in tests/support."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from portal import create_app
from portal.crypto import ensure_canaries
from portal.extensions import db as _db
from tests.support.auth import AuthActions
from tests.support.clients import IsolatedClient
from tests.support.databases import create_database, drop_database, sibling_database_url
from tests.support.guards import server_errors_refused
from tests.support.smtp import SMTPServer

# Fixtures every test may ask for by name, defined beside their helpers.
pytest_plugins = ["tests.support.clock"]

_WORKER_DATABASE = "COEO_TEST_WORKER_DATABASE"


def _worker_database() -> str | None:
    """Under pytest-xdist each worker gets its own PostgreSQL database beside the one
    TEST_DATABASE_URL names (tests drop and recreate the schema, so they cannot share one).
    Set before any test module reads the variable; this module may be imported twice (as
    pytest's conftest and as `tests.conftest`), so it runs once per worker."""
    url = os.environ.get("TEST_DATABASE_URL")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker or os.environ.get(_WORKER_DATABASE) == url:
        return url  # one process, or this worker's database is made already
    mine = sibling_database_url(url, worker, unique=False)
    create_database(mine)
    os.environ["TEST_DATABASE_URL"] = os.environ[_WORKER_DATABASE] = mine
    return mine


POSTGRES_URL = _worker_database()


def pytest_sessionfinish(session) -> None:
    """Drop this worker's own PostgreSQL database (see `_worker_database`)."""
    if POSTGRES_URL and os.environ.get("PYTEST_XDIST_WORKER"):
        drop_database(POSTGRES_URL)


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "server_error_expected(status, ...): the test causes "
                            "these 5xx answers on purpose; no_server_errors lets them through")


def _database_url(tmp_path) -> str:
    if POSTGRES_URL:
        return POSTGRES_URL
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """One SQLite file with every table and the key canaries, made once per run: each test
    starts from a copy (a file copy costs about a millisecond; creating the schema, 30)."""
    folder = tmp_path_factory.mktemp("template")
    path = folder / "template.db"
    app = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}",
                      "INSTANCE_PATH": str(folder)})
    with app.app_context():
        _db.create_all()
        ensure_canaries()
        _db.session.remove()
        _db.engine.dispose()  # checkpoints the WAL into the file
    return path


@pytest.fixture
def app(request, tmp_path):
    """Return an app bound to an empty database with every table created, context pushed."""
    url = _database_url(tmp_path)
    if not POSTGRES_URL:
        shutil.copyfile(request.getfixturevalue("sqlite_template"), tmp_path / "test.db")
    app = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": url,
                      "INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        if POSTGRES_URL:
            _reset_postgres()
            _db.create_all()
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
def auth(client) -> AuthActions:
    """`auth.login(user)` signs the `client` fixture in (session injected), `auth.logout()`."""
    return AuthActions(client)


@pytest.fixture
def runner(app):
    """Return a CLI runner for `flask portal ...` commands."""
    return app.test_cli_runner()


@pytest.fixture
def isolated_requests(request) -> None:
    """Run every test-client request in its own app context, as in production.

    Without it, requests reuse the app context the `app` fixture keeps pushed for the whole
    test, so they share one `g` and one database session with each other and with the test
    (see IsolatedClient). Opt in by name, or for a whole folder with an autouse fixture in its
    conftest that asks for it. It applies to test clients made after it: name it before
    `client` (autouse fixtures always come first). A test without the `app` fixture: no-op.
    """
    if "app" in request.fixturenames:
        request.getfixturevalue("app").test_client_class = IsolatedClient


@pytest.fixture
def no_server_errors(request) -> Iterator[list[str]]:
    """Fail the test if a request it made answered with a server error (any 5xx).

    It watches the test's `app` or, in tests/security, the module's `world` app (other apps a
    test builds, e.g. to break on purpose, are not watched); without either it does nothing.
    /readyz's 503 is its normal "not ready" answer here, not a failure. A test that causes a
    5xx on purpose says so: `@pytest.mark.server_error_expected(503)`. Opt in by name, or for
    a whole folder with an autouse fixture in its conftest that asks for it. Yields the
    failures seen so far.
    """
    if "app" in request.fixturenames:
        app = request.getfixturevalue("app")
    elif "world" in request.fixturenames:
        app = request.getfixturevalue("world").app
    else:
        yield []
        return
    allowed = [status for mark in request.node.iter_markers("server_error_expected")
               for status in mark.args]
    with server_errors_refused(app, allowed) as failures:
        yield failures


@pytest.fixture
def smtp_server(app):
    """Run a real SMTP server on 127.0.0.1 and point the app's mail settings at it.

    The testing config sends queued mail only when `deliver_pending` runs: a test that wants
    it sent right after each commit sets MAIL_SEND_AFTER_COMMIT. `stop()` and `start()` make
    an outage; `envelopes` is what arrived.
    """
    server = SMTPServer()
    server.start()
    app.config.update(MAIL_SERVER=server.host, MAIL_PORT=server.port, MAIL_USE_TLS=False,
                      MAIL_USERNAME=None, MAIL_PASSWORD=None, MAIL_TIMEOUT=5)
    try:
        yield server
    finally:
        server.stop()
