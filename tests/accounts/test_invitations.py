"""Invitations: created by staff or the CLI, emailed, single-use, 72 hours, hashed at rest."""

import hashlib
import re
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select

from portal.accounts import service
from portal.accounts.identity import find_by_email
from portal.accounts.models import Assignment, OneTimeToken, User
from portal.db import utcnow
from portal.errors import RuleError
from portal.extensions import db

from .support import (
    PASSWORD,
    audit_actions,
    fresh,
    link_in,
    mail_text,
    make_user,
    outbox,
    post_form,
    sign_in,
    unique_email,
)

ASK_AGAIN = "Ask the practice for a new link"


def _invite(client, *, role="client", name="Jamie Rivers", email=None, therapist=None):
    """Invite someone through the admin form; return (response, email)."""
    email = unique_email("invitee") if email is None else email
    data = {"name": name, "email": email, "role": role, "therapist": therapist or ""}
    return post_form(client, "/admin/users/invite", data), email


def _latest_link(user: User) -> tuple[str, str]:
    return link_in(mail_text(outbox("invitation", user)[-1]))


def _accept(client, path: str, password: str = PASSWORD):
    """Open an invitation link and choose a password; return the final POST's response."""
    opened = client.get(path)
    assert opened.status_code == 302 and opened.location == "/invitation"
    return post_form(client, "/invitation", {"password": password, "confirm": password})


@pytest.fixture
def admin_client(app):
    """Return a test client signed in as an admin (with two-step sign-in)."""
    client = app.test_client()
    sign_in(client, make_user("admin"))
    return client


@pytest.fixture
def invited(admin_client):
    """Invite a client through the admin screen; return (user, path, token)."""
    response, email = _invite(admin_client)
    assert response.status_code == 302
    user = find_by_email(email)
    path, token = _latest_link(user)
    return user, path, token


def test_admin_invitation_is_queued_in_the_outbox_with_the_link(admin_client):
    response, email = _invite(admin_client)
    user = find_by_email(email)
    assert response.location == f"/admin/users/{user.id}"
    (row,) = outbox("invitation", user)
    assert row.subject == "Your coeo portal invitation"
    path, token = link_in(mail_text(row))
    assert path == f"/invitation/{token}"
    assert len(token) >= 43  # 256 bits


def test_invitation_mail_reaches_a_real_smtp_server_with_the_link(app, admin_client,
                                                                  smtp_server):
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    _, email = _invite(admin_client)
    user = find_by_email(email)
    (received,) = smtp_server.envelopes
    assert received.rcpt_tos == (email,)
    _, token = _latest_link(user)
    assert received.message["Subject"] == "Your coeo portal invitation"
    assert f"/invitation/{token}" in received.text
    assert outbox("invitation", user)[0].sent_at is not None


def test_invitation_token_is_stored_only_as_its_hash(app, invited):
    user, _, token = invited
    rows = list(db.session.scalars(select(OneTimeToken).where(OneTimeToken.user_id == user.id)))
    assert [bytes(r.token_hash) for r in rows] == [hashlib.sha256(token.encode()).digest()]
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)):
            for value in row:
                text = value.hex() if isinstance(value, bytes) else str(value)
                raw = value if isinstance(value, bytes) else text.encode()
                assert token not in text and token.encode() not in raw, table.name
    db.session.commit()
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///"):
        base = Path(uri.removeprefix("sqlite:///"))
        for path in (base, base.with_name(base.name + "-wal")):
            if path.exists():
                assert token.encode() not in path.read_bytes()


def test_link_is_swapped_for_a_token_free_url(client, invited):
    _, path, token = invited
    response = client.get(path)
    assert response.status_code == 302
    assert response.location == "/invitation"
    page = client.get("/invitation")
    assert page.status_code == 200
    assert token not in page.get_data(as_text=True)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "Welcome, Jamie Rivers" in page.get_data(as_text=True)


def test_setting_a_password_signs_the_client_in(client, invited):
    user, path, _ = invited
    response = _accept(client, path)
    assert response.status_code == 302
    assert response.location == "/account/two-factor/offer"  # clients are offered 2FA
    assert client.get("/account").status_code == 200
    assert fresh(user).password_hash is not None
    assert "invitation.used" in audit_actions(target_id=str(user.id))
    assert "auth.signin.success" in audit_actions(target_id=str(user.id))


