"""A Flask test client whose every request runs in its own app context, as in production."""

from flask.testing import FlaskClient

from portal.extensions import db


class IsolatedClient(FlaskClient):
    """A test client whose every request runs in its own app context, as in production.

    The `app` fixture keeps one app context pushed for the whole test, and Flask reuses a pushed
    context for requests: without this, requests would share its `g` (Flask-Login's cached
    user, the CSRF token, the server session row, the key cache) and its database session with
    the test and with other clients. The test's own transaction is ended first: on SQLite every
    transaction holds the write lock, and the request would wait for it. A `buffered` response
    is closed only after the request's context has ended, so work done after the response
    (`portal.after_response`) finds the database free, as it does behind a real server.
    """

    def open(self, *args, buffered: bool = False, **kwargs):
        db.session.commit()
        db.session.expire_all()
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        if buffered:  # close it as a server does once it is sent: after the request has ended
            response.make_sequence()
            response.close()
        return response
