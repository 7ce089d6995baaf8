"""The acceptance gate: a client with policies to accept reaches only the acceptance page.

Registered with `portal.security.register_gate`, so it runs for signed-in users before every
non-public view. Public pages (the policy texts among them) never reach it. Staff are not
gated for now: they work under their employment agreements; add their roles here if the
practice wants them to accept the portal's terms too.
"""

from flask import Flask, redirect, request, url_for
from flask_login import current_user

from portal.accounts.models import Role
from portal.policies import service
from portal.security import register_gate

GATED_ROLES = frozenset({Role.CLIENT})

# What a client with policies to accept may still reach, besides the public pages.
ALLOWED_WHILE_PENDING = frozenset({
    "static",
    "policies.accept",
    "accounts.sign_out",
    "accounts.signed_out",
    "accounts.keepalive",
    "accounts.sign_in",
    "accounts.mfa_challenge",
})


def acceptance_gate():
    """Send a client with policies to accept to the acceptance page, remembering where to."""
    if current_user.role not in GATED_ROLES:
        return None
    if request.endpoint in ALLOWED_WHILE_PENDING:
        return None
    if not service.pending_for(current_user._get_current_object()):
        return None
    return redirect(url_for("policies.accept", next=_next_path()))


def _next_path() -> str | None:
    if request.method != "GET":
        return None
    return request.full_path.rstrip("?") or None


def init_app(app: Flask) -> None:
    """Add the gate to the app's sign-in checks."""
    register_gate(app, acceptance_gate)
