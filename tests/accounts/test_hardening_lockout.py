"""A stranger who knows an email cannot keep its owner out (issue 17).

Ten wrong guesses still pause the account for unknown browsers, but a browser that has
signed in before (its signed device cookie) is still let in with the right password; and
the 100-failure ceiling is counted per source as well as per account, so one source alone
cannot switch someone's password off.
"""

from datetime import timedelta

import time_machine
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from portal.accounts import service, sessions
from portal.accounts.models import SignInAttempt
from portal.accounts.views import SIGNIN_FAILED
from portal.db import utcnow
from portal.extensions import db

from .support import PASSWORD, fresh, make_user, outbox, post_form

WRONG = "not the right password at all"
STRANGER = "203.0.113.9"
OWNER = "198.51.100.20"
DEVICE = "coeo_device"
SESSION = "coeo_session"


def _client(app, ip: str = OWNER):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def _try(client, email: str, password: str):
    return post_form(client, "/sign-in", {"email": email, "password": password})


def _guesses(app, person, count: int, ip: str = STRANGER) -> None:
    """`count` wrong passwords from one source, straight through the service."""
    for _ in range(count):
        with app.test_request_context("/sign-in", method="POST",
                                      environ_base={"REMOTE_ADDR": ip}):
            service.authenticate(person.email, WRONG)


def _remembered_browser(app, person):
    """A browser that signed in once and whose session has since ended (idle, closed)."""
    client = _client(app)
    assert _try(client, person.email, PASSWORD).status_code == 302
    assert client.get_cookie(DEVICE) is not None
    client.delete_cookie(SESSION)
    assert client.get("/account").status_code == 302  # signed out now
    return client


def _signed_in(client) -> bool:
    return client.get("/account").status_code == 200


def test_the_device_cookie_is_signed_http_only_lax_long_lived_and_says_no_more(app):
    person = make_user()
    client = _client(app)
    response = _try(client, person.email, PASSWORD)
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(DEVICE))
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
    assert "Max-Age=31536000" in header
    assert "Secure" not in header  # development and tests: plain http
    value = URLSafeTimedSerializer(app.secret_key, salt=sessions.DEVICE_SALT).loads(
        client.get_cookie(DEVICE).value)
    assert set(value) == {"u", "d"} and value["u"] == str(person.id) and len(value["d"]) >= 20
    assert person.email not in client.get_cookie(DEVICE).value


def test_in_production_the_device_cookie_is_secure_and_host_only(app):
    app.config["SESSION_COOKIE_SECURE"] = True
    person = make_user()
    response = _try(_client(app), person.email, PASSWORD)
    header = next(h for h in response.headers.getlist("Set-Cookie")
                  if h.startswith("__Host-coeo_device="))
    assert "Secure" in header and "Domain" not in header


def test_a_remembered_browser_signs_in_during_a_pause_and_its_wrong_passwords_count(app):
    person = make_user()
    browser = _remembered_browser(app, person)
    _guesses(app, person, 10)
    assert fresh(person.user).locked_until > utcnow()
    # Its wrong password still counts (it is not a way around the lockout for guessing).
    refused = _try(browser, person.email, WRONG)
    assert refused.status_code == 422 and SIGNIN_FAILED in refused.get_data(as_text=True)
    assert fresh(person.user).failed_signins == 11
    response = _try(browser, person.email, PASSWORD)
    assert response.status_code == 302 and _signed_in(browser)
    user = fresh(person.user)
    assert user.failed_signins == 0
    assert user.locked_until > utcnow()  # the pause still holds back every other browser
    stranger = _try(_client(app, STRANGER), person.email, PASSWORD)
    assert stranger.status_code == 422


def test_an_unknown_browser_is_refused_during_the_pause_even_with_the_right_password(app):
    person = make_user()
    _remembered_browser(app, person)
    _guesses(app, person, 10)
    other = _client(app)  # the owner's address, but a browser that never signed in
    response = _try(other, person.email, PASSWORD)
    assert response.status_code == 422 and SIGNIN_FAILED in response.get_data(as_text=True)
    assert not _signed_in(other)
    assert fresh(person.user).failed_signins == 10  # a refused try in a pause is no guess
    with time_machine.travel(utcnow() + timedelta(minutes=16), tick=False):
        assert _try(other, person.email, PASSWORD).status_code == 302


def test_a_tampered_or_another_accounts_device_cookie_gives_nothing(app):
    person, other_person = make_user(), make_user()
    theirs = _remembered_browser(app, other_person)  # a valid cookie, for another account
    mine = _remembered_browser(app, person)
    _guesses(app, person, 10)
    assert _try(theirs, person.email, PASSWORD).status_code == 422
    assert not _signed_in(theirs)
    value = mine.get_cookie(DEVICE).value
    forged = URLSafeTimedSerializer("another secret key of the right length 0123",
                                    salt=sessions.DEVICE_SALT).dumps({"u": str(person.id),
                                                                      "d": "x" * 22})
    for bad in (value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"), forged,
                "not-a-cookie"):
        mine.set_cookie(DEVICE, bad)
        assert _try(mine, person.email, PASSWORD).status_code == 422, bad
        assert not _signed_in(mine)
    mine.set_cookie(DEVICE, value)
    assert _try(mine, person.email, PASSWORD).status_code == 302


