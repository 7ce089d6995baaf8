"""Sign-in is not an oracle: same answer, similar time; lockout, ceiling, rate limits."""

import re
import statistics
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from argon2 import PasswordHasher
from sqlalchemy import select, update

from portal.accounts import service
from portal.accounts.models import SignInAttempt, User
from portal.accounts.views import SIGNIN_FAILED
from portal.db import utcnow
from portal.extensions import db

from .support import (
    PASSWORD,
    audit_actions,
    csrf_from,
    extra_app,
    fresh,
    make_user,
    outbox,
    post_form,
    sign_in,
    unique_email,
)

WRONG = "not the right password at all"


def _attempt(client, email: str, password: str):
    return post_form(client, "/sign-in", {"email": email, "password": password})


def _normalized(response, email: str) -> str:
    html = response.get_data(as_text=True)
    html = html.replace(csrf_from(html), "TOKEN").replace(email, "EMAIL")
    return re.sub(r'value="[^"]*" name="csrf-token"', "", html)


def _lock(person, failures: int = 10, ip: str = "203.0.113.9") -> None:
    for _ in range(failures):
        with _request(ip):
            service.authenticate(person.email, WRONG)


def _request(ip: str = "203.0.113.9"):
    from flask import current_app
    return current_app.test_request_context("/sign-in", method="POST",
                                            environ_base={"REMOTE_ADDR": ip})


def _refusals(app):
    """Build one of each account that must be refused, with the email and password to try."""
    locked = make_user()
    _lock(locked)
    disabled = make_user()
    db.session.execute(update(User).where(User.id == disabled.id).values(password_disabled=True))
    deactivated = make_user(active=False)
    invited = make_user(password=None)
    db.session.commit()
    return {
        "unknown email": (unique_email("nobody"), PASSWORD),
        "wrong password": (make_user().email, WRONG),
        "locked, right password": (locked.email, PASSWORD),
        "password disabled, right password": (disabled.email, PASSWORD),
        "deactivated, wrong password": (deactivated.email, WRONG),
        "invited, no password yet": (invited.email, PASSWORD),
    }


def test_every_refusal_looks_exactly_the_same(app):
    cases = _refusals(app)
    bodies = {}
    for label, (email, password) in cases.items():
        client = app.test_client()
        response = _attempt(client, email, password)
        assert response.status_code == 422, label
        assert SIGNIN_FAILED in response.get_data(as_text=True), label
        assert client.get("/account").status_code == 302, label  # not signed in
        bodies[label] = _normalized(response, email)
    reference = bodies["unknown email"]
    for label, body in bodies.items():
        assert body == reference, f"{label} answers differently from an unknown email"


def test_deactivated_account_with_its_right_password_is_told_access_is_paused(app):
    """Only someone who knows the password learns the account exists and is paused."""
    deactivated = make_user(active=False)
    db.session.commit()
    client = app.test_client()
    response = _attempt(client, deactivated.email, PASSWORD)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "your portal access is paused" in html
    assert app.config["PRACTICE"]["phone"] in html
    assert SIGNIN_FAILED not in html and "reset your password" not in html
    assert client.get("/account").status_code == 302  # still not signed in
    wrong = _attempt(app.test_client(), deactivated.email, WRONG).get_data(as_text=True)
    assert SIGNIN_FAILED in wrong and "paused" not in wrong


@pytest.mark.parametrize("kind", ["locked", "password disabled"])
def test_a_deactivated_account_under_a_lock_does_not_confirm_its_password(app, kind):
    """A lock or a disabled password keeps the generic refusal: a guess is never confirmed."""
    person = make_user()
    if kind == "locked":
        _lock(person)
    else:
        db.session.execute(update(User).where(User.id == person.id)
                           .values(password_disabled=True))
    db.session.execute(update(User).where(User.id == person.id).values(active=False))
    db.session.commit()
    html = _attempt(app.test_client(), person.email, PASSWORD).get_data(as_text=True)
    assert SIGNIN_FAILED in html and "paused" not in html


def test_refused_sign_in_keeps_the_email_and_clears_the_password(client):
    person = make_user()
    html = _attempt(client, person.email, WRONG).get_data(as_text=True)
    assert f'value="{person.email}"' in html
    assert WRONG not in html
    assert 'id="password-error"' in html


