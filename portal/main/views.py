"""The front door: send each person to where their work starts."""

from flask import Blueprint, current_app, redirect, url_for
from flask_login import current_user

from portal.pages import public

bp = Blueprint("main", __name__)

START = {
    "client": ("messaging.inbox", "accounts.settings"),
    "therapist": ("messaging.dashboard", "accounts.my_clients"),
    "admin": ("admin.users",),
    "guardian": ("guardians.family",),
}


@bp.route("/")
@public
def home():
    """Redirect to the role's start page, or to sign-in."""
    if not current_user.is_authenticated:
        return redirect(url_for("accounts.sign_in"))
    for endpoint in START.get(current_user.role, ()):
        if endpoint in current_app.view_functions:
            return redirect(url_for(endpoint))
    return redirect(url_for("accounts.settings"))


@bp.route("/login")
@public
def login():
    """Send the common /login address to the sign-in page."""
    return redirect(url_for("accounts.sign_in"))
