"""Server-side sessions: revocable, rotated, idle and absolute timeouts, settings page."""

import hashlib
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from portal.accounts import passwords, sessions
from portal.accounts.models import SignInAttempt, User, UserSession
from portal.accounts.sessions import describe_device
from portal.db import utcnow
from portal.extensions import db

from .support import (
    NEW_PASSWORD,
    audit_actions,
    fresh,
    make_user,
    post_form,
    sign_in,
    sign_out,
)

COOKIE = "coeo_session"


def _sid(client) -> str | None:
    with client.session_transaction() as session:
        return session.get("sid")


def _sessions_of(person) -> list[UserSession]:
    rows = list(db.session.scalars(select(UserSession).where(UserSession.user_id == person.id)))
    db.session.commit()
    return rows


def _with_cookie(app, value: str):
    thief = app.test_client()
    thief.set_cookie(COOKIE, value)
    return thief


def test_sign_in_creates_a_server_session_keyed_by_the_tokens_hash(client):
    person = make_user()
    sign_in(client, person, )
    (row,) = _sessions_of(person)
    token = _sid(client)
    assert len(token) >= 43
    assert bytes(row.token_hash) == hashlib.sha256(token.encode()).digest()
    (shown,) = sessions.list_for(person.id)  # sealed at rest, opened for the Account page
    assert shown.id == row.id and shown.ip == "127.0.0.1"
    assert shown.user_agent.startswith("Werkzeug/")


def test_a_cookie_replayed_after_sign_out_is_refused(app, client):
    person = make_user()
    sign_in(client, person)
    copied = client.get_cookie(COOKIE).value
    assert _with_cookie(app, copied).get("/account").status_code == 200
    response = sign_out(client)
    assert response.status_code == 302 and response.location == "/signed-out"
    replay = _with_cookie(app, copied).get("/account")
    assert replay.status_code == 302
    assert replay.location.startswith("/sign-in")
    assert _sessions_of(person) == []
    assert "auth.signout" in audit_actions(target_id=str(person.id))


def test_sign_out_is_post_only(client):
    sign_in(client, make_user())
    response = client.get("/sign-out")
    assert response.status_code == 405
    assert "This page can\u2019t be used that way" in response.get_data(as_text=True)
    assert client.get("/account").status_code == 200  # still signed in


def test_sign_out_sends_clear_site_data(client):
    sign_in(client, make_user())
    response = sign_out(client)
    assert response.headers["Clear-Site-Data"] == '"cache", "cookies", "storage"'
    assert client.get("/account").status_code == 302


def test_sign_out_without_a_csrf_token_is_refused(client):
    sign_in(client, make_user())
    response = client.post("/sign-out")
    assert response.status_code == 400
    assert client.get("/account").status_code == 200


def test_new_session_id_at_sign_in_and_the_pre_sign_in_cookie_stays_anonymous(app, client):
    person = make_user()
    client.get("/sign-in")
    planted = client.get_cookie(COOKIE).value  # what a session-fixation attacker would hold
    sign_in(client, person)
    first = _sid(client)
    assert first and client.get_cookie(COOKIE).value != planted
    assert _with_cookie(app, planted).get("/account").status_code == 302
    sign_out(client)
    sign_in(client, person)
    assert _sid(client) != first


def test_signed_in_visitor_to_the_sign_in_page_goes_home(client):
    sign_in(client, make_user())
    assert client.get("/sign-in").location == "/"


def test_idle_timeout_of_15_minutes_is_enforced_on_the_server(app, client):
    person = make_user()
    sign_in(client, person)
    start = utcnow()
    with time_machine.travel(start + timedelta(minutes=14, seconds=50), tick=False):
        assert client.get("/account").status_code == 200  # activity moves the clock on
    with time_machine.travel(start + timedelta(minutes=29, seconds=40), tick=False):
        assert client.get("/account").status_code == 200
    with time_machine.travel(start + timedelta(minutes=44, seconds=50), tick=False):
        response = client.get("/account")
        assert response.status_code == 302
        assert response.location == "/sign-in?reason=idle"
        page = client.get(response.location).get_data(as_text=True)
        assert "You were signed out after a while without activity" in page
    assert _sessions_of(person) == []


def test_idle_timeout_follows_the_setting(app, client):
    app.config["SESSION_IDLE_MINUTES"] = 5
    sign_in(client, make_user())
    with time_machine.travel(utcnow() + timedelta(minutes=5, seconds=5), tick=False):
        assert client.get("/account").location == "/sign-in?reason=idle"


