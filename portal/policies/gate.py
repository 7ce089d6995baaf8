"""The acceptance gate: a client with policies to accept reaches only the acceptance page.

Provided to `portal.hooks.sign_in_gates`, so it runs for signed-in users before every
non-public view; a view marked `@allowed_before_consent` is let through. Public pages (the
policy texts among them) never reach it. Staff are not gated for now: they work under their
employment agreements; add their roles here if the practice wants them to accept the
portal's terms too.
"""

from flask import redirect, request, url_for
from flask_login import current_user

from portal.accounts.models import Role
from portal.hooks import Gate
from portal.pages import BEFORE_CONSENT
from portal.policies import service

# A parent or guardian (portal.guardians) uses the portal like a client: the same Terms and
# Privacy Policy to accept first.
GATED_ROLES = frozenset({Role.CLIENT, Role.GUARDIAN})


def acceptance_gate():
    """Send a client with policies to accept to the acceptance page, remembering where to."""
    if current_user.role not in GATED_ROLES:
        return None
    if not service.pending_for(current_user._get_current_object()):
        return None
    return redirect(url_for("policies.accept", next=_next_path()))


def _next_path() -> str | None:
    if request.method != "GET":
        return None
    return request.full_path.rstrip("?") or None


GATE = Gate("consent", acceptance_gate, exempt_mark=BEFORE_CONSENT)
