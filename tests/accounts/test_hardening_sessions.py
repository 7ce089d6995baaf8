"""Session tokens after sensitive changes, and reset links (issue 17).

Changing the password and turning on two-step sign-in give this browser a new session token
(a copy of the old cookie stops working; the browser stays signed in); turning on two-step
sign-in asks for the password; opening a reset link signs nobody out until the new password
is actually set.
"""

import re

import pyotp
from sqlalchemy import select

from portal.accounts.models import SignInAttempt

from .support import (
    NEW_PASSWORD,
    PASSWORD,
    fresh,
    link_in,
    mail_text,
    make_user,
    outbox,
    post_form,
    sign_in,
)

SESSION = "coeo_session"
SETUP = "/account/two-factor/setup"
KEY = re.compile(r'<code class="key" id="totp-key">(.*?)</code>')


def _copy_of(app, client):
    """Another browser holding a copy of this one's session cookie (as a thief would)."""
    thief = app.test_client()
    thief.set_cookie(SESSION, client.get_cookie(SESSION).value)
    assert thief.get("/account").status_code == 200  # the copy works before the change
    return thief


def _signed_in(client) -> bool:
    return client.get("/account").status_code == 200


def _key(client) -> str:
    html = client.get(SETUP).get_data(as_text=True)
    return re.sub(r"<[^>]+>|\s", "", KEY.search(html).group(1))


def test_a_password_change_renews_this_browsers_session_token(app):
    person = make_user()
    browser = app.test_client()
    sign_in(browser, person)
    before = browser.get_cookie(SESSION).value
    thief = _copy_of(app, browser)
    response = post_form(browser, "/account/password", {
        "current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302 and response.location == "/account"
    assert browser.get_cookie(SESSION).value != before
    assert _signed_in(browser)
    assert not _signed_in(thief)


def test_turning_on_two_step_sign_in_asks_for_the_password(app):
    person = make_user(mfa_on=False)
    browser = app.test_client()
    sign_in(browser, person)
    key = _key(browser)
    missing = post_form(browser, SETUP, {"code": pyotp.TOTP(key).now()})
    assert missing.status_code == 422 and "Enter your password." in missing.get_data(
        as_text=True)
    wrong = post_form(browser, SETUP, {"current_password": "not it at all, sorry",
                                       "code": pyotp.TOTP(key).now()})
    assert wrong.status_code == 422
    html = wrong.get_data(as_text=True)
    assert "That is not your current password." in html
    assert re.search(r'id="current_password"[^>]*aria-invalid="true"|'
                     r'aria-invalid="true"[^>]*id="current_password"', html), \
        "the error is not on the password field"
    user = fresh(person.user)
    assert not user.mfa_enabled
    assert user.failed_signins == 1  # counts like any other password re-check
    assert db_attempts(person) == ["failure"]


def db_attempts(person) -> list[str]:
    from portal.extensions import db
    return list(db.session.scalars(select(SignInAttempt.outcome).where(
        SignInAttempt.user_id == person.id, SignInAttempt.outcome != "success")))


def test_turning_on_two_step_sign_in_renews_the_session_token(app):
    person = make_user(mfa_on=False)
    browser = app.test_client()
    sign_in(browser, person)
    before = browser.get_cookie(SESSION).value
    thief = _copy_of(app, browser)
    response = post_form(browser, SETUP, {"current_password": PASSWORD,
                                          "code": pyotp.TOTP(_key(browser)).now()})
    assert response.status_code == 200 and "recovery codes" in response.get_data(
        as_text=True).lower()
    assert fresh(person.user).mfa_enabled
    assert browser.get_cookie(SESSION).value != before
    assert _signed_in(browser)
    assert not _signed_in(thief)


def test_opening_a_reset_link_signs_nobody_out_until_the_password_is_set(app):
    person = make_user()
    browser, elsewhere = app.test_client(), app.test_client()
    sign_in(browser, person)
    sign_in(elsewhere, person)
    post_form(app.test_client(), "/forgot-password", {"email": person.email})
    path, _ = link_in(mail_text(outbox("password_reset", person.user)[-1]))
    opened = browser.get(path)
    assert opened.status_code == 302 and opened.location == "/reset"
    assert browser.get("/reset").status_code == 200
    # Someone who opened the link (or a mail scanner) has signed no session out.
    assert _signed_in(browser) and _signed_in(elsewhere)
    done = post_form(browser, "/reset", {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 302 and done.location == "/sign-in"
    assert not _signed_in(browser) and not _signed_in(elsewhere)
