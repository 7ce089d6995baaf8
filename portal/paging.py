"""Reading a list page's position from the query string, the same way on every list."""

import uuid

from flask import abort, request

MAX_PAGE = 100_000


def page_number(name: str = "page") -> int:
    """The 1-based page asked for; anything missing, malformed or absurd is page 1."""
    page = request.args.get(name, default=1, type=int)
    return page if page and 0 < page < MAX_PAGE else 1


def cursor(name: str = "before") -> uuid.UUID | None:
    """The id a "show older" link continues from, on GET only; a malformed one is a 404."""
    value = request.args.get(name) if request.method == "GET" else None
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        abort(404)
