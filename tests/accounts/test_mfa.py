"""Two-step sign-in: TOTP enrolment, recovery codes, replay, staff enforcement, resets."""

import re
import time
from datetime import timedelta

import pyotp
import pytest
import time_machine
from sqlalchemy import select

from portal.accounts import mfa
from portal.accounts.models import RecoveryCode, UserSession
from portal.db import utcnow
from portal.extensions import db

from .support import (
    PASSWORD,
    audit_actions,
    fresh,
    make_user,
    next_code,
    outbox,
    post_form,
    sign_in,
    sign_out,
)

KEY = re.compile(r'<code class="key" id="totp-key">(.*?)</code>')
CODES = re.compile(r'<li><code class="nowrap">((?:[0-9A-HJKMNP-TV-Z]{4}-){3}[0-9A-HJKMNP-TV-Z]{4})'
                   r'</code></li>')
SETUP = "/account/two-factor/setup"


def _shown_key(html: str) -> str:
    found = KEY.search(html)
    assert found, "the key is not shown as text"
    key = re.sub(r"<[^>]+>|\s", "", found.group(1))
    assert re.fullmatch(r"[A-Z2-7]{32}", key)
    return key


def _enrol(client) -> tuple[str, list[str]]:
    """Enrol through the page with a code computed from the key it shows."""
    key = _shown_key(client.get(SETUP).get_data(as_text=True))
    response = post_form(client, SETUP, {"current_password": PASSWORD,
                                         "code": pyotp.TOTP(key).now()})
    assert response.status_code == 200
    codes = CODES.findall(response.get_data(as_text=True))
    return key, codes


def _sid(client) -> str | None:
    with client.session_transaction() as session:
        return session.get("sid")


def test_enrolment_shows_an_inline_svg_qr_code_and_the_key_as_text(client):
    person = make_user(mfa_on=False)
    sign_in(client, person)
    html = client.get(SETUP).get_data(as_text=True)
    svg = re.search(r'<div class="qr">(<svg.*?</svg>)</div>', html, re.S).group(1)
    assert re.match(r'<svg viewBox="0 0 \d+ \d+"', svg)  # scales with the page, never cropped
    assert "<title>QR code for your authenticator app</title>" in svg
    key = _shown_key(html)
    assert len(key) == 32
    # The picture encodes the shown key: the same URI renders the same code.
    uri = mfa.provisioning_uri(key, f"coeo ({person.email})")
    assert f"secret={key}" in uri and "issuer=coeo%20portal" in uri
    assert mfa.qr_svg(uri) == svg
    # The same key survives a reload until it is confirmed.
    assert _shown_key(client.get(SETUP).get_data(as_text=True)) == key


def test_code_from_the_shown_key_turns_on_two_step_sign_in(client):
    person = make_user(mfa_on=False)
    sign_in(client, person)
    key, codes = _enrol(client)
    user = fresh(person.user)
    assert user.mfa_enabled
    assert mfa.open_seed(user) == key
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "auth.mfa.enrolled" in audit_actions(target_id=str(person.id))


def test_wrong_enrolment_code_is_refused_next_to_the_field(client):
    person = make_user(mfa_on=False)
    sign_in(client, person)
    key = _shown_key(client.get(SETUP).get_data(as_text=True))
    wrong = f"{(int(pyotp.TOTP(key).now()) + 1) % 1_000_000:06d}"
    response = post_form(client, SETUP, {"current_password": PASSWORD, "code": wrong})
    html = response.get_data(as_text=True)
    assert "That code did not match" in html and 'id="code-error"' in html
    assert _shown_key(html) == key
    assert not fresh(person.user).mfa_enabled


def test_seed_and_recovery_codes_are_not_stored_in_the_clear(app, client):
    person = make_user(mfa_on=False)
    sign_in(client, person)
    key, codes = _enrol(client)
    hashes = db.session.scalars(select(RecoveryCode.code_hash)
                                .where(RecoveryCode.user_id == person.id)).all()
    assert len(hashes) == 10 and all(len(h) == 32 for h in hashes)
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)):
            blob = " ".join(v.hex() if isinstance(v, bytes) else str(v) for v in row)
            raw = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
            for secret in [key, *codes]:
                assert secret not in blob and secret.encode() not in raw, table.name
    db.session.commit()


