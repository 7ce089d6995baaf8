"""Fixtures for the crypto tests: apps with chosen keys on one database, a sealed test model.

The apps here carry only the database and the crypto layer (the full factory also needs every
feature package), and several apps with different key settings can share one database, which
rotation tests need ("rewrap, then start again without the old key").
"""

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from sqlalchemy import LargeBinary, Uuid, event, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import config
from portal import crypto
from portal.accounts.models import User
from portal.crypto.keyring import encode_key
from portal.crypto.registry import register_sealed, unregister_sealed
from portal.extensions import db as _db

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")


class NotesBase(DeclarativeBase):
    """Its own metadata, so the test table never reaches the app's metadata or migrations."""

    type_annotation_map = {uuid.UUID: Uuid()}


class Note(NotesBase):
    """A stand-in for any feature's sealed rows (messages, estimates)."""

    __tablename__ = "crypto_test_notes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID]
    body_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    subject_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)

    def body_context(self) -> crypto.Context:
        return crypto.Context("crypto_test_notes", "body_sealed", self.id)

    def subject_context(self) -> crypto.Context:
        return crypto.Context("crypto_test_notes", "subject_sealed", self.id)


def key_entry(key_id: str, key: bytes | None = None) -> str:
    """Return an "id:base64url" master key entry (random key unless given)."""
    return f"{key_id}:{encode_key(key or os.urandom(32))}"


def _reset_postgres(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


@pytest.fixture
def database_url(tmp_path) -> str:
    """Return the test database URL: PostgreSQL when TEST_DATABASE_URL is set, else SQLite."""
    return POSTGRES_URL or f"sqlite:///{tmp_path / 'crypto.db'}"


@pytest.fixture
def make_app(tmp_path, database_url) -> Iterator[Callable[..., Flask]]:
    """Return a builder of apps (db + crypto) on the test database with config overrides."""
    apps: list[Flask] = []

    def build(**overrides) -> Flask:
        instance = overrides.pop("INSTANCE_PATH", str(tmp_path / "instance"))
        app = Flask("crypto_tests", instance_path=instance)
        app.config.from_object(config.TestingConfig)
        app.config["SQLALCHEMY_DATABASE_URI"] = database_url
        app.config.update(overrides)
        _db.init_app(app)
        apps.append(app)
        crypto.init_app(app)
        return app

    yield build
    for app in apps:
        with app.app_context():
            _db.session.remove()
            _db.engine.dispose()


@pytest.fixture
def app(make_app) -> Iterator[Flask]:
    """Return an app on a fresh database with every table and the canary, context pushed."""
    app = make_app()
    with app.app_context():
        if POSTGRES_URL:
            _reset_postgres(_db.engine)
        _db.create_all()
        NotesBase.metadata.create_all(_db.engine)
        crypto.ensure_canaries()
        yield app
        _db.session.remove()
        if POSTGRES_URL:
            _reset_postgres(_db.engine)


@pytest.fixture
def notes(app) -> Iterator[type[Note]]:
    """Register the test model's sealed fields for rotation; unregister afterwards."""
    register_sealed(Note, "body_sealed", owner="owner_id")
    register_sealed(Note, "subject_sealed", owner="owner_id")
    yield Note
    unregister_sealed(Note, "body_sealed")
    unregister_sealed(Note, "subject_sealed")


def make_owner() -> uuid.UUID:
    """Insert a client row to own data keys; return its id."""
    user = User(role="client", email_index=os.urandom(32), email_sealed=b"x", name_sealed=b"x")
    _db.session.add(user)
    _db.session.commit()
    return user.id


def make_note(owner_id: uuid.UUID, body: str, subject: str | None = None) -> Note:
    """Insert a note sealed for `owner_id` (committed)."""
    note = Note(id=uuid.uuid4(), owner_id=owner_id)
    note.body_sealed = crypto.seal(owner_id, note.body_context(), body)
    if subject is not None:
        note.subject_sealed = crypto.seal(owner_id, note.subject_context(), subject)
    _db.session.add(note)
    _db.session.commit()
    return note


@pytest.fixture
def owner(app) -> uuid.UUID:
    """Return the id of a fresh client."""
    return make_owner()


class StatementCounter:
    """Count SQL statements sent to the engine (SELECTs separately)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.statements.append(statement)

    @property
    def selects(self) -> int:
        return sum(1 for s in self.statements if s.lstrip().upper().startswith("SELECT"))


@pytest.fixture
def count_statements(app) -> Iterator[StatementCounter]:
    """Count statements on the app's engine while the test runs."""
    counter = StatementCounter()
    event.listen(_db.engine, "before_cursor_execute", counter)
    yield counter
    event.remove(_db.engine, "before_cursor_execute", counter)
