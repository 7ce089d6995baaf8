"""What browser journeys share: an account made ready to sign in, and signing in through the
real pages (the code step with a TOTP step not used before: the server refuses a replay)."""

import re
import time
import uuid

import pyotp

from portal.accounts import mfa, passwords
from portal.accounts.identity import set_identity
from portal.accounts.models import User
from portal.db import new_id, utcnow
from portal.extensions import db

USED_STEPS: set[int] = set()


def make_person(role: str, name: str, password: str, *, totp_key: str | None = None) -> str:
    """Create an account ready to sign in; return its email."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.org"
    user = User(id=new_id(), role=role, mfa_prompt_dismissed=True)
    set_identity(user, name=name, email=email)
    user.password_hash = passwords.hash_password(password)
    if totp_key:
        user.totp_seed_sealed = mfa.seal_seed(user, totp_key)
        user.totp_enabled_at = utcnow()
    db.session.add(user)
    db.session.commit()
    return email


def fresh_code(totp_key: str) -> str:
    """A code for a TOTP step not used yet in this run; waits for the next step when this
    one and the one after are both used."""
    while True:
        step = int(time.time() // 30)
        for candidate in (step, step + 1):
            if candidate not in USED_STEPS and (not USED_STEPS or candidate > max(USED_STEPS)):
                USED_STEPS.add(candidate)
                return pyotp.TOTP(totp_key).at(candidate * 30)
        time.sleep(1)


def sign_in(page, email: str, password: str, totp_key: str | None = None) -> None:
    """Sign in through the sign-in page (and the code page when two-step sign-in is on)."""
    page.goto("/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    if totp_key:
        page.get_by_label(re.compile("6-digit code")).fill(fresh_code(totp_key))
        page.get_by_role("button", name="Continue").click()


def sign_in_as(page, user) -> None:
    """Sign in a person made by `tests.support.people.make_user` (its email, password and
    TOTP ride on the returned user) and wait for the page they land on."""
    totp = getattr(user, "totp", None)
    sign_in(page, user.email_address, user.password, totp.secret if totp else None)
    page.wait_for_load_state()


def new_page(browser, live_server: str, width: int = 1200):
    """A fresh browser context (no cookies) at a width, with one page: (context, page)."""
    context = browser.new_context(base_url=live_server, viewport={"width": width, "height": 900})
    context.set_default_timeout(10_000)
    return context, context.new_page()


def accept_policies_if_asked(page) -> None:
    """Agree on the policies page when the sign-in gate shows it (and wait to leave it)."""
    if "/policies/accept" in page.url:
        page.locator("button[name=decision][value=accept]").click()
        page.wait_for_url(lambda url: "/policies/accept" not in url)
