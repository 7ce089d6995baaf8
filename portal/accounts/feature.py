"""How the accounts feature plugs into the app: its pages, its gate, who people are."""

from flask import Flask, redirect, url_for
from flask_login import current_user

import portal.accounts.email_change_views  # noqa: F401  (its routes join accounts.bp)
from portal import hooks
from portal.accounts import display, housekeeping, identity, mfa, sessions
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
    hooks.digest_key_started.provide(mfa.void_legacy_codes)
    hooks.worker_tasks.provide(hooks.WorkerTask("sign-in metadata purge",
                                                housekeeping.scheduled))
    # `email_change`: an administrator's correction (the confirmation is the person's own).
    declare("account.email_change_requested", "Started a correction of your email address")
    declare("account.email_change_cancelled", "Cancelled a correction of your email address")
    declare("assignment.added", "Assigned a therapist to you")
    declare("assignment.removed", "Removed a therapist assignment")
    # `profile.update_profile`: a client's own changes are not listed (the log lists staff).
    declare("account.name_changed", "Corrected the name you go by")
    declare("account.pronouns_changed", "Corrected your pronouns")
    declare("account.legal_name_changed", "Corrected your legal name")
    app.add_template_global(display.person_label, "person_label")
    app.add_template_global(display.reply_note, "reply_note")
    hooks.sign_in_gates.provide(ENROLMENT_GATE)
    hooks.navigation.provide(NavItem("Clients", "accounts.my_clients", ("therapist",), 30,
                                     sections=()))
    hooks.navigation.provide(NavItem("Account", "accounts.settings",
                                     ("client", "therapist", "admin", "guardian"), 90,
                                     sections=()))
