"""Sign-in, invitations, password resets, two-factor and account settings."""

import logging
import time
import uuid
from collections.abc import Callable

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user

from portal import hooks, practice
from portal.accounts import mfa, service, sessions
from portal.accounts.display import person_label
from portal.accounts.forms import (
    ChangePasswordForm,
    CodeForm,
    ConfirmPasswordForm,
    ForgotPasswordForm,
    InviteForm,
    LastServiceForm,
    MfaSetupForm,
    NewPasswordForm,
    ProfileForm,
    SignInForm,
)
from portal.accounts.identity import (
    email_of,
    find_by_email,
    legal_name_of,
    name_of,
    names_of,
    pronouns_by_id,
    pronouns_of,
)
from portal.accounts.models import Role, User
from portal.accounts.profile import Profile, update_profile
from portal.accounts.tokens import TokenProblem
from portal.after_response import after_response
from portal.audit.looks import clients_listed
from portal.crypto import email_index
from portal.errors import RuleError
from portal.extensions import limiter
from portal.forms import INVALID, EmptyForm, form_status, refuse, require_button
from portal.pages import allowed_before_consent, allowed_before_enrolment, public
from portal.security import role_required, safe_next

bp = Blueprint("accounts", __name__)
log = logging.getLogger("portal.accounts")

SIGNIN_FAILED = ("That email and password did not work. Check them and try again, "
                 "or reset your password.")
SIGNIN_PAUSED = ("Your password is right, but your portal access is paused at the moment, "
                 "so a new password would not help. Please call the practice at {phone} and "
                 "we will sort it out with you.")
PENDING_SECONDS = 300


def _account_key() -> str:
    email = request.form.get("email", "")
    return "acct:" + email_index(email).hex() if email else "acct:none"


def _ip_limit() -> str:
    return current_app.config["SIGNIN_RATE_PER_IP"]


def _account_limit() -> str:
    return current_app.config["SIGNIN_RATE_PER_ACCOUNT"]


def _pending_user() -> User | None:
    pending = session.get("mfa_pending")
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None
    return service.user_by_alt_id(pending.get("uid"))


def _after_signin(user: User, next_url: str | None):
    """Land a signed-in browser, and remember it (its device cookie) for the lockout."""
    login_user(user)
    if user.is_staff and not user.mfa_enabled:
        response = redirect(url_for("accounts.mfa_setup"))
    elif (user.role == Role.CLIENT and not user.mfa_enabled and not user.mfa_prompt_dismissed):
        response = redirect(url_for("accounts.mfa_offer"))
    else:
        response = redirect(safe_next(next_url) or url_for("main.home"))
    return sessions.remember_device(response, user)


def _remembered_here() -> bool:
    """Whether this browser has signed in to the account the form names (its device
    cookie): such a browser is not held back by the per-account rate limit either."""
    remembered = sessions.remembered_user_id()
    if remembered is None:
        return False
    user = find_by_email(request.form.get("email", ""))
    return user is not None and user.id == remembered


@bp.route("/sign-in", methods=["GET", "POST"])
@public
@allowed_before_consent
@limiter.limit(_ip_limit, methods=["POST"])
@limiter.limit(_account_limit, key_func=_account_key, methods=["POST"],
               exempt_when=_remembered_here)
def sign_in():
    """Sign in with email and password (then a code, when two-step sign-in is on)."""
    if current_user.is_authenticated:  # e.g. an idle tab whose session another tab kept
        return redirect(safe_next(request.args.get("next")) or url_for("main.home"))
    form = SignInForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next"))
    if form.validate_on_submit():
        result = service.authenticate(form.email.data, form.password.data,
                                      remembered_id=sessions.remembered_user_id())
        if result.status == "mfa":
            session.clear()
            session["mfa_pending"] = {"uid": result.user.alt_id, "at": time.time(),
                                      "next": safe_next(form.next.data)}
            return redirect(url_for("accounts.mfa_challenge"))
        if result.status == "ok":
            return _after_signin(result.user, form.next.data)
        form.password.errors = [SIGNIN_PAUSED.format(phone=practice.profile()["phone"])
                                if result.status == "paused" else SIGNIN_FAILED]
        form.password.data = ""
    reason = request.args.get("reason")
    return render_template("accounts/sign_in.html", form=form, reason=reason), form_status()


