"""What a page says about itself, declared where the view is defined.

Security, caching, transactions and the sign-in gates read these marks off the view function
instead of keeping lists of endpoint names, so adding a page touches one file. Put the marks
directly under `@bp.route(...)`, above any wrapping decorator or below it (`functools.wraps`
copies them either way):

    @bp.route("/policies/<slug>")
    @public
    @cacheable
    @read_only
    def show(slug): ...
"""

from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app

View = TypeVar("View", bound=Callable)

_MARKS = "portal_marks"

PUBLIC = "public"                        # reachable without signing in
CACHEABLE = "cacheable"                  # the same for everyone: the browser may keep it
READ_ONLY = "read_only"                  # a GET that only reads (SQLite: no write lock)
BEFORE_CONSENT = "allowed_before_consent"        # reachable with policies still to accept
BEFORE_ENROLMENT = "allowed_before_enrolment"    # reachable by staff before two-step sign-in
UPLOADS = "accepts_uploads"              # takes multipart bodies up to MAX_CONTENT_LENGTH
SEARCH_POST = "search_post"              # a POST that only reads (a search kept out of the URL)


def _marker(*marks: str) -> Callable[[View], View]:
    def decorator(view: View) -> View:
        setattr(view, _MARKS, frozenset(getattr(view, _MARKS, frozenset())) | set(marks))
        return view
    return decorator


public = _marker(PUBLIC)
public.__doc__ = "Let anyone reach the page, signed in or not (it must show nobody's data)."
cacheable = _marker(CACHEABLE)
cacheable.__doc__ = "Let the browser cache the page for visitors (the same for everyone)."
read_only = _marker(READ_ONLY)
read_only.__doc__ = """Say a GET view only reads, so SQLite serves it without the write lock.

Such a view may still write through `portal.db.transactions.write_transaction()`; a plain
write after a read could fail with SQLITE_BUSY under contention."""
search_post = _marker(SEARCH_POST)
search_post.__doc__ = """Say a view's POST only reads: a search sent as a POST so the words
(a client's name) stay out of the URL and the logs. It runs without SQLite's write lock like a
`read_only` GET, and writes only through `write_transaction()` (its looks)."""
allowed_before_consent = _marker(BEFORE_CONSENT)
allowed_before_consent.__doc__ = "Let a client with policies still to accept reach the page."
allowed_before_enrolment = _marker(BEFORE_ENROLMENT)
allowed_before_enrolment.__doc__ = "Let staff who have not set up two-step sign-in reach it."
accepts_uploads = _marker(UPLOADS)
accepts_uploads.__doc__ = """Let signed-in people send files here (up to MAX_CONTENT_LENGTH).

Every other request (and any request from someone not signed in) is held to
MAX_FORM_MEMORY_SIZE before its body is read (`portal.security`)."""


def marks_of(view: Callable | None) -> frozenset[str]:
    """The marks a view function carries."""
    return getattr(view, _MARKS, frozenset())


def endpoint_has(endpoint: str | None, mark: str) -> bool:
    """Say whether the current app's view for `endpoint` carries `mark`."""
    if not endpoint:
        return False
    return mark in marks_of(current_app.view_functions.get(endpoint))


def declare_static(app: Flask) -> None:
    """Flask's own static view: public, cacheable, read-only, behind no gate."""
    view = app.view_functions.get("static")
    if view is not None:
        app.view_functions["static"] = _marker(PUBLIC, CACHEABLE, READ_ONLY, BEFORE_CONSENT,
                                               BEFORE_ENROLMENT)(view)


def endpoints_marked(app: Flask, mark: str) -> frozenset[str]:
    """Every endpoint of `app` whose view carries `mark` (for tests and reports)."""
    return frozenset(endpoint for endpoint, view in app.view_functions.items()
                     if mark in marks_of(view))
