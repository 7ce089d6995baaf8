"""Builders for policy tests: people, signing in through the real forms, published versions."""

from datetime import date

import pytest

from portal import practice
from portal.accounts.models import Role, User
from portal.db import new_id
from portal.policies import service
from tests.support.people import PASSWORD, csrf_from, make_user, unique_email  # noqa: F401


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
            "code": user.totp.now(), "csrf_token": csrf_from(page.data)})
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


def publish_first_standard_versions() -> dict:
    """Publish version 1 of every policy's standard text, as a database made before any
    standard update holds; returns them by slug."""
    return {slug: service.publish(None, slug=slug, text=standards[0].text,
                                  effective_date=practice.today(),
                                  summary=standards[0].summary,
                                  requires_acceptance=standards[0].requires_acceptance)
            for slug, standards in service.STANDARD.items()}


@pytest.fixture
def defaults(app):
    """Publish version 1 of every policy from the standard texts; returns them by slug."""
    return publish_first_standard_versions()


@pytest.fixture
def client_user(app):
    """A client who has not accepted anything yet."""
    return make_user(Role.CLIENT)


@pytest.fixture
def admin_user(app):
    """An admin with two-step sign-in turned on."""
    return make_user(Role.ADMIN, name="Morgan Admin")
