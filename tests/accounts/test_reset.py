"""Password reset: same answer for any email, 30-minute single-use link hashed at rest."""

import hashlib
import time
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select, update

from portal.accounts import passwords
from portal.accounts.models import OneTimeToken, User
from portal.audit import AuditEvent
from portal.db import utcnow
from portal.extensions import db
from portal.mail.service import wait_for_background

from .support import (
    NEW_PASSWORD,
    audit_actions,
    csrf_from,
    fresh,
    link_in,
    mail_text,
    make_user,
    outbox,
    post_form,
    sign_in,
    unique_email,
)

FORGOT = "/forgot-password"


def _request_reset(client, email: str):
    return post_form(client, FORGOT, {"email": email})


def _reset_link(person) -> tuple[str, str]:
    return link_in(mail_text(outbox("password_reset", person.user)[-1]))


def _choose(client, path: str, password: str = NEW_PASSWORD):
    opened = client.get(path)
    assert opened.status_code == 302 and opened.location == "/reset"
    return post_form(client, "/reset", {"password": password, "confirm": password})


def _body(response) -> str:
    return response.get_data(as_text=True)


def test_same_answer_whether_or_not_the_email_has_an_account(app):
    person = make_user()
    answers = []
    for email in (person.email, unique_email("nobody")):
        client = app.test_client()
        response = _request_reset(client, email)
        page = client.get(response.location)
        answers.append((response.status_code, response.location, _body(response),
                        page.status_code, _body(page)))
    assert answers[0] == answers[1]
    assert answers[0][:2] == (302, "/forgot-password?sent=1")
    assert "If that address belongs to a portal account" in answers[0][4]
    assert len(outbox("password_reset")) == 1


def test_the_answer_goes_out_before_any_work_that_depends_on_the_account(app, smtp_server):
    """Known addresses get a mail over SMTP; doing that before answering would time-leak."""
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    person = make_user()
    client = app.test_client()
    token = csrf_from(client.get(FORGOT).get_data(as_text=True))
    response = client.post(FORGOT, data={"email": person.email, "csrf_token": token})
    assert response.status_code == 302
    assert outbox("password_reset") == [] and smtp_server.envelopes == []
    response.close()  # the server has sent the answer
    assert wait_for_background()  # the mail goes from the mail layer's own thread
    (row,) = outbox("password_reset", person.user)
    assert row.sent_at is not None and len(smtp_server.envelopes) == 1
    audit = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "account.password.reset_requested")).all()
    # An event with no actor keeps no origin (audit.service.origin_of seals it under the actor).
    assert [e.target_id for e in audit] == [str(person.id)]


@pytest.mark.parametrize("kind", ["deactivated", "invited, no password yet"])
def test_accounts_that_cannot_reset_get_no_mail_and_the_same_answer(app, kind):
    person = make_user(active=False) if kind == "deactivated" else make_user(password=None)
    response = _request_reset(app.test_client(), person.email)
    assert response.location == "/forgot-password?sent=1"
    assert outbox("password_reset") == []


def test_reset_link_is_emailed_and_stored_only_as_a_hash(client):
    person = make_user()
    _request_reset(client, person.email)
    (row,) = outbox("password_reset", person.user)
    assert row.subject == "Reset your coeo portal password"
    path, token = _reset_link(person)
    assert path == f"/reset/{token}"
    stored = db.session.scalars(select(OneTimeToken.token_hash)
                                .where(OneTimeToken.purpose == "reset")).all()
    assert [bytes(h) for h in stored] == [hashlib.sha256(token.encode()).digest()]
    for table in db.metadata.sorted_tables:
        for values in db.session.execute(select(table)):
            for value in values:
                raw = value if isinstance(value, bytes) else str(value).encode()
                assert token.encode() not in raw, table.name
    db.session.commit()


def test_reset_mail_reaches_a_real_smtp_server(app, client, smtp_server):
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    person = make_user()
    _request_reset(client, person.email)
    assert wait_for_background()
    (received,) = smtp_server.envelopes
    _, token = _reset_link(person)
    assert f"/reset/{token}".encode() in received.content.replace(b"=\r\n", b"")


