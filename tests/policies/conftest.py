"""Builders for policy tests: people, signing in through the real forms, published versions."""

import re
import uuid
from datetime import date

import pyotp
import pytest

from portal import practice
from portal.accounts import mfa, passwords
from portal.accounts.identity import set_identity
from portal.accounts.models import Role, User
from portal.db import new_id, utcnow
from portal.extensions import db
from portal.policies import service

PASSWORD = "a calm blue lake at dawn"
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def unique_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.org"


def make_user(role: str = Role.CLIENT, *, name: str = "Robin Test", email: str | None = None,
              active: bool = True) -> User:
    """Create an account with a password (staff also get two-step sign-in turned on)."""
    user = User(id=new_id(), role=role, mfa_prompt_dismissed=True, active=active)
    set_identity(user, name=name, email=email or unique_email(role))
    user.password_hash = passwords.hash_password(PASSWORD)
    if role != Role.CLIENT:
        user.totp_key = pyotp.random_base32()
        user.totp_seed_sealed = mfa.seal_seed(user, user.totp_key)
        user.totp_enabled_at = utcnow()
    db.session.add(user)
    db.session.commit()
    return user


def csrf_from(html: str | bytes) -> str:
    """Return the CSRF token written into a page's form."""
    if isinstance(html, bytes):
        html = html.decode()
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def email_of(user: User) -> str:
    from portal.accounts.identity import email_of as _email_of

    return _email_of(user)


def sign_in(client, user: User):
    """Sign in through the sign-in form (and the code form for staff); returns the response."""
    page = client.get("/sign-in")
    response = client.post("/sign-in", data={"email": email_of(user), "password": PASSWORD,
                                             "csrf_token": csrf_from(page.data)})
    if user.role != Role.CLIENT:
        page = client.get("/sign-in/verify")
        response = client.post("/sign-in/verify", data={
            "code": pyotp.TOTP(user.totp_key).now(), "csrf_token": csrf_from(page.data)})
    assert response.status_code == 302, response.data[:500]
    return response


def publish(slug: str = "terms", *, number_text: str | None = None,
            effective: date | None = None, summary: str = "Clearer wording.",
            requires_acceptance: bool = False, actor: User | None = None):
    """Publish a version with a distinct text; returns it."""
    text = number_text or f"# {service.title_of(slug)}\n\n## Changes\n\n- {new_id()}\n"
    return service.publish(actor, slug=slug, text=text,
                           effective_date=effective or practice.today(), summary=summary,
                           requires_acceptance=requires_acceptance)


@pytest.fixture(autouse=True)
def _isolated(isolated_requests, no_server_errors):
    """Every policy test runs its test-client requests in isolation and fails on any 5xx
    (see tests/conftest.py)."""


@pytest.fixture
def defaults(app):
    """Publish version 1 of every policy from the standard texts; returns them by slug."""
    return {v.slug: v for v in service.ensure_defaults()}


@pytest.fixture
def client_user(app):
    """A client who has not accepted anything yet."""
    return make_user(Role.CLIENT)


@pytest.fixture
def admin_user(app):
    """An admin with two-step sign-in turned on."""
    return make_user(Role.ADMIN, name="Morgan Admin")
