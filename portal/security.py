"""Security headers, the sign-in requirement and its gates, and the role decorator.

Every route needs a signed-in user unless its view is marked `@public` (`portal.pages`); a
test walks the URL map to hold that line. Features add gates (`portal.hooks.sign_in_gates`):
two-step sign-in enrolment for staff, the policy acceptance for clients.
"""

from functools import wraps

from flask import Flask, abort, current_app, g, redirect, request, url_for
from flask_login import current_user

from portal import hooks, pages
from portal.extensions import login_manager

CSP = ("default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
PERMISSIONS_POLICY = ("camera=(), microphone=(), geolocation=(), payment=(), usb=(), "
                      "interest-cohort=(), browsing-topics=()")


def init_app(app: Flask) -> None:
    login_manager.user_loader(_load_user)
    login_manager.login_message = None
    login_manager.session_protection = None  # the server-side session record does this job
    # First of all hooks: the CSRF check reads the form, so the size limit must already be set.
    app.before_request_funcs.setdefault(None, []).insert(0, _limit_form_size)
    app.before_request(_require_sign_in)
    app.after_request(_headers)


def _load_user(session_id: str):
    return hooks.user_loader(session_id)


def is_public(endpoint: str | None) -> bool:
    return pages.endpoint_has(endpoint, pages.PUBLIC)


def _limit_form_size() -> None:
    """Hold every body to MAX_FORM_MEMORY_SIZE, except signed-in uploads; 413 beyond it.

    Werkzeug reads a url-encoded body into memory whole, and the CSRF check reads the form
    (multipart included) before any view runs, up to MAX_CONTENT_LENGTH (sized for five
    attachments). So only a view marked `accepts_uploads`, asked by someone with a live
    session, gets the larger limit; anything else is held to the form limit. The limit is
    checked here, before a byte of the body is read: a Content-Length beyond it is refused at
    once, and a chunked body is read through a stream that stops at the limit.
    """
    limit = current_app.config.get("MAX_FORM_MEMORY_SIZE")
    overall = request.max_content_length
    held = bool(limit and (overall is None or limit < overall) and not _may_upload(limit))
    if held:
        request.max_content_length = limit
    length = request.content_length
    if length is None and held and request.mimetype == "multipart/form-data":
        # A chunked body: read it here, into memory the form limit allows anyway, through
        # Werkzeug's stream that stops at the limit (a body that reaches it is too large, as
        # Werkzeug counts). The form is then parsed from this copy; parsed from the stream,
        # a file part cut off at the limit would stay open.
        if len(request.get_data(cache=True)) >= limit:
            abort(413)
    elif (length is not None and request.max_content_length is not None
          and length > request.max_content_length):
        abort(413)


def _may_upload(limit: int) -> bool:
    """Say whether this request may send more than `limit` bytes: a multipart body, to a view
    that takes files, from someone signed in. Reads no body; loads the session only for a
    body that needs it (the same loading the sign-in check does next)."""
    if request.mimetype != "multipart/form-data":
        return False
    if request.content_length is not None and request.content_length <= limit:
        return False  # fits the form limit anyway: no need to know who is asking
    if not pages.endpoint_has(request.endpoint, pages.UPLOADS):
        return False
    if not current_user.is_authenticated:
        return False
    # Someone the page would answer 404 (an administrator on compose) is held to the form
    # limit too: the roles `role_required` let in ride on the view.
    roles = getattr(current_app.view_functions.get(request.endpoint), ROLES_ATTR, None)
    return roles is None or current_user.role in roles


def _require_sign_in():
    endpoint = request.endpoint
    if endpoint is None or is_public(endpoint):
        return None
    if not current_user.is_authenticated:
        sign_in = login_manager.login_view  # set by the feature that signs people in
        if g.get("session_expired"):
            return redirect(url_for(sign_in, reason="idle"))
        return redirect(url_for(sign_in, next=_safe_next_path()))
    for gate in hooks.sign_in_gates:
        if pages.endpoint_has(endpoint, gate.exempt_mark):
            continue
        response = gate.check()
        if response is not None:
            return response
    return None


def navigation_hidden(user) -> bool:
    """Say whether a gate holds this user back from the pages the navigation links to."""
    return any(gate.hides_navigation(user) for gate in hooks.sign_in_gates)


def _safe_next_path() -> str | None:
    if request.method != "GET":
        return None
    return request.full_path.rstrip("?") if request.full_path else None


def safe_next(target: str | None) -> str | None:
    """Follow `next` only when it is a relative path on this site (no scheme, no host)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return None
    return target


def _headers(response):
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Permissions-Policy"] = PERMISSIONS_POLICY
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    if current_app.config.get("HSTS"):
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    if request.endpoint == "static":
        return response  # the same for everyone; loading the user would also reset the idle timer
    if not pages.endpoint_has(request.endpoint, pages.CACHEABLE) or _signed_in():
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    return response


def _signed_in() -> bool:
    """Say whether someone is signed in; when that cannot be told (database down), assume so."""
    try:
        return bool(current_user.is_authenticated)
    except Exception:
        return True


ROLES_ATTR = "portal_roles"  # the roles role_required lets in, on the view it wraps


def role_required(*roles: str):
    """Allow only the given roles; anyone else gets the same 404 as a missing page."""
    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated or current_user.role not in roles:
                abort(404)
            return view(*args, **kwargs)
        setattr(wrapped, ROLES_ATTR, frozenset(roles))  # `wraps` carries it outwards
        return wrapped
    return decorator
