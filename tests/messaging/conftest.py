"""Builders for messaging tests: people, assignments, threads, and signing in a test client."""

from dataclasses import dataclass

import pytest
from sqlalchemy import event

from portal.accounts.models import Assignment, User
from portal.extensions import db as _db
from tests.support.auth import inject_session
from tests.support.people import PASSWORD, csrf_from, make_user, unique_email  # noqa: F401

# Small, valid files of every allowed kind.
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
       b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7"
       b"5\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def assign(client: User, therapist: User) -> None:
    """Assign a therapist to a client."""
    _db.session.add(Assignment(client_id=client.id, therapist_id=therapist.id))
    _db.session.commit()


@dataclass
class People:
    client_a: User
    client_b: User
    therapist_x: User  # client A's therapist
    therapist_y: User  # client B's therapist, and client A's second therapist
    admin: User


@pytest.fixture
def people(app) -> People:
    """Two clients, two therapists (A sees X and Y, B sees Y) and an administrator."""
    found = People(
        client_a=make_user("client", "Alex Rivera"),
        client_b=make_user("client", "Blake Sun"),
        therapist_x=make_user("therapist", "Colleen Xu"),
        therapist_y=make_user("therapist", "Kristen Young"),
        admin=make_user("admin", "Morgan Avery"),
    )
    assign(found.client_a, found.therapist_x)
    assign(found.client_a, found.therapist_y)
    assign(found.client_b, found.therapist_y)
    return found


def csrf_token(client, path: str = "/account") -> str:
    """Read a CSRF token from a page the client can open."""
    return csrf_from(client.get(path).get_data(as_text=True))


def sign_in(client, user: User) -> None:
    """Sign a test client in as `user` (session injected; the sign-in pages have their own
    tests in tests/accounts)."""
    inject_session(client, user)


@pytest.fixture(autouse=True)
def _isolated(isolated_requests):
    """Every messaging test runs its test-client requests in isolation (see tests/conftest.py)."""


@pytest.fixture
def login(app):
    """Return a function that gives a fresh test client signed in as a user."""
    def _login(user: User):
        client = app.test_client()
        sign_in(client, user)
        return client
    return _login


def post_multipart(client, path: str, fields: dict):
    """POST a multipart form built in memory (the test client spools big bodies to a temporary
    file it never closes, which filterwarnings=error turns into a failure)."""
    from werkzeug.test import encode_multipart

    boundary, body = encode_multipart(fields)
    return client.post(path, data=body,
                       content_type=f"multipart/form-data; boundary={boundary}")


class StatementCounter:
    """Count SQL statements sent to the database while active."""

    def __init__(self, engine):
        self.engine = engine
        self.statements: list[str] = []

    def _count(self, conn, cursor, statement, parameters, context, executemany):
        self.statements.append(statement)

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._count)

    @property
    def count(self) -> int:
        return len(self.statements)