def test_fractional_idle_minutes_are_honoured(app, client):
    app.config["SESSION_IDLE_MINUTES"] = 0.5
    sign_in(client, make_user())
    html = client.get("/account").get_data(as_text=True)
    assert 'data-idle-seconds="30' in html
    with time_machine.travel(utcnow() + timedelta(seconds=20), tick=False):
        assert client.get("/account").status_code == 200
    with time_machine.travel(utcnow() + timedelta(seconds=45), tick=False):
        assert client.get("/account").status_code == 200  # touched at 20 s
    with time_machine.travel(utcnow() + timedelta(seconds=80), tick=False):
        assert client.get("/account").status_code == 302


def test_absolute_lifetime_of_12_hours_even_with_activity(client):
    person = make_user()
    sign_in(client, person)
    start = utcnow()
    minutes = 0
    while minutes < 12 * 60 - 10:
        minutes += 10
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            assert client.get("/account").status_code == 200, minutes
    with time_machine.travel(start + timedelta(hours=12, minutes=1), tick=False):
        assert client.get("/account").status_code == 302


def test_keepalive_extends_the_idle_timer(client):
    sign_in(client, make_user())
    start = utcnow()
    token = client.get("/account").get_data(as_text=True).split('name="csrf-token" content="')[1]
    token = token.split('"')[0]
    with time_machine.travel(start + timedelta(minutes=14), tick=False):
        response = client.post("/keepalive", headers={"X-CSRFToken": token})
        assert response.status_code == 204
    with time_machine.travel(start + timedelta(minutes=28), tick=False):
        assert client.get("/account").status_code == 200


def test_keepalive_for_an_expired_session_does_not_succeed(client):
    sign_in(client, make_user())
    token = client.get("/account").get_data(as_text=True).split('name="csrf-token" content="')[1]
    token = token.split('"')[0]
    with time_machine.travel(utcnow() + timedelta(minutes=16), tick=False):
        response = client.post("/keepalive", headers={"X-CSRFToken": token})
        assert response.status_code == 302


def test_static_files_do_not_reset_the_idle_timer(client):
    person = make_user()
    sign_in(client, person)
    start = utcnow()
    with time_machine.travel(start + timedelta(minutes=10), tick=False), \
            client.get("/static/css/portal.css") as response:
        assert response.status_code == 200
    with time_machine.travel(start + timedelta(minutes=16), tick=False):
        assert client.get("/account").status_code == 302


def test_sign_out_everywhere_ends_every_session(app):
    person = make_user()
    laptop, phone = app.test_client(), app.test_client()
    sign_in(laptop, person)
    sign_in(phone, person)
    old_alt_id = fresh(person.user).alt_id
    response = post_form(laptop, "/account/sessions/end-all", page="/account")
    assert response.status_code == 302
    assert response.location == "/signed-out?everywhere=1"
    assert response.headers["Clear-Site-Data"] == '"cache", "cookies", "storage"'
    assert laptop.get("/account").status_code == 302
    assert phone.get("/account").status_code == 302
    assert fresh(person.user).alt_id != old_alt_id
    assert _sessions_of(person) == []
    assert "auth.signout_everywhere" in audit_actions(target_id=str(person.id))


