"""The confirmation page of an email change (its routes join `accounts.bp`).

The link in the email puts its token in the session and redirects, so the token leaves the
address bar (and the history) before anything is shown. The page works signed out; a GET
only shows it, the button POSTs (CSRF) and confirms. A link that is used, expired, replaced,
withdrawn or unknown gets a page that says so, never an error.
"""

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user

from portal.accounts import email_change
from portal.accounts.tokens import TokenProblem
from portal.accounts.views import bp
from portal.errors import RuleError
from portal.forms import INVALID, EmptyForm
from portal.pages import public

SESSION_KEY = "email_change"
GONE = 410
TEMPLATE = "accounts/email_change.html"


def _problem(problem: TokenProblem):
    status = 404 if problem.reason == "invalid" else GONE
    return render_template(TEMPLATE, reason=problem.reason,
                           hours=email_change.LINK_HOURS), status


@bp.route("/email-change/<token>")
@public
def email_change_link(token: str):
    """Check an email confirmation link, then continue on a URL without the token."""
    try:
        email_change.change_for(token)
    except TokenProblem as problem:
        return _problem(problem)
    session[SESSION_KEY] = token
    return redirect(url_for("accounts.confirm_email_change"))


@bp.route("/email-change", methods=["GET", "POST"])
@public
def confirm_email_change():
    """Confirm a new email address with a button (the link's token is in the session)."""
    token = session.get(SESSION_KEY, "")
    form = EmptyForm()
    if request.method == "POST" and not form.validate_on_submit():
        abort(400)
    # Load this browser's session before anything else: when it is the account's own, it is
    # the one session a confirmation keeps (a public page does not load it otherwise).
    current_user.is_authenticated  # noqa: B018
    try:
        email_change.change_for(token)
        if request.method == "POST":
            user = email_change.confirm_email_change(token)
            session.pop(SESSION_KEY, None)
            return _confirmed(user)
    except TokenProblem as problem:
        session.pop(SESSION_KEY, None)
        return _problem(problem)
    except RuleError as refused:
        session.pop(SESSION_KEY, None)
        return render_template(TEMPLATE, reason="taken", message=refused.message), INVALID
    return render_template(TEMPLATE, reason=None, form=form)


def _confirmed(user):
    if user.password_hash is None:
        hours = current_app.config["INVITATION_HOURS"]
        flash("Thank you: your new email address is confirmed. We have sent a fresh "
              f"invitation to it. Open it within {hours} hours to choose your password.",
              "success")
    elif current_user.is_authenticated and current_user.id == user.id:
        flash("Thank you: your new email address is confirmed. From now on, sign in with it. "
              "Other devices that were signed in to your account were signed out.", "success")
    else:
        flash("Thank you: your new email address is confirmed. From now on, sign in with it.",
              "success")
    return redirect(url_for("accounts.sign_in"))