def test_unknown_email_verifies_a_real_decoy_hash(app, client, monkeypatch):
    calls: list[str] = []
    real_verify = PasswordHasher.verify

    def spy(self, stored, password):
        calls.append(stored)
        return real_verify(self, stored, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    _attempt(client, unique_email("nobody"), PASSWORD)
    assert len(calls) == 1
    assert calls[0].startswith("$argon2id$")
    assert PasswordHasher().check_needs_rehash(calls[0]) is not None  # a well-formed hash


@pytest.mark.slow
def test_unknown_email_takes_about_as_long_as_a_wrong_password(app):
    # Realistic cost, so the hash dominates the request and a missing decoy would show.
    app.config.update(ARGON2_TIME_COST=2, ARGON2_MEMORY_COST=32 * 1024)
    person = make_user()
    client = app.test_client()
    unknown = unique_email("nobody")
    _attempt(client, unknown, WRONG)  # warm up (the decoy is made once)
    timings: dict[str, list[float]] = {"unknown": [], "wrong": []}
    for _ in range(5):  # 5 wrong passwords: below the lockout threshold
        for label, email in (("unknown", unknown), ("wrong", person.email)):
            token = csrf_from(client.get("/sign-in").get_data(as_text=True))
            start = time.perf_counter()
            client.post("/sign-in", data={"email": email, "password": WRONG,
                                          "csrf_token": token})
            timings[label].append(time.perf_counter() - start)
    ratio = statistics.median(timings["unknown"]) / statistics.median(timings["wrong"])
    assert 0.5 < ratio < 2, timings


def test_ten_failures_pause_the_account_for_15_minutes(app, client):
    person = make_user()
    for _ in range(9):
        _attempt(client, person.email, WRONG)
    assert fresh(person.user).locked_until is None
    _attempt(client, person.email, WRONG)
    user = fresh(person.user)
    assert user.failed_signins == 10
    assert timedelta(minutes=14) < user.locked_until - utcnow() <= timedelta(minutes=15)
    assert "auth.lockout" in audit_actions(target_id=str(person.id))
    (notice,) = outbox("lockout_notice", person.user)
    assert notice.subject == "Sign-in to your coeo portal is paused"
    # The right password is refused during the pause, with the usual message.
    response = _attempt(client, person.email, PASSWORD)
    assert SIGNIN_FAILED in response.get_data(as_text=True)
    with time_machine.travel(utcnow() + timedelta(minutes=14, seconds=50), tick=False):
        assert _attempt(app.test_client(), person.email, PASSWORD).status_code == 422
    with time_machine.travel(utcnow() + timedelta(minutes=15, seconds=1), tick=False):
        response = _attempt(app.test_client(), person.email, PASSWORD)
        assert response.status_code == 302
        assert fresh(person.user).failed_signins == 0


def test_attempts_during_a_pause_do_not_count(client):
    person = make_user()
    _lock(person)
    for _ in range(5):
        _attempt(client, person.email, WRONG)
    assert fresh(person.user).failed_signins == 10
    attempts = db.session.scalars(select(SignInAttempt.outcome)
                                  .where(SignInAttempt.user_id == person.id)).all()
    assert attempts.count("locked") == 5


def test_every_tenth_failure_pauses_again_and_emails_each_time(app):
    person = make_user()
    _lock(person)
    with time_machine.travel(utcnow() + timedelta(minutes=16), tick=False):
        _lock(person)
        assert fresh(person.user).failed_signins == 20
        assert fresh(person.user).locked_until > utcnow()
    assert len(outbox("lockout_notice", person.user)) == 2
    assert audit_actions(action="auth.lockout") == ["auth.lockout"] * 2


def test_success_resets_the_consecutive_failure_count(client):
    person = make_user()
    for _ in range(9):
        _attempt(client, person.email, WRONG)
    assert sign_in(client, person).status_code == 302
    assert fresh(person.user).failed_signins == 0
    assert fresh(person.user).total_failed_signins == 9


def test_the_hundredth_failure_disables_the_password_until_a_reset(app):
    """From more than one source (one alone cannot: tests/accounts/test_hardening_lockout.py)."""
    person = make_user()
    start = utcnow()
    for round_ in range(10):
        with time_machine.travel(start + timedelta(minutes=16 * round_), tick=False):
            _lock(person, ip="203.0.113.9" if round_ < 9 else "192.0.2.44")
    user = fresh(person.user)
    assert user.failed_signins == 100 and user.password_disabled
    assert len(outbox("lockout_notice", person.user)) == 9
    (mail,) = outbox("password_disabled", person.user)
    assert mail.subject == "Please reset your coeo portal password"
    assert "auth.password_disabled" in audit_actions(target_id=str(person.id))
    with time_machine.travel(start + timedelta(days=2), tick=False):
        response = _attempt(app.test_client(), person.email, PASSWORD)
        assert SIGNIN_FAILED in response.get_data(as_text=True)


def test_failure_counter_is_atomic_across_connections(app):
    """A worker holding a stale copy of the account still counts on top of another's failure."""
    person = make_user()
    with app.app_context():  # worker A reads the account, then waits
        stale = db.session.get(User, person.id)
        db.session.expunge(stale)
        db.session.commit()
    assert stale.failed_signins == 0
    with app.app_context(), _request():  # worker B, on its own connection, fails once
        service.authenticate(person.email, WRONG)
        db.session.remove()
    with app.app_context(), _request():  # worker A counts its failure with the stale copy
        service._register_failure(stale)
        db.session.commit()
        db.session.remove()
    assert fresh(person.user).failed_signins == 2


def test_concurrent_failures_from_many_workers_all_count_and_lock_once(app):
    person = make_user()
    errors: list[BaseException] = []

    def worker():
        try:
            with app.app_context(), app.test_request_context("/sign-in", method="POST"):
                service.authenticate(person.email, WRONG)
                db.session.remove()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    user = fresh(person.user)
    assert user.failed_signins == 10
    assert user.locked_until is not None
    assert audit_actions(action="auth.lockout") == ["auth.lockout"]
    assert len(outbox("lockout_notice", person.user)) == 1


def test_failed_and_successful_attempts_are_audited_without_the_email(client):
    person = make_user()
    _attempt(client, person.email, WRONG)
    _attempt(client, unique_email("nobody"), WRONG)
    sign_in(client, person)
    assert audit_actions(action="auth.signin.failure") == ["auth.signin.failure"] * 2
    assert audit_actions(action="auth.signin.success", target_id=str(person.id))


@pytest.mark.parametrize(("email", "password", "field", "message"), [
    ("", PASSWORD, "email", "Enter your email address."),
    ("someone@example.org", "", "password", "Enter your password."),
    ("x" * 255 + "@example.org", PASSWORD, "email", "too long"),
    ("someone@example.org", "x" * 1025, "password", ""),
])
def test_sign_in_form_rejects_empty_and_oversized_input_next_to_the_field(client, email,
                                                                         password, field,
                                                                         message):
    response = _attempt(client, email, password)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f'id="{field}-error"' in html and message in html


# --- Flask-Limiter -----------------------------------------------------------------------

@pytest.fixture
def limited_app(app):
    """An app with rate limits on (the test config turns them off)."""
    with extra_app(app, RATELIMIT_ENABLED=True, SIGNIN_RATE_PER_IP="4 per minute",
                   SIGNIN_RATE_PER_ACCOUNT="2 per minute") as limited:
        yield limited


def _post_sign_in(client, email: str, ip: str):
    token = csrf_from(client.get("/sign-in", environ_base={"REMOTE_ADDR": ip})
                      .get_data(as_text=True))
    return client.post("/sign-in", data={"email": email, "password": WRONG, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": ip})


def test_per_account_limit_answers_with_the_friendly_429_page(limited_app):
    person_email = unique_email()
    client = limited_app.test_client()
    statuses = [_post_sign_in(client, person_email, f"198.51.100.{i}").status_code
                for i in range(3)]
    assert statuses == [422, 422, 429]
    response = _post_sign_in(client, person_email.upper(), "198.51.100.50")
    html = response.get_data(as_text=True)
    assert response.status_code == 429
    assert "Please wait 1 minute" in html and "a few minutes" not in html
    assert "Traceback" not in html
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_per_ip_limit_answers_with_the_friendly_429_page(limited_app):
    client = limited_app.test_client()
    statuses = [_post_sign_in(client, unique_email(), "198.51.100.7").status_code
                for _ in range(5)]
    assert statuses == [422, 422, 422, 422, 429]
    assert _post_sign_in(client, unique_email(), "198.51.100.8").status_code == 422


def test_rate_limits_count_only_posts(limited_app):
    client = limited_app.test_client()
    for _ in range(10):
        assert client.get("/sign-in").status_code == 200


def test_reset_requests_are_limited_per_account_too(limited_app):
    client = limited_app.test_client()
    email = unique_email()
    statuses = []
    for i in range(3):
        token = csrf_from(client.get("/forgot-password").get_data(as_text=True))
        statuses.append(client.post("/forgot-password", data={"email": email,
                                                              "csrf_token": token},
                                    environ_base={"REMOTE_ADDR": f"198.51.100.{i}"},
                                    buffered=True).status_code)
    assert statuses == [302, 302, 429]


def test_the_429_page_names_the_real_wait_from_config(app):
    with extra_app(app, RATELIMIT_ENABLED=True, SIGNIN_RATE_PER_IP="30 per 5 minutes",
                   SIGNIN_RATE_PER_ACCOUNT="1 per 5 minutes") as limited:
        client = limited.test_client()
        email = unique_email()
        _post_sign_in(client, email, "198.51.100.60")
        response = _post_sign_in(client, email, "198.51.100.61")
        html = response.get_data(as_text=True)
        assert response.status_code == 429
        assert "Please wait 5 minutes" in html and "a few minutes" not in html
        assert limited.config["PRACTICE"]["phone"] in html