def test_recovery_codes_are_shown_once(client):
    person = make_user(mfa_on=False)
    sign_in(client, person)
    _, codes = _enrol(client)
    html = client.get("/account").get_data(as_text=True)
    assert "10 unused recovery codes" in html
    assert not any(code in html for code in codes)


def test_recovery_code_signs_in_once(app, client):
    person = make_user(mfa_on=False)
    sign_in(client, person)
    person.seed, codes = _enrol(client)
    sign_out(client)
    fresh_client = app.test_client()
    post_form(fresh_client, "/sign-in", {"email": person.email, "password": person.password})
    response = post_form(fresh_client, "/sign-in/verify", {"code": codes[0].lower()})
    assert response.status_code == 302
    assert fresh_client.get("/account").status_code == 200
    assert "auth.recovery_code.used" in audit_actions(target_id=str(person.id))
    again = app.test_client()
    post_form(again, "/sign-in", {"email": person.email, "password": person.password})
    refused = post_form(again, "/sign-in/verify", {"code": codes[0]})
    assert refused.status_code == 422
    assert "That code did not work" in refused.get_data(as_text=True)
    assert again.get("/account").status_code == 302


def test_a_totp_code_cannot_be_replayed(app):
    person = make_user("therapist")
    code = next_code(person)
    first = app.test_client()
    post_form(first, "/sign-in", {"email": person.email, "password": person.password})
    assert post_form(first, "/sign-in/verify", {"code": code}).status_code == 302
    second = app.test_client()
    post_form(second, "/sign-in", {"email": person.email, "password": person.password})
    replay = post_form(second, "/sign-in/verify", {"code": code})
    assert replay.status_code == 422
    assert "That code did not work" in replay.get_data(as_text=True)
    assert "auth.mfa.failure" in audit_actions(target_id=str(person.id))


def test_an_older_code_is_refused_after_a_newer_one_was_used(app):
    person = make_user("therapist")
    now = time.time()
    totp = pyotp.TOTP(person.seed)
    client = app.test_client()
    post_form(client, "/sign-in", {"email": person.email, "password": person.password})
    assert post_form(client, "/sign-in/verify", {"code": totp.at(now)}).status_code == 302
    other = app.test_client()
    post_form(other, "/sign-in", {"email": person.email, "password": person.password})
    assert post_form(other, "/sign-in/verify", {"code": totp.at(now - 30)}).status_code == 422


def test_the_enrolment_code_cannot_be_used_again_to_sign_in(app, client):
    person = make_user(mfa_on=False)
    sign_in(client, person)
    key = _shown_key(client.get(SETUP).get_data(as_text=True))
    code = pyotp.TOTP(key).now()
    post_form(client, SETUP, {"current_password": PASSWORD, "code": code})
    other = app.test_client()
    post_form(other, "/sign-in", {"email": person.email, "password": person.password})
    assert post_form(other, "/sign-in/verify", {"code": code}).status_code == 422


def test_code_with_spaces_is_accepted(app):
    person = make_user("therapist")
    code = next_code(person)
    client = app.test_client()
    post_form(client, "/sign-in", {"email": person.email, "password": person.password})
    response = post_form(client, "/sign-in/verify", {"code": f" {code[:3]} {code[3:]} "})
    assert response.status_code == 302


def test_wrong_codes_count_towards_the_lockout(app):
    person = make_user("therapist")
    client = app.test_client()
    post_form(client, "/sign-in", {"email": person.email, "password": person.password})
    for _ in range(10):
        post_form(client, "/sign-in/verify", {"code": "000000"})
    user = fresh(person.user)
    assert user.failed_signins == 10 and user.locked_until is not None
    response = post_form(client, "/sign-in/verify", {"code": next_code(person)})
    assert response.status_code == 422  # refused while paused
    assert len(outbox("lockout_notice", person.user)) == 1


def test_the_code_step_expires_after_five_minutes(app):
    person = make_user("therapist")
    client = app.test_client()
    post_form(client, "/sign-in", {"email": person.email, "password": person.password})
    with time_machine.travel(utcnow() + timedelta(minutes=5, seconds=5), tick=False):
        response = client.get("/sign-in/verify")
        assert response.status_code == 302 and response.location == "/sign-in"


def test_password_step_alone_does_not_sign_in(app):
    person = make_user("therapist")
    client = app.test_client()
    response = post_form(client, "/sign-in", {"email": person.email, "password": person.password})
    assert response.location == "/sign-in/verify"
    assert _sid(client) is None
    assert client.get("/account").status_code == 302