def test_password_change_ends_every_other_session(app):
    person = make_user()
    laptop, phone = app.test_client(), app.test_client()
    sign_in(laptop, person)
    sign_in(phone, person)
    response = post_form(laptop, "/account/password", {
        "current_password": person.password, "new_password": NEW_PASSWORD,
        "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    assert laptop.get("/account").status_code == 200
    assert phone.get("/account").status_code == 302
    assert "account.password.changed" in audit_actions(target_id=str(person.id))
    sign_out(laptop)
    person.password = NEW_PASSWORD
    assert sign_in(app.test_client(), person).status_code == 302


def test_password_change_asks_for_the_current_password(client):
    person = make_user()
    sign_in(client, person)
    response = post_form(client, "/account/password", {
        "current_password": "this is not my password", "new_password": NEW_PASSWORD,
        "confirm": NEW_PASSWORD})
    assert "That is not your current password." in response.get_data(as_text=True)
    assert 'id="current_password-error"' in response.get_data(as_text=True)
    assert passwords.verify_password(fresh(person.user).password_hash, person.password)


def test_settings_list_sessions_and_recent_sign_in_attempts(app):
    person = make_user()
    other = app.test_client()
    post_form(other, "/sign-in", {"email": person.email, "password": "wrong password here!"},
              headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0; rv:121.0) Firefox/121.0"})
    other.post("/sign-in")  # an empty, refused form: not an attempt on the account
    other = app.test_client()
    post_form(other, "/sign-in", {"email": person.email, "password": person.password},
              headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0; rv:121.0) Firefox/121.0"})
    client = app.test_client()
    sign_in(client, person)
    html = client.get("/account").get_data(as_text=True)
    assert "Where you are signed in" in html
    assert html.count("End session") == 1
    assert "This device" in html
    assert "Firefox on Windows" in html  # devices in words, not raw user agents
    assert "Mozilla/5.0" not in html
    assert "Recent sign-in attempts" in html
    assert "Wrong password" in html and "Signed in" in html
    assert db.session.scalar(select(func.count()).select_from(SignInAttempt)
                             .where(SignInAttempt.user_id == person.id)) == 3


def test_ending_another_session_from_settings(app):
    person = make_user()
    phone, laptop = app.test_client(), app.test_client()
    sign_in(phone, person)
    sign_in(laptop, person)
    phone_row = next(r for r in _sessions_of(person)
                     if bytes(r.token_hash) == hashlib.sha256(_sid(phone).encode()).digest())
    phone_row_id = phone_row.id
    response = post_form(laptop, f"/account/sessions/{phone_row_id}/end", page="/account")
    assert response.status_code == 302 and response.location == "/account"
    assert phone.get("/account").status_code == 302
    assert laptop.get("/account").status_code == 200
    assert "auth.session.ended" in audit_actions(target_id=str(phone_row_id))


def test_ending_this_devices_session_signs_out(client):
    person = make_user()
    sign_in(client, person)
    (row,) = _sessions_of(person)
    response = post_form(client, f"/account/sessions/{row.id}/end", page="/account")
    assert response.location == "/signed-out"
    assert client.get("/account").status_code == 302


def test_someone_elses_session_id_is_not_found(app):
    victim, attacker = make_user(), make_user()
    victim_client = app.test_client()
    sign_in(victim_client, victim)
    (row,) = _sessions_of(victim)
    attacker_client = app.test_client()
    sign_in(attacker_client, attacker)
    response = post_form(attacker_client, f"/account/sessions/{row.id}/end", page="/account")
    assert response.status_code == 404
    assert victim_client.get("/account").status_code == 200


def test_deactivated_user_is_signed_out_at_the_next_request(app, client):
    person = make_user()
    sign_in(client, person)
    db.session.execute(User.__table__.update().where(User.__table__.c.id == person.id)
                       .values(active=False))
    db.session.commit()
    assert client.get("/account").status_code == 302


def test_session_from_before_two_step_sign_in_was_turned_on_is_refused(app, client):
    person = make_user()
    sign_in(client, person)
    other = make_user("therapist")  # borrow a ready seed
    db.session.execute(User.__table__.update().where(User.__table__.c.id == person.id)
                       .values(totp_enabled_at=utcnow(),
                               totp_seed_sealed=fresh(other.user).totp_seed_sealed))
    db.session.commit()
    assert client.get("/account").status_code == 302


def test_pages_behind_sign_in_are_not_stored(client):
    sign_in(client, make_user())
    for path in ("/account", "/account/password"):
        assert client.get(path).headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("agent", "words"), [
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 "
     "Safari/537.36", "Chrome on Linux"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/17.0 Mobile/15E148 Safari/604.1", "Safari on iPhone"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36 Edg/120.0", "Edge on Windows"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0; rv:121.0) Gecko/20100101 Firefox/121.0",
     "Firefox on Mac"),
    ("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/120 Mobile Safari/537.36",
     "Chrome on Android"),
    ("curl/8.5.0", "Unknown device"),
    (None, "Unknown device"),
])
def test_devices_are_described_in_words(agent, words):
    assert describe_device(agent) == words


def test_wrong_current_passwords_count_towards_the_lockout(client):
    person = make_user()
    sign_in(client, person)
    data = {"current_password": "a wrong guess, again", "new_password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD}
    for _ in range(10):
        post_form(client, "/account/password", data)
    user = fresh(person.user)
    assert user.failed_signins == 10 and user.locked_until is not None
    response = post_form(client, "/account/password", {**data,
                                                        "current_password": person.password})
    assert "too many wrong passwords" in response.get_data(as_text=True)
    assert passwords.verify_password(fresh(person.user).password_hash, person.password)
