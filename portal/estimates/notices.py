"""The emails estimates send: a notice with a link into the portal, never the estimate itself."""

from flask import current_app

from portal.accounts.identity import email_of
from portal.accounts.models import User
from portal.mail import enqueue


def notify(user: User, template: str, path: str) -> None:
    """Queue a notice linking to `path` (a mail is built without a request, so no url_for)."""
    address = email_of(user)
    if address:
        base = current_app.config["PORTAL_BASE_URL"].rstrip("/")
        enqueue(user, template, to_address=address, link=f"{base}{path}")
