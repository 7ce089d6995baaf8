"""Refusals and error pages: one exception for a refused rule, and friendly error pages.

No stack trace or technical detail ever reaches a user.
"""

import contextlib
import logging

from flask import Flask, g, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from portal.extensions import db, login_manager
from portal.text import size_text

log = logging.getLogger("portal.errors")
PAGES = {400, 403, 404, 405, 413, 429, 500, 503}


class RuleError(Exception):
    """A business rule refused the change; the message is for the person who asked.

    Every service raises this (or a subclass that carries more detail) and never touches a
    form; `portal.forms.refuse` puts it on the form field it names, or above the form.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_down)
    app.register_error_handler(Exception, _unexpected)


def _render(code: int, **context):
    # The page must render even when the database is gone.
    with contextlib.suppress(Exception):
        db.session.rollback()
    _settle_user()
    template = f"errors/{code if code in PAGES else 400 if code < 500 else 500}.html"
    return render_template(template, code=code, **context), code


def _settle_user() -> None:
    """Resolve who is signed in now, or render the page as for a visitor.

    When the database is what failed, loading the user would fail again inside the page
    (navigation, sign-out button) and turn a friendly 503 into a bare 500.
    """
    try:
        if current_user.is_authenticated:  # loads and caches the user
            current_user.role  # noqa: B018 - a user loaded before the rollback reloads here
    except Exception:
        with contextlib.suppress(Exception):
            db.session.rollback()
        g._login_user = login_manager.anonymous_user()


def _csrf_error(error: CSRFError):
    return _render(400, reason="csrf")


def _http_error(error: HTTPException):
    code = error.code or 500
    context = {}
    if code == 413:
        limit = request.max_content_length
        if limit:
            context["limit_text"] = size_text(limit)
    if code == 429 and getattr(error, "limit", None) is not None:  # Flask-Limiter's window
        with contextlib.suppress(Exception):
            context["wait_minutes"] = max(1, -(-error.limit.limit.get_expiry() // 60))
    response, status = _render(code, **context)
    if code == 405 and error.get_response().headers.get("Allow"):
        return response, status, {"Allow": error.get_response().headers["Allow"]}
    return response, status


def _database_down(error: OperationalError):
    log.error("database unavailable: %s", type(error.orig).__name__ if error.orig else "unknown")
    return _render(503)


def _unexpected(error: Exception):
    log.exception("unhandled error on %s", request.endpoint)
    return _render(500, error=InternalServerError())