def test_new_session_id_after_the_second_factor(app):
    person = make_user("therapist")
    client = app.test_client()
    post_form(client, "/sign-in", {"email": person.email, "password": person.password})
    with client.session_transaction() as session:
        before = dict(session)
    post_form(client, "/sign-in/verify", {"code": next_code(person)})
    after_sid = _sid(client)
    assert "sid" not in before and "mfa_pending" in before
    assert after_sid and after_sid not in str(before)
    rows = db.session.scalars(select(UserSession).where(UserSession.user_id == person.id)).all()
    assert [row.mfa_verified for row in rows] == [True]


def test_enrolment_starts_a_new_session_and_the_old_cookie_stops_working(app, client):
    person = make_user(mfa_on=False)
    sign_in(client, person)
    old_cookie = client.get_cookie("coeo_session").value
    old_sid = _sid(client)
    _enrol(client)
    assert _sid(client) != old_sid
    thief = app.test_client()
    thief.set_cookie("coeo_session", old_cookie)
    assert thief.get("/account").status_code == 302


@pytest.mark.parametrize("role", ["therapist", "admin"])
def test_staff_without_two_step_sign_in_reach_only_the_enrolment_page(app, role):
    person = make_user(role, mfa_on=False)
    client = app.test_client()
    assert sign_in(client, person).location == SETUP
    for path in ("/", "/account", "/account/password", "/account/two-factor/recovery-codes",
                 "/clients", "/clients/invite", "/admin/users", "/admin/audit",
                 f"/admin/users/{person.id}", "/account/two-factor/offer"):
        response = client.get(path, follow_redirects=True)
        assert response.request.path == SETUP, path
        assert "Set up two-step sign-in" in response.get_data(as_text=True), path
    for path in ("/account/sessions/end-all", "/admin/users/invite"):
        response = post_form(client, path, page=SETUP)
        assert response.status_code == 302 and response.location == SETUP, path
    html = client.get(SETUP).get_data(as_text=True)
    assert "Practice staff need two-step sign-in" in html
    assert 'aria-label="Main"' not in html  # no navigation to places they cannot go
    assert sign_out(client).status_code == 302


def test_staff_can_use_the_portal_once_enrolled(app):
    person = make_user("therapist", mfa_on=False)
    client = app.test_client()
    sign_in(client, person)
    _enrol(client)
    assert client.get("/account").status_code == 200


def test_clients_are_offered_two_step_sign_in_and_can_say_not_now(app):
    person = make_user(mfa_prompt_dismissed=False)
    client = app.test_client()
    response = sign_in(client, person)
    assert response.location == "/account/two-factor/offer"
    html = client.get("/account/two-factor/offer").get_data(as_text=True)
    assert "Set up two-step sign-in" in html and "Not now" in html
    response = post_form(client, "/account/two-factor/offer")
    assert response.status_code == 302 and response.location == "/"
    assert fresh(person.user).mfa_prompt_dismissed
    sign_out(client)
    assert sign_in(app.test_client(), person).location == "/"


def test_clients_can_set_up_two_step_sign_in_from_the_offer(app):
    person = make_user(mfa_prompt_dismissed=False)
    client = app.test_client()
    sign_in(client, person)
    assert "/account/two-factor/setup" in client.get(
        "/account/two-factor/offer").get_data(as_text=True)
    _enrol(client)
    assert client.get("/account/two-factor/offer").location == "/"


def test_turning_off_asks_for_the_current_password(app):
    person = make_user(mfa_on=True)
    client = app.test_client()
    sign_in(client, person)
    other = app.test_client()
    sign_in(other, person)
    response = post_form(client, "/account/two-factor/disable",
                         {"current_password": "not my password at all"})
    assert "That is not your current password." in response.get_data(as_text=True)
    assert fresh(person.user).mfa_enabled
    response = post_form(client, "/account/two-factor/disable",
                         {"current_password": person.password})
    assert response.status_code == 302
    assert not fresh(person.user).mfa_enabled
    assert db.session.scalars(select(RecoveryCode).where(
        RecoveryCode.user_id == person.id)).all() == []
    assert "auth.mfa.disabled" in audit_actions(target_id=str(person.id))
    assert client.get("/account").status_code == 200
    assert other.get("/account").status_code == 302  # other sessions end


