"""Quick exit ends the session: the beacon endpoint behind the Quick exit button."""

from sqlalchemy import select

from portal.accounts.models import UserSession
from portal.extensions import db

from .support import audit_actions, csrf_from, make_user, sign_in

COOKIE = "coeo_session"


def _token(client) -> str:
    html = client.get("/account").get_data(as_text=True)
    return html.split('name="csrf-token" content="')[1].split('"')[0]


def _sessions_of(person) -> list[UserSession]:
    rows = list(db.session.scalars(select(UserSession).where(UserSession.user_id == person.id)))
    db.session.commit()
    return rows


def test_signed_in_pages_give_the_quick_exit_link_its_sign_out_url(client):
    sign_in(client, make_user())
    html = client.get("/account").get_data(as_text=True)
    assert 'data-sign-out-url="/quick-exit"' in html
    assert 'id="quick-exit-hint" hidden>Or press Esc twice</p>' in html


def test_public_pages_have_the_hint_but_no_sign_out_url(client):
    html = client.get("/sign-in").get_data(as_text=True)
    assert 'id="quick-exit"' in html and "data-sign-out-url" not in html
    assert "Or press Esc twice" in html


def test_quick_exit_with_a_token_ends_the_session_and_the_copied_cookie(app, client):
    person = make_user()
    sign_in(client, person)
    token = _token(client)
    copied = client.get_cookie(COOKIE).value
    assert len(_sessions_of(person)) == 1
    response = client.post("/quick-exit", data={"csrf_token": token})
    assert response.status_code == 204
    assert response.get_data() == b""
    assert response.headers["Clear-Site-Data"] == '"cache", "cookies", "storage"'
    assert _sessions_of(person) == []
    assert "auth.signout" in audit_actions(target_id=str(person.id))
    again = client.get("/account")
    assert again.status_code == 302 and again.location.startswith("/sign-in")
    thief = app.test_client()
    thief.set_cookie(COOKIE, copied)
    replay = thief.get("/account")
    assert replay.status_code == 302 and replay.location.startswith("/sign-in")


def test_quick_exit_without_a_token_is_refused_and_changes_nothing(client):
    person = make_user()
    sign_in(client, person)
    before = audit_actions(target_id=str(person.id))
    response = client.post("/quick-exit")
    assert response.status_code == 400
    assert len(_sessions_of(person)) == 1
    assert audit_actions(target_id=str(person.id)) == before
    assert client.get("/account").status_code == 200


def test_quick_exit_with_a_wrong_token_is_refused(client):
    person = make_user()
    sign_in(client, person)
    response = client.post("/quick-exit", data={"csrf_token": "not-a-token"})
    assert response.status_code == 400
    assert client.get("/account").status_code == 200


def test_quick_exit_is_post_only(client):
    sign_in(client, make_user())
    assert client.get("/quick-exit").status_code == 405
    assert client.get("/account").status_code == 200


def test_anonymous_quick_exit_is_harmless(client):
    before = audit_actions()
    assert client.post("/quick-exit").status_code == 400
    token = csrf_from(client.get("/sign-in").get_data(as_text=True))
    with_token = client.post("/quick-exit", data={"csrf_token": token})
    assert with_token.status_code == 302 and with_token.location.startswith("/sign-in")
    assert audit_actions() == before
    assert client.get("/sign-in").status_code == 200