def test_link_is_swapped_for_a_token_free_url_and_resets_the_password(app, client):
    person = make_user()
    _request_reset(client, person.email)
    path, _ = _reset_link(person)
    response = _choose(client, path)
    assert response.status_code == 302 and response.location == "/sign-in"
    assert "Please sign in with your new password" in client.get("/sign-in").get_data(
        as_text=True)
    assert sign_in(app.test_client(), person).status_code == 422  # old password refused
    person.password = NEW_PASSWORD
    assert sign_in(app.test_client(), person).status_code == 302
    assert "account.password.reset" in audit_actions(target_id=str(person.id))
    assert len(outbox("password_changed", person.user)) == 1


def test_link_works_once(app, client):
    person = make_user()
    _request_reset(client, person.email)
    path, _ = _reset_link(person)
    _choose(client, path)
    again = app.test_client().get(path)
    assert again.status_code == 410
    html = again.get_data(as_text=True)
    assert "This link was already used" in html and "Ask for a new reset link" in html


def test_link_expires_after_30_minutes(app, client):
    person = make_user()
    _request_reset(client, person.email)
    path, _ = _reset_link(person)
    with time_machine.travel(utcnow() + timedelta(minutes=29), tick=False):
        assert app.test_client().get(path).status_code == 302
    with time_machine.travel(utcnow() + timedelta(minutes=30, seconds=1), tick=False):
        response = app.test_client().get(path)
        assert response.status_code == 410
        assert "This link has expired" in response.get_data(as_text=True)
        assert "password reset links work for 30 minutes" in response.get_data(as_text=True)


def test_tampered_link_is_refused(client):
    person = make_user()
    _request_reset(client, person.email)
    _, token = _reset_link(person)
    response = client.get(f"/reset/{token[::-1]}")
    assert response.status_code == 404
    assert "This link is not valid" in response.get_data(as_text=True)


def test_a_new_request_revokes_the_earlier_link(app, client):
    person = make_user()
    _request_reset(client, person.email)
    first, _ = _reset_link(person)
    _request_reset(client, person.email)
    second, _ = _reset_link(person)
    assert first != second
    assert app.test_client().get(first).status_code == 410
    assert app.test_client().get(second).status_code == 302


def test_reset_signs_out_everywhere(app):
    person = make_user()
    laptop, phone = app.test_client(), app.test_client()
    sign_in(laptop, person)
    sign_in(phone, person)
    old_alt_id = fresh(person.user).alt_id
    _request_reset(app.test_client(), person.email)
    path, _ = _reset_link(person)
    _choose(app.test_client(), path)
    assert laptop.get("/account").status_code == 302
    assert phone.get("/account").status_code == 302
    assert fresh(person.user).alt_id != old_alt_id


def test_reset_clears_a_lockout_and_a_disabled_password(app, client):
    person = make_user()
    db.session.execute(update(User).where(User.id == person.id).values(
        failed_signins=100, password_disabled=True, locked_until=utcnow() + timedelta(minutes=9)))
    db.session.commit()
    _request_reset(client, person.email)
    path, _ = _reset_link(person)
    _choose(client, path)
    user = fresh(person.user)
    assert (user.failed_signins, user.password_disabled, user.locked_until) == (0, False, None)
    person.password = NEW_PASSWORD
    assert sign_in(app.test_client(), person).status_code == 302


def test_link_of_an_account_deactivated_since_is_refused(client):
    person = make_user()
    _request_reset(client, person.email)
    path, _ = _reset_link(person)
    db.session.execute(update(User).where(User.id == person.id).values(active=False))
    db.session.commit()
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(("password", "confirm", "message"), [
    ("", "", "Choose a password."),
    ("short", "short", "at least 15 characters"),
    ("correct horse battery staple", "correct horse battery staple", "common or breached"),
    (NEW_PASSWORD, NEW_PASSWORD + "!", "The two passwords are not the same."),
])
def test_new_password_form_rejects_bad_input_and_keeps_the_link(client, password, confirm,
                                                               message):
    person = make_user()
    _request_reset(client, person.email)
    path, _ = _reset_link(person)
    client.get(path)
    response = post_form(client, "/reset", {"password": password, "confirm": confirm})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert passwords.verify_password(fresh(person.user).password_hash, person.password)
    assert _choose(client, path).status_code == 302