@bp.route("/sign-in/verify", methods=["GET", "POST"])
@public
@allowed_before_consent
@limiter.limit(_ip_limit, methods=["POST"])
def mfa_challenge():
    """Ask for the second factor after a correct password."""
    user = _pending_user()
    if user is None:
        flash("Please sign in again.", "info")
        return redirect(url_for("accounts.sign_in"))
    form = CodeForm()
    if form.validate_on_submit():
        next_url = session.get("mfa_pending", {}).get("next")
        result = service.verify_second_factor(user, form.code.data,
                                              remembered_id=sessions.remembered_user_id())
        if result.status == "ok":
            session.pop("mfa_pending", None)
            return _after_signin(user, next_url)
        form.code.errors = ["That code did not work. Enter the newest code from your app, "
                            "or one of your recovery codes."]
        form.code.data = ""
    return render_template("accounts/mfa_challenge.html", form=form), form_status()


@bp.route("/sign-out", methods=["POST"])
@allowed_before_enrolment
@allowed_before_consent
def sign_out():
    """Sign out: delete the server session and ask the browser to forget this site."""
    require_button()
    service.sign_out_this_browser(current_user._get_current_object())
    return sessions.forget_site_data(redirect(url_for("accounts.signed_out")))


@bp.route("/signed-out")
@public
@allowed_before_consent
def signed_out():
    """Confirm the sign-out."""
    return render_template("accounts/signed_out.html")


@bp.route("/keepalive", methods=["POST"])
@allowed_before_enrolment
@allowed_before_consent
def keepalive():
    """Extend the idle timer when the user chooses to stay signed in."""
    return ("", 204)


@bp.route("/quick-exit", methods=["POST"])
@allowed_before_enrolment
@allowed_before_consent
def quick_exit():
    """End this browser's session as Quick exit leaves (quick-exit.js sends a beacon).

    The CSRF token comes in the beacon's form body (CSRFProtect checks it before this runs);
    the answer is empty, as nobody reads it: the tab has already gone to the neutral site.
    """
    service.sign_out_this_browser(current_user._get_current_object())
    return sessions.forget_site_data(current_app.response_class(status=204))


# --- invitations and resets -------------------------------------------------------------

def _token_page(problem: TokenProblem, kind: str):
    return render_template("accounts/link_problem.html", reason=problem.reason, kind=kind), 410 \
        if problem.reason in ("expired", "used", "replaced", "withdrawn") else 404


@bp.route("/invitation/<token>")
@public
def invitation_link(token: str):
    """Check an invitation link, then continue on a URL without the token."""
    return _continue_without_token(token, "invitation", service.invitation_user,
                                   "accounts.accept_invitation")


def _continue_without_token(token: str, kind: str, check: Callable[[str], object],
                            endpoint: str, *, keep_session: bool = False):
    """Keep a live link's token in the session and redirect, so it leaves the address bar
    (and the history, and any Referer) before the form is shown.

    `keep_session`: a browser signed in stays signed in (a reset link signs nobody out
    until the new password is set)."""
    try:
        check(token)
    except TokenProblem as problem:
        return _token_page(problem, kind)
    if not keep_session:
        session.clear()
    session[kind] = token
    return redirect(url_for(endpoint))


