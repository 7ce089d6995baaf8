"""Builders and helpers the account, admin and security tests share.

Plain functions and fixtures only (no module state), imported by the conftest files and the
root test modules that need them.
"""

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyotp
import pytest
from flask import Flask
from sqlalchemy import inspect, select

from portal import create_app
from portal.accounts import mfa
from portal.accounts.models import User
from portal.audit import AuditEvent
from portal.crypto import Context, open_text
from portal.extensions import db
from portal.mail import OutboxMessage
from tests.support import people
from tests.support.outbox import outbox as rows_of
from tests.support.people import PASSWORD, csrf_from, unique_email  # noqa: F401 - re-exported

NEW_PASSWORD = "copper kettle under moonlight"


@dataclass
class Person:
    """A saved account and the secrets a test needs to act as it."""

    user: User
    id: uuid.UUID
    email: str
    name: str
    password: str | None
    seed: str | None = None


def make_user(role: str = "client", *, password: str | None = PASSWORD, mfa_on: bool | None = None,
              name: str | None = None, email: str | None = None, active: bool = True,
              mfa_prompt_dismissed: bool = True) -> Person:
    """Save an account (tests/support's make_user) and keep what acting as it takes."""
    name = name or {"client": "Robin Client", "therapist": "Terry Therapist",
                    "admin": "Ada Admin"}[role]
    user = people.make_user(role, name, email=email, password=password, mfa_on=mfa_on,
                            active=active, mfa_prompt_dismissed=mfa_prompt_dismissed)
    user_id = inspect(user).identity[0]  # not user.id: loading it would open a transaction
    return Person(user, user_id, user.email_address, name, password, user.seed)


def fresh(user: User) -> User:
    """Reload a user from the database (other requests changed it)."""
    db.session.expire_all()
    return db.session.get(User, user.id)


def post_form(client, url: str, data: dict | None = None, *, page: str | None = None, **kwargs):
    """GET `page` (default: `url`) for a CSRF token, then POST the form to `url`."""
    token = csrf_from(client.get(page or url, follow_redirects=True).get_data(as_text=True))
    kwargs.setdefault("buffered", True)  # close the response, as a server does once it is sent
    return client.post(url, data={**(data or {}), "csrf_token": token}, **kwargs)


def next_code(person: Person) -> str:
    """Return a TOTP code the server has not accepted yet (the replay guard refuses reuse)."""
    last = db.session.scalar(select(User.totp_last_step).where(User.id == person.id))
    db.session.commit()
    current = int(time.time() // mfa.STEP_SECONDS)
    for step in (current, current + 1):
        if last is None or step > last:
            return pyotp.TOTP(person.seed).at(step * mfa.STEP_SECONDS)
    raise AssertionError("no unused TOTP step left; travel in time between sign-ins")


def sign_in(client, person: Person, *, password: str | None = None, code: bool = True,
            next_url: str | None = None):
    """Sign in through the pages (password, then a TOTP code for accounts that have one)."""
    data = {"email": person.email, "password": password or person.password}
    if next_url:
        data["next"] = next_url
    response = post_form(client, "/sign-in", data)
    if code and response.status_code == 302 and response.location.endswith("/sign-in/verify"):
        response = post_form(client, "/sign-in/verify", {"code": next_code(person)})
    return response


def sign_out(client):
    """Sign out through the page's button."""
    return post_form(client, "/sign-out", page="/account")


def audit_actions(**filters) -> list[str]:
    """Return the audit trail's action names in order (optionally filtered by column)."""
    stmt = select(AuditEvent).order_by(AuditEvent.seq)
    for column, value in filters.items():
        stmt = stmt.where(getattr(AuditEvent, column) == value)
    actions = [event.action for event in db.session.scalars(stmt)]
    db.session.commit()
    return actions


def outbox(template: str | None = None, user: User | None = None) -> list[OutboxMessage]:
    """Return queued mail rows, oldest first."""
    where = () if user is None else (OutboxMessage.user_id == user.id,)
    rows = rows_of(template or None, *where)
    db.session.commit()
    return rows


def mail_text(row: OutboxMessage) -> str:
    """Open a queued mail's plain-text body."""
    return open_text(row.user_id, Context("mail_outbox", "body_text_sealed", row.id),
                     row.body_text_sealed)


LINK = re.compile(r"https?://\S+/(invitation|reset)/([A-Za-z0-9_-]+)")


def link_in(text: str) -> tuple[str, str]:
    """Return (path, token) of the invitation or reset link in a mail body."""
    found = LINK.search(text)
    assert found, "no link in the mail"
    return f"/{found.group(1)}/{found.group(2)}", found.group(2)


@pytest.fixture(autouse=True)
def guarded_requests(request, isolated_requests, no_server_errors) -> None:
    """Autouse wherever imported: isolated requests, a failure on any 5xx (tests/conftest.py)."""


@contextmanager
def extra_app(base: Flask, **overrides) -> Iterator[Flask]:
    """Build another app on the test database with config overrides (rate limits, sizes...)."""
    other = create_app({"ENV_NAME": "testing",
                        "SQLALCHEMY_DATABASE_URI": base.config["SQLALCHEMY_DATABASE_URI"],
                        "INSTANCE_PATH": base.instance_path, **overrides})
    try:
        yield other
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()
