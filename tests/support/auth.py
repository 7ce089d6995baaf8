"""Signing a test client in and out (flaskr's AuthActions).

Where the sign-in form is not what a test is about, `login` opens the server session the way
the sign-in page does (`portal.accounts.sessions.start`) and puts its token and Flask-Login's
keys straight into the client's cookie session: no Argon2, no code step, no extra requests.
The sign-in pages have their own tests (tests/accounts), which post the real forms.
"""

from flask import Flask, session
from flask.testing import FlaskClient

from portal.accounts import sessions
from portal.accounts.models import User
from portal.extensions import db
from tests.support.people import csrf_from


def start_session(app: Flask, user: User, *, mfa_verified: bool = True) -> str:
    """Open a server session for `user` (two-step sign-in passed); return its cookie token."""
    with app.test_request_context(headers={"User-Agent": "tests"}):
        sessions.start(user, mfa_verified=mfa_verified)
        token = session[sessions.SESSION_KEY]
    db.session.commit()  # on SQLite an open transaction holds the write lock
    return token


def inject_session(client: FlaskClient, user: User, *, mfa_verified: bool = True) -> FlaskClient:
    """Sign `client` in as `user` without the sign-in pages; returns the client."""
    token = start_session(client.application, user, mfa_verified=mfa_verified)
    with client.session_transaction() as cookie:
        cookie.clear()
        cookie[sessions.SESSION_KEY] = token
        cookie["_user_id"] = user.get_id()  # Flask-Login's keys, as login_user writes them
        cookie["_fresh"] = True
    return client


def signed_in(app: Flask, user: User, **options) -> FlaskClient:
    """Return a new test client signed in as `user`."""
    return inject_session(app.test_client(), user, **options)


class AuthActions:
    """`auth.login(user)` and `auth.logout()` for one test client (the `auth` fixture's)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def login(self, user: User, *, mfa_verified: bool = True) -> FlaskClient:
        return inject_session(self.client, user, mfa_verified=mfa_verified)

    def logout(self):
        """Sign out through the page's button (it ends the server session)."""
        token = csrf_from(self.client.get("/account").get_data(as_text=True))
        return self.client.post("/sign-out", data={"csrf_token": token})

    def csrf(self, path: str = "/account") -> str:
        """Return the CSRF token of the client's session, read from a page it can open."""
        return csrf_from(self.client.get(path, follow_redirects=True).get_data(as_text=True))