@pytest.mark.parametrize(("email", "message"), [
    ("", "Enter your email address."),
    ("x" * 300, "Field cannot be longer than 254 characters."),
])
def test_forgot_password_form_rejects_bad_input(client, email, message):
    response = _request_reset(client, email)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert 'id="email-error"' in response.get_data(as_text=True)


def test_reset_still_happens_once_when_the_server_never_reports_the_answer_sent(app):
    person = make_user()
    client = app.test_client()
    token = csrf_from(client.get(FORGOT).get_data(as_text=True))
    response = client.post(FORGOT, data={"email": person.email, "csrf_token": token})
    deadline = time.monotonic() + 10
    while not outbox("password_reset") and time.monotonic() < deadline:
        time.sleep(0.05)
    response.close()  # a late report must not send a second mail
    assert len(outbox("password_reset", person.user)) == 1


def test_a_slow_mail_server_does_not_slow_the_answer_for_a_real_account(app, smtp_server):
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    smtp_server.handler.delay = 0.4
    person = make_user()
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    for _ in range(3):
        for label, email in (("known", person.email), ("unknown", unique_email("nobody"))):
            client = app.test_client()
            token = csrf_from(client.get(FORGOT).get_data(as_text=True))
            start = time.perf_counter()
            response = client.post(FORGOT, data={"email": email, "csrf_token": token})
            timings[label].append(time.perf_counter() - start)
            response.close()
    assert wait_for_background(timeout=30)
    assert len(smtp_server.envelopes) == 3  # the mails did go, after the answers
    assert max(timings["known"]) < 0.3, timings


def test_reset_sent_page_says_what_to_do_when_access_is_paused(app):
    """A deactivated person gets no mail; the neutral page tells them to call instead."""
    person = make_user(active=False)
    client = app.test_client()
    page = client.get(_request_reset(client, person.email).location)
    html = _body(page)
    assert outbox("password_reset") == []
    assert "If your portal access has been paused, no email is sent" in html
    assert app.config["PRACTICE"]["phone"] in html


def test_a_link_replaced_by_a_newer_one_says_so_not_already_used(app, client):
    person = make_user()
    _request_reset(client, person.email)
    older, _ = _reset_link(person)
    _request_reset(app.test_client(), person.email)
    response = app.test_client().get(older)
    html = _body(response)
    assert response.status_code == 410
    assert "A newer link replaced this one" in html
    assert "already used" not in html
    newer, _ = _reset_link(person)
    assert newer != older and app.test_client().get(newer).status_code == 302


def test_a_link_withdrawn_without_a_newer_one_claims_neither_use_nor_replacement(app, client):
    person = make_user()
    _request_reset(client, person.email)
    path, _ = _reset_link(person)
    db.session.execute(update(OneTimeToken).where(OneTimeToken.user_id == person.id)
                       .values(revoked_at=utcnow()))
    db.session.commit()
    response = app.test_client().get(path)
    html = _body(response)
    assert response.status_code == 410
    assert "This link no longer works" in html
    assert "already used" not in html and "newer" not in html


def test_a_used_link_still_says_it_was_used(app, client):
    person = make_user()
    _request_reset(client, person.email)
    _reset_link(person)
    _request_reset(app.test_client(), person.email)  # a newer one exists, unused
    newer, _ = _reset_link(person)
    _choose(client, newer)
    html = _body(app.test_client().get(newer))
    assert "This link was already used" in html and "replaced" not in html


def test_the_expired_page_names_the_configured_lifetime(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "RESET_MINUTES", 45)
    person = make_user()
    _request_reset(client, person.email)
    path, _ = _reset_link(person)
    with time_machine.travel(utcnow() + timedelta(minutes=45, seconds=1), tick=False):
        html = _body(app.test_client().get(path))
    assert "password reset links work for 45 minutes" in html and "30 minutes" not in html