def test_staff_cannot_turn_off_two_step_sign_in(app):
    person = make_user("therapist")
    client = app.test_client()
    sign_in(client, person)
    assert client.get("/account/two-factor/disable").status_code == 404


def test_new_recovery_codes_ask_for_the_password_and_replace_the_old_ones(app, client):
    person = make_user(mfa_on=False)
    sign_in(client, person)
    person.seed, old_codes = _enrol(client)
    url = "/account/two-factor/recovery-codes"
    wrong = post_form(client, url, {"current_password": "definitely not it, sorry"})
    assert "That is not your current password." in wrong.get_data(as_text=True)
    response = post_form(client, url, {"current_password": person.password})
    new_codes = CODES.findall(response.get_data(as_text=True))
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    assert "auth.recovery_codes.regenerated" in audit_actions(target_id=str(person.id))
    other = app.test_client()
    post_form(other, "/sign-in", {"email": person.email, "password": person.password})
    assert post_form(other, "/sign-in/verify", {"code": old_codes[0]}).status_code == 422
    assert post_form(other, "/sign-in/verify", {"code": new_codes[0]}).status_code == 302


def test_admin_reset_of_two_step_sign_in_is_audited_and_ends_sessions(app):
    admin = make_user("admin")
    therapist = make_user("therapist")
    their_client = app.test_client()
    sign_in(their_client, therapist)
    assert their_client.get("/account").status_code == 200
    admin_client = app.test_client()
    sign_in(admin_client, admin)
    response = post_form(admin_client, f"/admin/users/{therapist.id}/reset-2fa",
                         page=f"/admin/users/{therapist.id}")
    assert response.status_code == 302
    assert not fresh(therapist.user).mfa_enabled
    assert their_client.get("/account").status_code == 302
    events = audit_actions(action="auth.mfa.reset")
    assert events == ["auth.mfa.reset"]
    assert len(outbox("mfa_reset", therapist.user)) == 1
    # They set it up again at their next sign-in.
    assert sign_in(app.test_client(), therapist).location == SETUP


def test_mfa_pages_are_not_found_when_two_step_sign_in_is_off(client):
    sign_in(client, make_user())
    assert client.get("/account/two-factor/disable").status_code == 404
    assert client.get("/account/two-factor/recovery-codes").status_code == 404


@pytest.mark.parametrize(("code", "message"), [
    ("", "Enter the 6-digit code your app shows."),
    ("1" * 17, "That code is too long."),
    ("abcdef", "That code did not match"),
])
def test_enrolment_form_rejects_bad_input(client, code, message):
    person = make_user(mfa_on=False)
    sign_in(client, person)
    response = post_form(client, SETUP, {"current_password": PASSWORD, "code": code})
    assert message in response.get_data(as_text=True)
    assert not fresh(person.user).mfa_enabled


def test_forms_on_the_recovery_codes_page_work(client):
    # The session is replaced while that page renders: its sign-out token must be the new one.
    person = make_user(mfa_on=False)
    sign_in(client, person)
    key = _shown_key(client.get(SETUP).get_data(as_text=True))
    page = post_form(client, SETUP, {"current_password": PASSWORD, "code": pyotp.TOTP(key).now()}
                     ).get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    response = client.post("/sign-out", data={"csrf_token": token})
    assert response.status_code == 302 and response.location == "/signed-out"


def test_a_right_password_does_not_reset_the_count_of_wrong_codes(app):
    person = make_user("therapist")
    for _ in range(9):
        client = app.test_client()
        post_form(client, "/sign-in", {"email": person.email, "password": person.password})
        post_form(client, "/sign-in/verify", {"code": "000000"})
    client = app.test_client()
    post_form(client, "/sign-in", {"email": person.email, "password": person.password})
    assert fresh(person.user).failed_signins == 9
    post_form(client, "/sign-in/verify", {"code": "000000"})
    user = fresh(person.user)
    assert user.failed_signins == 10 and user.locked_until is not None


def test_a_full_sign_in_resets_the_count(app):
    person = make_user("therapist")
    client = app.test_client()
    post_form(client, "/sign-in", {"email": person.email, "password": person.password})
    post_form(client, "/sign-in/verify", {"code": "000000"})
    post_form(client, "/sign-in/verify", {"code": next_code(person)})
    assert fresh(person.user).failed_signins == 0