def _password_from_link(kind: str, user_of: Callable[[str], User],
                        choose: Callable[[str, str], object]):
    """The choose-a-password page behind an invitation or reset link (token in the session).

    `choose(token, password)` sets the password and returns the answer; a refused password
    or a link that died meanwhile shows the form or the link problem again.
    """
    token = session.get(kind, "")
    try:
        user = user_of(token)
    except TokenProblem as problem:
        return _token_page(problem, kind)
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            return choose(token, form.password.data)
        except RuleError as error:
            refuse(form, error)
        except TokenProblem as problem:
            return _token_page(problem, kind)
    return render_template("accounts/set_password.html", form=form, first_name=name_of(user),
                           purpose=kind), form_status()


@bp.route("/invitation", methods=["GET", "POST"])
@public
def accept_invitation():
    """Choose a password from an invitation; lands signed in."""
    return _password_from_link("invitation", service.invitation_user, _invitation_accepted)


def _invitation_accepted(token: str, password: str):
    user = service.accept_invitation(token, password)
    session.pop("invitation", None)
    service.sign_in_invited(user)
    flash("Welcome. Your password is set and you are signed in.", "success")
    return _after_signin(user, None)


def _after_response(response, work: Callable[..., object], *args):
    """Run `work` once the response has gone out, so how long it takes cannot be timed.

    Used where the work happens only for some inputs (a reset mail goes only to a real
    account): doing it before answering would let anyone tell, by the clock, whether an
    address belongs to a client of the practice.
    """
    app = current_app._get_current_object()
    environ = dict(request.environ)  # same client address and agent for the audit trail

    def run() -> None:
        with app.request_context(environ):
            work(*args)

    return after_response(response, run, what="deferred account work")


@bp.route("/forgot-password", methods=["GET", "POST"])
@public
@limiter.limit(_ip_limit, methods=["POST"])
@limiter.limit(_account_limit, key_func=_account_key, methods=["POST"])
def forgot_password():
    """Send a reset link; the answer is the same whether or not the email has an account."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        response = redirect(url_for("accounts.forgot_password", sent=1))
        return _after_response(response, service.request_reset, form.email.data)
    if request.method == "GET" and request.args.get("sent"):
        return render_template("accounts/reset_sent.html",
                               minutes=current_app.config["RESET_MINUTES"])
    return render_template("accounts/forgot_password.html", form=form), form_status()


@bp.route("/reset/<token>")
@public
def reset_link(token: str):
    """Check a reset link, then continue on a URL without the token."""
    return _continue_without_token(token, "reset", service.reset_user, "accounts.reset_password",
                                   keep_session=True)


@bp.route("/reset", methods=["GET", "POST"])
@public
def reset_password():
    """Choose a new password from a reset link; every session of the account ends."""
    return _password_from_link("reset", service.reset_user, _password_reset)


def _password_reset(token: str, password: str):
    service.reset_password(token, password)
    service.sign_out_this_browser()
    flash("Your password is changed and you were signed out everywhere. "
          "Please sign in with your new password.", "success")
    return redirect(url_for("accounts.sign_in"))


# --- account settings ---------------------------------------------------------------------

def _profile_form(user: User, *, formdata=None) -> ProfileForm:
    """The "Your name and pronouns" form, filled from the account (staff fields for staff)."""
    form = ProfileForm(formdata=formdata, name=name_of(user), pronouns=pronouns_of(user),
                       credentials=user.credentials or "", reply_hours=user.reply_hours or "")
    if not user.is_staff:
        del form.credentials
        del form.reply_hours
    return form


@bp.route("/account")
def settings(profile_form: ProfileForm | None = None):
    """Show the name and pronouns, password, two-step sign-in, sessions and recent sign-in
    attempts (`profile_form`: the name form shown again with its errors)."""
    user = current_user._get_current_object()
    this_session = sessions.current()
    return render_template(
        "accounts/settings.html", user=user, name=name_of(user), email=email_of(user),
        profile_form=profile_form or _profile_form(user), legal_name=legal_name_of(user),
        pronouns=pronouns_of(user),
        sessions=service.active_sessions(user), this_session_id=this_session.id
        if this_session else None, attempts=service.recent_attempts(user),
        codes_left=mfa.recovery_codes_left(user) if user.mfa_enabled else 0,
        form=EmptyForm(), extra_sections=list(hooks.account_sections),
        device=sessions.describe_device)


@bp.route("/account/profile", methods=["POST"])
def update_my_profile():
    """Change the name they go by and their pronouns (staff: credentials, reply hours)."""
    user = current_user._get_current_object()
    form = _profile_form(user, formdata=request.form)
    if form.validate_on_submit():
        staff = user.is_staff
        try:
            changed = update_profile(user, user, Profile(
                name=form.name.data, pronouns=form.pronouns.data or "",
                credentials=(form.credentials.data or "") if staff else None,
                reply_hours=(form.reply_hours.data or "") if staff else None))
        except RuleError as error:
            refuse(form, error)
        else:
            flash("Your details are saved." if changed else "Nothing needed changing.",
                  "success")
            return redirect(url_for("accounts.settings", _anchor="name-h"))
    return settings(profile_form=form), INVALID


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    """Change the password (asks for the current one first)."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            service.change_password(current_user._get_current_object(),
                                    form.current_password.data, form.new_password.data)
        except RuleError as error:
            refuse(form, error)
        else:
            login_user(current_user._get_current_object())
            flash("Your password is changed. Other devices were signed out.", "success")
            return redirect(url_for("accounts.settings"))
    return render_template("accounts/change_password.html", form=form), form_status()


