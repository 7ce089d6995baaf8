"""Builders for messaging tests: people, assignments, threads, and signing in a test client."""

import re
import uuid
from dataclasses import dataclass

import pyotp
import pytest
from sqlalchemy import event, update

from portal.accounts import mfa, passwords
from portal.accounts.identity import set_identity
from portal.accounts.models import Assignment, Role, User
from portal.db import new_id, utcnow
from portal.extensions import db as _db
from tests.conftest import unique_email

PASSWORD = "quiet lanterns over the slow river"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                     r'<meta name="csrf-token" content="([^"]+)"')

# Small, valid files of every allowed kind.
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
       b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7"
       b"5\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def make_user(role: str, name: str | None = None, *, mfa_on: bool | None = None,
              active: bool = True) -> User:
    """Create an account with a password (and TOTP for staff); `user.totp` gives codes."""
    email = unique_email(role)
    user = User(id=new_id(), role=role, mfa_prompt_dismissed=True, active=active)
    set_identity(user, name=name or f"{role.title()} {uuid.uuid4().hex[:6]}", email=email)
    user.password_hash = passwords.hash_password(PASSWORD)
    seed = None
    if mfa_on if mfa_on is not None else role != Role.CLIENT:
        seed = pyotp.random_base32()
        user.totp_seed_sealed = mfa.seal_seed(user, seed)
        user.totp_enabled_at = utcnow()
    _db.session.add(user)
    _db.session.commit()
    user.email_address = email
    user.totp = pyotp.TOTP(seed) if seed else None
    return user


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
    html = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def sign_in(client, user: User) -> None:
    """Sign a test client in as `user` (password, then a TOTP code for staff)."""
    token = csrf_token(client, "/sign-in")
    response = client.post("/sign-in", data={"csrf_token": token, "email": user.email_address,
                                             "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    if user.totp is not None:
        assert "/sign-in/verify" in response.headers["Location"]
        # A code works once per 30-second step: let a test sign the same person in twice.
        _db.session.execute(update(User).where(User.id == user.id).values(totp_last_step=None))
        _db.session.commit()
        token = csrf_token(client, "/sign-in/verify")
        response = client.post("/sign-in/verify", data={"csrf_token": token,
                                                        "code": user.totp.now()})
        assert response.status_code == 302, response.get_data(as_text=True)[:500]


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
