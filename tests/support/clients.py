"""A Flask test client whose every request runs in its own app context, as in production."""

from flask.testing import FlaskClient

from portal.extensions import db


class IsolatedClient(FlaskClient):
    """A test client whose every request runs in its own app context, as in production.

    The `app` fixture keeps one app context pushed for the whole test, and Flask reuses a pushed
    context for requests: without this, requests would share its `g` (Flask-Login's cached
    user, the CSRF token, the server session row, the key cache) and its database session with
    the test and with other clients. The test's own transaction is ended first: on SQLite every
    transaction holds the write lock, and the request would wait for it.
    """

    def open(self, *args, **kwargs):
        db.session.commit()
        db.session.expire_all()
        with self.application.app_context():
            return super().open(*args, **kwargs)
