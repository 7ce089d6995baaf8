"""How the accounts feature plugs into the app: its pages, its gate, who people are."""

from flask import Flask, redirect, url_for
from flask_login import current_user

from portal import hooks
from portal.accounts import identity, sessions
from portal.accounts.views import bp
from portal.audit.catalogue import declare
from portal.extensions import login_manager
from portal.hooks import Gate, NavItem
from portal.pages import BEFORE_ENROLMENT


def _needs_enrolment(user) -> bool:
    return bool(user.is_staff and not user.mfa_enabled)


def _enrolment_gate():
    """Staff set up two-step sign-in before anything else."""
    if _needs_enrolment(current_user):
        return redirect(url_for("accounts.mfa_setup"))
    return None


ENROLMENT_GATE = Gate("enrolment", _enrolment_gate, exempt_mark=BEFORE_ENROLMENT,
                      hides_navigation=_needs_enrolment)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    login_manager.login_view = "accounts.sign_in"
    hooks.user_loader.provide(sessions.load)
    hooks.email_address_of.provide(identity.email_of)
    hooks.display_names.provide(identity.names_by_id)
    declare("assignment.added", "Assigned a therapist to you")
    declare("assignment.removed", "Removed a therapist assignment")
    hooks.sign_in_gates.provide(ENROLMENT_GATE)
    hooks.navigation.provide(NavItem("Clients", "accounts.my_clients", ("therapist",), 30,
                                     sections=()))
    hooks.navigation.provide(NavItem("Account", "accounts.settings",
                                     ("client", "therapist", "admin"), 90, sections=()))