@bp.route("/account/two-factor/setup", methods=["GET", "POST"])
@allowed_before_enrolment
def mfa_setup():
    """Enrol an authenticator app: QR code, key as text, then prove it with a code."""
    user = current_user._get_current_object()
    if user.mfa_enabled:
        return redirect(url_for("accounts.settings"))
    form = MfaSetupForm()
    seed = mfa.open_pending_seed(user, session.get("mfa_seed"))
    if seed is None or (request.method == "GET" and not form.code.data):
        seed = seed or mfa.new_seed()
        session["mfa_seed"] = mfa.seal_pending_seed(user, seed)
    if form.validate_on_submit():
        try:
            codes = service.enable_mfa(user, seed, form.code.data,
                                       form.current_password.data)
        except RuleError as error:
            refuse(form, error)
        else:
            session.pop("mfa_seed", None)
            login_user(user)
            return render_template("accounts/recovery_codes.html", codes=codes, fresh=True)
    label = f"{current_app.config['PRACTICE']['name']} ({email_of(user)})"
    uri = mfa.provisioning_uri(seed, label)
    return render_template("accounts/mfa_setup.html", form=form, qr=mfa.qr_svg(uri),
                           key=mfa.format_key(seed), required=user.is_staff), form_status()


@bp.route("/account/two-factor/offer", methods=["GET", "POST"])
def mfa_offer():
    """Offer clients two-step sign-in after their first sign-in (they may say not now)."""
    if current_user.mfa_enabled:
        return redirect(url_for("main.home"))
    form = EmptyForm()
    if form.validate_on_submit():
        service.dismiss_mfa_prompt(current_user._get_current_object())
        return redirect(url_for("main.home"))
    return render_template("accounts/mfa_offer.html", form=form)


@bp.route("/account/two-factor/disable", methods=["GET", "POST"])
def mfa_disable():
    """Turn off two-step sign-in (clients only; asks for the password)."""
    form = ConfirmPasswordForm()
    if current_user.is_staff or not current_user.mfa_enabled:
        abort(404)
    if form.validate_on_submit():
        try:
            service.disable_mfa(current_user._get_current_object(), form.current_password.data)
        except RuleError as error:
            refuse(form, error)
        else:
            flash("Two-step sign-in is off.", "info")
            return redirect(url_for("accounts.settings"))
    return render_template("accounts/confirm_password.html", form=form,
                           title="Turn off two-step sign-in",
                           intro="Enter your password to turn off two-step sign-in.",
                           button="Turn off two-step sign-in"), form_status()