def test_invited_staff_go_straight_to_two_step_enrolment(admin_client, client):
    _, email = _invite(admin_client, role="therapist", name="Theo Ward")
    user = find_by_email(email)
    assert user.role == "therapist"
    path, _ = _latest_link(user)
    assert _accept(client, path).location == "/account/two-factor/setup"


def test_link_works_only_once(client, app, invited):
    _, path, _ = invited
    _accept(client, path)
    other = app.test_client()
    response = other.get(path)
    html = response.get_data(as_text=True)
    assert response.status_code == 410
    assert "This link was already used" in html
    assert ASK_AGAIN in html


def test_link_expires_after_72_hours(app, client, invited):
    _, path, _ = invited
    with time_machine.travel(utcnow() + timedelta(hours=71, minutes=59), tick=False):
        assert client.get(path).status_code == 302
    with time_machine.travel(utcnow() + timedelta(hours=72, seconds=1), tick=False):
        response = app.test_client().get(path)
        html = response.get_data(as_text=True)
        assert response.status_code == 410
        assert "This link has expired" in html and ASK_AGAIN in html
        # The token-free page refuses too, even if it was opened before the deadline.
        assert client.get("/invitation").status_code == 410


@pytest.mark.parametrize("mangle", [
    pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="one character changed"),
    pytest.param(lambda t: t[:20], id="cut short"),
    pytest.param(lambda t: t + "x", id="extra character"),
    pytest.param(lambda t: "x" * 300, id="oversized"),
])
def test_tampered_link_is_refused_with_a_clear_page(client, invited, mangle):
    _, _, token = invited
    response = client.get(f"/invitation/{mangle(token)}")
    html = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "This link is not valid" in html and ASK_AGAIN in html


def test_token_free_page_without_an_opened_link_is_refused(client):
    response = client.get("/invitation")
    assert response.status_code == 404
    assert ASK_AGAIN in response.get_data(as_text=True)


def test_refused_password_keeps_the_link_usable(client, invited):
    user, path, _ = invited
    client.get(path)
    response = post_form(client, "/invitation", {"password": "too short", "confirm": "too short"})
    assert response.status_code == 422
    assert "at least 15 characters" in response.get_data(as_text=True)
    assert fresh(user).password_hash is None
    ok = post_form(client, "/invitation", {"password": PASSWORD, "confirm": PASSWORD})
    assert ok.status_code == 302


@pytest.mark.parametrize(("password", "confirm", "message"), [
    ("", "", "Choose a password."),
    (PASSWORD, PASSWORD + "x", "The two passwords are not the same."),
    ("Jamie Rivers is my name", "Jamie Rivers is my name", "leave out your name"),
    ("x" * 129, "x" * 129, "at most 128 characters"),
])
def test_set_password_form_rejects_bad_input_next_to_the_field(client, invited, password,
                                                               confirm, message):
    user, path, _ = invited
    client.get(path)
    response = post_form(client, "/invitation", {"password": password, "confirm": confirm})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert 'aria-invalid="true"' in response.get_data(as_text=True)
    assert fresh(user).password_hash is None


def test_resend_revokes_the_previous_link(admin_client, app, invited):
    user, old_path, _ = invited
    response = post_form(admin_client, f"/admin/users/{user.id}/resend",
                         page=f"/admin/users/{user.id}")
    assert response.status_code == 302
    new_path, _ = _latest_link(user)
    assert new_path != old_path
    assert len(outbox("invitation", user)) == 2
    old = app.test_client().get(old_path)
    assert old.status_code == 410
    html = old.get_data(as_text=True)
    assert "A newer link replaced this one" in html and "A newer invitation" in html
    assert "already used" not in html and ASK_AGAIN in html
    assert _accept(app.test_client(), new_path).status_code == 302


