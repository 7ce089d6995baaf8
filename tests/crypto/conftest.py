"""Fixtures for the crypto tests: further apps with chosen keys on the same database, and a
sealed test model with its own metadata (so it never reaches the app's migrations).
"""

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from flask import Flask, has_app_context
from sqlalchemy import LargeBinary, Uuid, event
from sqlalchemy.orm import DeclarativeBase, Mapped, configure_mappers, mapped_column

from portal import create_app, crypto
from portal.accounts.models import User
from portal.crypto import registry
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


@pytest.fixture
def database_url(tmp_path) -> str:
    """Return the database the shared `app` fixture uses (PostgreSQL or a SQLite file)."""
    return POSTGRES_URL or f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def make_app(tmp_path, database_url) -> Iterator[Callable[..., Flask]]:
    """Return a builder of further apps on the test database, with config overrides.

    Rotation tests need them: "rewrap, then start again without the old key".
    """
    apps: list[Flask] = []

    def build(**overrides) -> Flask:
        if has_app_context():  # SQLite BEGIN IMMEDIATE: release the outer write lock first
            _db.session.commit()
        settings = {"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": database_url,
                    "INSTANCE_PATH": str(tmp_path), **overrides}
        app = create_app(settings)
        apps.append(app)
        return app

    yield build
    for app in apps:
        with app.app_context():
            _db.session.remove()
            _db.engine.dispose()


@pytest.fixture
def app(app) -> Iterator[Flask]:
    """Extend the shared app fixture with the test model's table."""
    NotesBase.metadata.create_all(_db.engine)
    yield app


@pytest.fixture(autouse=True)
def isolated_registry() -> Iterator[None]:
    """Start each test with an empty sealed-field registry (features register theirs)."""
    configure_mappers()  # the features' declared columns register now, not inside the test
    saved = dict(registry._fields)
    registry._fields.clear()
    yield
    registry._fields.clear()
    registry._fields.update(saved)


@pytest.fixture
def notes(app) -> Iterator[type[Note]]:
    """Register the test model's sealed fields for rotation; unregister afterwards."""
    register_sealed(Note, "body_sealed", owner="owner_id")
    register_sealed(Note, "subject_sealed", owner="owner_id")
    yield Note
    unregister_sealed(Note, "body_sealed")
    unregister_sealed(Note, "subject_sealed")


def make_owner() -> uuid.UUID:
    """Insert a client row to own data keys; return its id (without reloading the row)."""
    user_id = uuid.uuid4()
    _db.session.add(User(id=user_id, role="client", email_index=os.urandom(32),
                         email_sealed=b"x", name_sealed=b"x"))
    _db.session.commit()
    return user_id


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