@bp.route("/account/two-factor/recovery-codes", methods=["GET", "POST"])
def recovery_codes():
    """Make ten new recovery codes (asks for the password; old codes stop working)."""
    form = ConfirmPasswordForm()
    if not current_user.mfa_enabled:
        abort(404)
    if form.validate_on_submit():
        try:
            codes = service.regenerate_recovery_codes(current_user._get_current_object(),
                                                      form.current_password.data)
        except RuleError as error:
            refuse(form, error)
        else:
            return render_template("accounts/recovery_codes.html", codes=codes, fresh=False)
    return render_template("accounts/confirm_password.html", form=form,
                           title="New recovery codes",
                           intro="Enter your password to make ten new recovery codes. "
                                 "Your old codes will stop working.",
                           button="Make new codes"), form_status()


@bp.route("/account/sessions/<uuid:session_id>/end", methods=["POST"])
def end_session(session_id: uuid.UUID):
    """End one of your own sessions."""
    require_button()
    user = current_user._get_current_object()
    current = sessions.current()
    if not service.end_session(user, session_id):
        abort(404)
    if current is not None and current.id == session_id:
        service.sign_out_this_browser()
        return redirect(url_for("accounts.signed_out"))
    flash("That session has ended.", "success")
    return redirect(url_for("accounts.settings"))


@bp.route("/account/sessions/end-all", methods=["POST"])
def sign_out_everywhere():
    """End every session of this account, this one included."""
    require_button()
    service.sign_out_everywhere(current_user._get_current_object())
    service.sign_out_this_browser()
    return sessions.forget_site_data(redirect(url_for("accounts.signed_out", everywhere=1)))


# --- therapists' clients ------------------------------------------------------------------

@bp.route("/clients")
@role_required("therapist")
def my_clients(refused: tuple[uuid.UUID, LastServiceForm] | None = None):
    """List the therapist's clients and let them invite a new one, and record each client's
    last date of service (`refused`: the client whose date was refused, and its form)."""
    clients = service.clients_of(current_user.id)
    names = names_of(clients)
    pronouns = pronouns_by_id(c.id for c in clients)
    labels = {c.id: person_label(names[c.id], pronouns.get(c.id, "")) for c in clients}
    clients_listed(current_user._get_current_object(), [c.id for c in clients])
    forms = {c.id: LastServiceForm(formdata=None, last_service_on=c.last_service_on)
             for c in clients}
    if refused is not None:
        forms[refused[0]] = refused[1]
    return render_template("accounts/my_clients.html", clients=clients, names=names,
                           labels=labels, service_forms=forms)


@bp.route("/clients/<uuid:client_id>/last-service", methods=["POST"])
@role_required("therapist")
def record_last_service(client_id: uuid.UUID):
    """Record the last date of service of one of the therapist's clients (else 404)."""
    client = next((c for c in service.clients_of(current_user.id) if c.id == client_id), None)
    if client is None:
        abort(404)
    form = LastServiceForm()
    if form.validate_on_submit():
        try:
            service.set_last_service_on(current_user._get_current_object(), client,
                                        form.last_service_on.data)
        except RuleError as error:
            refuse(form, error)
        else:
            flash("The last date of service is recorded.", "success")
            return redirect(url_for("accounts.my_clients"))
    return my_clients(refused=(client.id, form)), INVALID


@bp.route("/clients/invite", methods=["GET", "POST"])
@role_required("therapist")
def invite_client():
    """Invite a new client, assigned to this therapist."""
    form = InviteForm(role="client")
    del form.role
    del form.therapist
    if form.validate_on_submit():
        try:
            service.create_user(current_user._get_current_object(), role="client",
                                name=form.name.data, email=form.email.data)
        except RuleError as error:
            refuse(form, error)
        else:
            flash("Invitation sent. The link works for 72 hours.", "success")
            return redirect(url_for("accounts.my_clients"))
    return render_template("accounts/invite.html", form=form, staff=False), form_status()
