"""Security headers, the sign-in requirement, staff 2FA enrolment, and the role decorator.

Every route needs a signed-in user except the endpoints in PUBLIC_ENDPOINTS; a test walks
the URL map to hold that line.
"""

from collections.abc import Callable
from functools import wraps

from flask import Flask, abort, current_app, g, redirect, request, url_for
from flask_login import current_user

from portal.accounts import sessions
from portal.extensions import login_manager

PUBLIC_ENDPOINTS = frozenset({
    "static",
    "main.home",
    "main.login",
    "accounts.sign_in",
    "accounts.mfa_challenge",
    "accounts.forgot_password",
    "accounts.invitation_link",
    "accounts.accept_invitation",
    "accounts.reset_link",
    "accounts.reset_password",
    "accounts.signed_out",
    "policies.index",
    "policies.show",
    "policies.version",
    "policies.sitemap",
    "policies.robots",
    "ops.healthz",
    "ops.readyz",
})

# Pages whose content is the same for everyone and may be cached by the browser.
CACHEABLE_ENDPOINTS = frozenset({"static", "policies.index", "policies.show",
                                 "policies.version", "policies.sitemap", "policies.robots"})

# What a signed-in member of staff without two-step sign-in may still reach.
ENROLMENT_ENDPOINTS = frozenset({"accounts.mfa_setup", "accounts.sign_out", "accounts.keepalive"})

CSP = ("default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
PERMISSIONS_POLICY = ("camera=(), microphone=(), geolocation=(), payment=(), usb=(), "
                      "interest-cohort=(), browsing-topics=()")

Gate = Callable[[], object | None]


def init_app(app: Flask) -> None:
    login_manager.user_loader(sessions.load)
    login_manager.login_view = "accounts.sign_in"
    login_manager.login_message = None
    login_manager.session_protection = None  # the server-side session record does this job
    app.extensions.setdefault("portal_gates", [])
    # First of all hooks: the CSRF check reads the form, so the size limit must already be set.
    app.before_request_funcs.setdefault(None, []).insert(0, _limit_form_size)
    app.before_request(_require_sign_in)
    app.after_request(_headers)


def register_gate(app: Flask, gate: Gate) -> None:
    """Add a check run for signed-in users before every non-public view (e.g. policy consent).

    A gate returns a response (usually a redirect) to stop the request, or None.
    """
    app.extensions.setdefault("portal_gates", []).append(gate)


def is_public(endpoint: str | None) -> bool:
    return endpoint in PUBLIC_ENDPOINTS


def _limit_form_size() -> None:
    """Hold bodies that are not uploads to MAX_FORM_MEMORY_SIZE (413 beyond it).

    Werkzeug reads a url-encoded body into memory whole, up to MAX_CONTENT_LENGTH (sized for
    attachments), so without this any form could be made to parse tens of megabytes.
    """
    if request.mimetype == "multipart/form-data":
        return
    limit = current_app.config.get("MAX_FORM_MEMORY_SIZE")
    overall = request.max_content_length
    if limit and (overall is None or limit < overall):
        request.max_content_length = limit


def _require_sign_in():
    endpoint = request.endpoint
    if endpoint is None or is_public(endpoint):
        return None
    if not current_user.is_authenticated:
        if g.get("session_expired"):
            return redirect(url_for("accounts.sign_in", reason="idle"))
        return redirect(url_for("accounts.sign_in", next=_safe_next_path()))
    if current_user.is_staff and not current_user.mfa_enabled:
        if endpoint not in ENROLMENT_ENDPOINTS:
            return redirect(url_for("accounts.mfa_setup"))
        return None
    for gate in current_app.extensions["portal_gates"]:
        response = gate()
        if response is not None:
            return response
    return None


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
    if request.endpoint not in CACHEABLE_ENDPOINTS or _signed_in():
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    return response


def _signed_in() -> bool:
    """Say whether someone is signed in; when that cannot be told (database down), assume so."""
    try:
        return bool(current_user.is_authenticated)
    except Exception:
        return True


def role_required(*roles: str):
    """Allow only the given roles; anyone else gets the same 404 as a missing page."""
    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated or current_user.role not in roles:
                abort(404)
            return view(*args, **kwargs)
        return wrapped
    return decorator