def test_a_remembered_browser_passes_the_pause_at_the_code_step_too(app):
    from .support import next_code
    person = make_user(mfa_on=True)
    browser = _client(app)
    assert _try(browser, person.email, PASSWORD).location.endswith("/sign-in/verify")
    assert post_form(browser, "/sign-in/verify", {"code": next_code(person)}).status_code == 302
    browser.delete_cookie(SESSION)
    _guesses(app, person, 10)
    assert _try(browser, person.email, PASSWORD).location.endswith("/sign-in/verify")
    response = post_form(browser, "/sign-in/verify", {"code": next_code(person)})
    assert response.status_code == 302 and _signed_in(browser)


def _paced(app, person, count: int, ip: str, start=None) -> None:
    """`count` wrong passwords from one source, waiting out each pause."""
    start = start or utcnow()
    for round_ in range(count // 10):
        with time_machine.travel(start + timedelta(minutes=16 * (round_ + 1)), tick=False):
            _guesses(app, person, 10, ip)


def test_one_source_alone_cannot_switch_the_password_off(app):
    person = make_user()
    _paced(app, person, 100, STRANGER)
    user = fresh(person.user)
    assert user.failed_signins == 100 and not user.password_disabled
    assert outbox("password_disabled", person.user) == []
    later = utcnow() + timedelta(days=1)
    with time_machine.travel(later, tick=False):
        # That source has used up its guesses on this account: even the right password
        # from it is refused (and not counted), so it has no 101st guess.
        assert _try(_client(app, STRANGER), person.email, PASSWORD).status_code == 422
        assert fresh(person.user).failed_signins == 100
        outcomes = db.session.scalars(select(SignInAttempt.outcome).where(
            SignInAttempt.user_id == person.id).order_by(SignInAttempt.at.desc())).all()
        assert outcomes[0] == "refused"
        # The owner, from anywhere else, still signs in with the password.
        assert _try(_client(app, OWNER), person.email, PASSWORD).status_code == 302
    # A success starts the count again, for that source too.
    with time_machine.travel(later + timedelta(minutes=1), tick=False):
        _guesses(app, person, 1, STRANGER)
        assert fresh(person.user).failed_signins == 1


def test_failures_from_several_sources_still_reach_the_ceiling(app):
    person = make_user()
    start = utcnow()
    _paced(app, person, 90, STRANGER, start)
    with time_machine.travel(start + timedelta(minutes=16 * 10), tick=False):
        _guesses(app, person, 9, STRANGER)
        _guesses(app, person, 1, "192.0.2.77")  # the 100th, from a second source
    user = fresh(person.user)
    assert user.failed_signins == 100 and user.password_disabled
    assert len(outbox("password_disabled", person.user)) == 1


def test_wrong_passwords_on_a_re_check_count_for_their_source(app):
    """A stolen session guessing on "type your password again" pages meets the same ceiling."""
    person = make_user()
    client = _client(app, STRANGER)
    assert _try(client, person.email, PASSWORD).status_code == 302
    data = {"current_password": WRONG, "new_password": "a brand new passphrase here",
            "confirm": "a brand new passphrase here"}
    assert post_form(client, "/account/password", data).status_code == 422
    rows = db.session.scalars(select(SignInAttempt.source_digest).where(
        SignInAttempt.user_id == person.id, SignInAttempt.outcome == "failure")).all()
    assert rows == [service.source_digest(person.id, STRANGER)]
    assert [a.ip for a in service.recent_attempts(person.user) if a.outcome == "failure"] == [
        STRANGER]
    assert fresh(person.user).failed_signins == 1


def test_a_stranger_using_up_the_per_account_rate_limit_does_not_hold_back_the_owner(app):
    from .support import extra_app
    person, other_person = make_user(), make_user()
    with extra_app(app, RATELIMIT_ENABLED=True, SIGNIN_RATE_PER_IP="30 per minute",
                   SIGNIN_RATE_PER_ACCOUNT="2 per minute") as limited:
        owner = _client(limited)
        assert _try(owner, person.email, PASSWORD).status_code == 302
        owner.delete_cookie(SESSION)
        stranger = _client(limited, STRANGER)
        statuses = [_try(stranger, person.email, WRONG).status_code for _ in range(3)]
        assert statuses == [422, 429, 429]  # the owner's first sign-in used one of the two
        assert _try(_client(limited, "192.0.2.5"), person.email, PASSWORD).status_code == 429
        # The browser that signed in to this account before is not counted by that limit...
        assert _try(owner, person.email, PASSWORD).status_code == 302
        owner.delete_cookie(SESSION)
        # ...but only for its own account.
        for _ in range(2):
            _try(stranger, other_person.email, WRONG)
        assert _try(owner, other_person.email, PASSWORD).status_code == 429