def test_deactivated_persons_link_no_longer_works(admin_client, client, invited):
    user, path, _ = invited
    post_form(admin_client, f"/admin/users/{user.id}/deactivate", {"reason": "other"},
              page=f"/admin/users/{user.id}")
    response = client.get(path)
    assert response.status_code == 404
    assert ASK_AGAIN in response.get_data(as_text=True)
    with pytest.raises(RuleError):
        service.resend_invitation(make_user("admin").user, fresh(user))


def test_therapist_invites_a_client_who_is_assigned_to_them(app):
    therapist = make_user("therapist")
    client = app.test_client()
    sign_in(client, therapist)
    email = unique_email("new-client")
    response = post_form(client, "/clients/invite", {"name": "Casey Moss", "email": email,
                                                     "role": "admin"})
    assert response.status_code == 302
    user = find_by_email(email)
    assert user.role == "client"  # a smuggled role field is ignored
    assigned = db.session.scalars(select(Assignment.therapist_id)
                                  .where(Assignment.client_id == user.id)).all()
    assert assigned == [therapist.id]
    assert len(outbox("invitation", user)) == 1


def test_therapist_cannot_reach_the_admin_invitation_form(app):
    client = app.test_client()
    sign_in(client, make_user("therapist"))
    assert client.get("/admin/users/invite").status_code == 404


@pytest.mark.parametrize("role", ["therapist", "admin"])
def test_therapist_cannot_create_staff_accounts(app, role):
    therapist = make_user("therapist").user
    with pytest.raises(RuleError, match="clients only"):
        service.create_user(therapist, role=role, name="Someone Else", email=unique_email())
    assert audit_actions(action="account.created") == []


def test_cli_create_user_prints_a_working_invitation_link(app, runner):
    email = unique_email("first-admin")
    result = runner.invoke(args=["portal", "create-user", "--role", "admin", "--email", email,
                                 "--name", "First Admin"])
    assert result.exit_code == 0, result.output
    found = re.search(r"http://\S+(/invitation/\S+)", result.output)
    assert found
    user = find_by_email(email)
    assert user.role == "admin"
    assert _accept(app.test_client(), found.group(1)).location == "/account/two-factor/setup"


def test_cli_create_user_assigns_a_therapist(runner):
    therapist = make_user("therapist")
    email = unique_email()
    result = runner.invoke(args=["portal", "create-user", "--role", "client", "--email", email,
                                 "--name", "Pat Lee", "--therapist", therapist.email])
    assert result.exit_code == 0, result.output
    assert service.therapists_of(find_by_email(email).id)[0].id == therapist.id


@pytest.mark.parametrize(("args", "message"), [
    (["--email", "not-an-email"], "Enter an email address"),
    (["--email", "a@b.co", "--therapist", "nobody@example.org"], "no therapist"),
])
def test_cli_create_user_refuses_bad_input_with_one_line(runner, args, message):
    base = {"--role": "client", "--name": "Pat Lee"}
    argv = ["portal", "create-user"] + [x for pair in base.items() for x in pair] + args
    result = runner.invoke(args=argv)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("name", "email", "field", "message"), [
    ("", "a@example.org", "name", "Enter the person"),
    ("Pat Lee", "", "email", "Enter an email address"),
    ("Pat Lee", "pat@", "email", "Enter an email address like"),
    ("Pat Lee", "Pat <pat@example.org>", "email", "Enter an email address like"),
    ("Pat Lee", "pat lee@example.org", "email", "Enter an email address like"),
    ("Pat Lee", "p" * 250 + "@example.org", "email", ""),
    ("P" * 201, "pat@example.org", "name", ""),
])
def test_invitation_form_rejects_bad_input_next_to_the_field(admin_client, name, email, field,
                                                             message):
    before = db.session.scalar(select(db.func.count()).select_from(User))
    response, _ = _invite(admin_client, name=name, email=email)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f'id="{field}-error"' in html
    assert message in html
    assert db.session.scalar(select(db.func.count()).select_from(User)) == before
    if email:
        assert f'value="{email}"'.replace("<", "&lt;").replace(">", "&gt;") in html or len(
            email) > 254


def test_invitation_to_an_existing_email_is_refused(admin_client):
    existing = make_user()
    response, _ = _invite(admin_client, email=existing.email.upper())
    assert "already exists" in response.get_data(as_text=True)
