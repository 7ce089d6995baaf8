"""Admin screens. Admins manage accounts and assignments; they never see message content."""

import uuid

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import SelectChoice

from portal.accounts import email_change, service
from portal.accounts.forms import InviteForm, LastServiceForm
from portal.accounts.identity import (
    email_of,
    legal_name_of,
    name_of,
    names_by_id,
    names_of,
    pronouns_of,
)
from portal.accounts.models import Role, User
from portal.accounts.profile import Profile, update_profile
from portal.admin import service as admin_service
from portal.admin.forms import EmailForm, NamesForm
from portal.audit.looks import ACCOUNT_VIEWED, clients_listed, record_look
from portal.errors import RuleError
from portal.forms import INVALID, EmptyForm, form_status, refuse, require_button
from portal.messaging import handover
from portal.ops import holds, retention
from portal.ops.forms import HoldForm
from portal.security import role_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _user_or_404(user_id: uuid.UUID) -> User:
    user = admin_service.account(user_id)
    if user is None:
        abort(404)
    return user


@bp.route("/users")
@role_required("admin")
def users():
    """List every account with its role and state."""
    role = request.args.get("role")
    people, names = admin_service.people(role)
    clients_listed(_me(), _client_ids(people))  # each client named here, on their log
    return render_template("admin/users.html", people=people, names=names, role=role)


def _me() -> User:
    return current_user._get_current_object()


def _client_ids(people) -> list[uuid.UUID]:
    return [p.id for p in people if p.role == Role.CLIENT]


def _looked_at(person: User, others=()) -> None:
    """An admin page about one account: a client's is a look at their account; a therapist's
    names their clients, each a look in a list (see `portal.audit.looks`)."""
    if person.role == Role.CLIENT:
        record_look(_me(), ACCOUNT_VIEWED, person.id, target=("user", person.id))
    else:
        clients_listed(_me(), _client_ids(others))


@bp.route("/users/invite", methods=["GET", "POST"])
@role_required("admin")
def invite():
    """Create an account and email its invitation."""
    form = InviteForm()
    form.therapist.choices = [SelectChoice(value, label) for value, label
                              in [("", "— none yet —"), *admin_service.therapist_choices()]]
    if form.validate_on_submit():
        therapist_ids = []
        if form.role.data == "client" and form.therapist.data:
            try:
                therapist_ids = [uuid.UUID(form.therapist.data)]
            except ValueError:
                form.therapist.errors = ["Choose a therapist from the list."]
        if not form.therapist.errors:
            try:
                user, _ = service.create_user(current_user._get_current_object(),
                                              role=form.role.data, name=form.name.data,
                                              email=form.email.data,
                                              therapist_ids=therapist_ids)
            except RuleError as error:
                refuse(form, error)
            else:
                flash("Invitation sent. The link works for 72 hours.", "success")
                return redirect(url_for("admin.user", user_id=user.id))
    return render_template("accounts/invite.html", form=form, staff=True), form_status()


@bp.route("/users/<uuid:user_id>")
@role_required("admin")
def user(user_id: uuid.UUID, service_form=None, hold_form=None, names_form=None,
         email_form=None):
    """Show one account: state, corrections of names and email, assignments and actions (a
    client's record keeping; a refused form when one is given)."""
    person = _user_or_404(user_id)
    therapists = service.therapists_of(person.id) if person.role == Role.CLIENT else []
    clients = service.clients_of(person.id) if person.role == Role.THERAPIST else []
    names = names_of([person, *therapists, *clients])
    assigned = {str(t.id) for t in therapists}
    choices = [(value, label) for value, label in admin_service.therapist_choices()
               if value not in assigned]
    _looked_at(person, clients)
    return render_template("admin/user.html", person=person, names=names,
                           email=email_of(person), therapists=therapists, clients=clients,
                           therapist_choices=choices, form=EmptyForm(),
                           **_corrections(person, names_form, email_form),
                           **_record_keeping(person, names, service_form, hold_form))


def _fit(form: NamesForm, person: User) -> NamesForm:
    """Keep the parts of a person's names their role has: a legal name is a client's,
    credentials and reply hours are staff's."""
    if person.role != Role.CLIENT:
        del form.legal_name
    if not person.is_staff:
        del form.credentials
        del form.reply_hours
    return form


def _corrections(person: User, names_form: NamesForm | None,
                 email_form: EmailForm | None) -> dict:
    """The forms that correct a person's names and email, and an email change waiting."""
    if names_form is None:
        names_form = _fit(NamesForm(formdata=None, name=name_of(person),
                                    pronouns=pronouns_of(person),
                                    legal_name=legal_name_of(person),
                                    credentials=person.credentials or "",
                                    reply_hours=person.reply_hours or ""), person)
    return {"names_form": names_form, "email_form": email_form or EmailForm(formdata=None),
            "pending": email_change.pending_change(person)}


@bp.route("/users/<uuid:user_id>/names", methods=["POST"])
@role_required("admin")
def correct_names(user_id: uuid.UUID):
    """Correct how a person is named (audited per part, ids only)."""
    person = _user_or_404(user_id)
    form = _fit(NamesForm(), person)
    if form.validate_on_submit():
        def given(name: str) -> str | None:
            return form[name].data if name in form else None

        try:
            changed = update_profile(_me(), person, Profile(
                name=form.name.data, pronouns=form.pronouns.data,
                legal_name=given("legal_name"), credentials=given("credentials"),
                reply_hours=given("reply_hours")))
        except RuleError as error:
            refuse(form, error)
        else:
            if changed:
                flash("The changes are saved.", "success")
            else:
                flash("Nothing needed changing: the details were already like that.", "info")
            return redirect(url_for("admin.user", user_id=person.id))
    return user(person.id, names_form=form), INVALID


@bp.route("/users/<uuid:user_id>/email", methods=["POST"])
@role_required("admin")
def change_email(user_id: uuid.UUID):
    """Start a correction of a person's email: the new address gets a link to confirm it,
    the old one is told without a link; nothing changes until the link is followed."""
    person = _user_or_404(user_id)
    form = EmailForm()
    return _person_form(
        person, form, "email_form",
        lambda: email_change.request_email_change(_me(), person, form.email.data),
        "We sent a confirmation link to the new address; it works for "
        f"{email_change.LINK_HOURS} hours. Until it is followed, they keep signing in with "
        "their current address.")


def _person_form(person: User, form, name: str, act, done: str):
    """A form on the person page: when it is valid, `act()`, flash `done` and go back to the
    page; otherwise (or when a rule refuses) show the page again with the errors on the form,
    which the page takes as its keyword `name`."""
    if form.validate_on_submit():
        try:
            act()
        except RuleError as error:
            refuse(form, error)
        else:
            flash(done, "success")
            return redirect(url_for("admin.user", user_id=person.id))
    return user(person.id, **{name: form}), INVALID


@bp.route("/users/<uuid:user_id>/email/cancel", methods=["POST"])
@role_required("admin")
def cancel_email_change(user_id: uuid.UUID):
    """Cancel an email change that is waiting (its link stops working)."""
    actor = _me()
    return _action(user_id, lambda person: email_change.cancel_email_change(actor, person),
                   "The email change is cancelled; its link no longer works.",
                   "There was no email change waiting.")


def _record_keeping(person: User, names: dict, service_form: LastServiceForm | None,
                    hold_form: HoldForm | None) -> dict:
    """A client's record keeping on their page: the last date of service, legal holds and
    their history (who placed and released each, named in `names`)."""
    if person.role != Role.CLIENT:
        return {}
    hold_history = holds.history(person.id)
    staff = {i for h in hold_history for i in (h.placed_by_id, h.released_by_id) if i}
    names.update(names_by_id(staff - set(names)))
    return {"service_form": service_form or LastServiceForm(
                formdata=None, last_service_on=person.last_service_on),
            "hold_form": hold_form or HoldForm(formdata=None),
            "holds": hold_history, "hold_reasons": holds.REASON_LABELS,
            "retention_years": retention.retention_years()}


def _client_or_404(user_id: uuid.UUID) -> User:
    person = _user_or_404(user_id)
    if person.role != Role.CLIENT:
        abort(404)
    return person


@bp.route("/users/<uuid:user_id>/last-service", methods=["POST"])
@role_required("admin")
def last_service(user_id: uuid.UUID):
    """Record a client's last date of service: the retention clock may start from it."""
    person = _client_or_404(user_id)
    form = LastServiceForm()
    return _person_form(
        person, form, "service_form",
        lambda: service.set_last_service_on(_me(), person, form.last_service_on.data),
        "The last date of service is recorded.")


@bp.route("/users/<uuid:user_id>/holds", methods=["POST"])
@role_required("admin")
def place_hold(user_id: uuid.UUID):
    """Place a legal hold on a client's record: no retention purge while it is open."""
    person = _client_or_404(user_id)
    form = HoldForm()
    return _person_form(
        person, form, "hold_form", lambda: holds.place(_me(), person, form.reason.data),
        "The record is on legal hold: the retention purge leaves it alone until the hold is "
        "released.")


@bp.route("/users/<uuid:user_id>/holds/<uuid:hold_id>/release", methods=["POST"])
@role_required("admin")
def release_hold(user_id: uuid.UUID, hold_id: uuid.UUID):
    """Release a legal hold (it stays in the record's history of holds)."""
    require_button()
    person = _client_or_404(user_id)
    if hold_id not in {h.id for h in holds.history(person.id)}:
        abort(404)
    try:
        holds.release(current_user._get_current_object(), person, hold_id)
    except RuleError as error:
        flash(error.message, "info")
    else:
        flash("The hold is released. The record follows the retention period again.",
              "success")
    return redirect(url_for("admin.user", user_id=person.id))


def _action(user_id: uuid.UUID, action, message: str, nothing_done: str | None = None):
    """Run a button-only action on an account, flash its outcome and go back to the account.

    An action that returns False changed nothing; `nothing_done` then says so, so the admin
    is never told something happened when it did not.
    """
    require_button()
    person = _user_or_404(user_id)
    try:
        outcome = action(person)
    except RuleError as error:
        flash(error.message, "error")
    else:
        if outcome is False and nothing_done:
            flash(nothing_done, "info")
        else:
            flash(message, "success")
    return redirect(url_for("admin.user", user_id=person.id))


# The account page's plain buttons: endpoint, path, what it does (given the admin and the
# account), what the admin is told, and the view's docstring. One view each, same endpoints.
BUTTONS = (
    # The page's Deactivate link goes to `confirm_deactivate` (a client's reason, a therapist's
    # handovers); this plain POST still works, with a reason for a client, and the care checks
    # refuse it for a therapist who still has conversations.
    ("deactivate", "deactivate",
     lambda actor, p: service.set_active(actor, p, False, reason=request.form.get("reason")),
     "The account is deactivated and signed out everywhere.",
     "Deactivate an account and end its sessions."),
    ("reactivate", "reactivate", lambda actor, p: service.set_active(actor, p, True),
     "The account is active again.", "Reactivate an account."),
    ("resend", "resend", service.resend_invitation,
     "A new invitation is on its way; earlier links no longer work.",
     "Send a fresh invitation link."),
    ("reset_mfa", "reset-2fa", service.admin_reset_mfa,
     "Two-step sign-in was reset. They will set it up again at next sign-in.",
     "Clear someone's two-step sign-in after they lost their phone (audited)."),
)


def _button_view(endpoint: str, path: str, act, message: str, doc: str) -> None:
    def view(user_id: uuid.UUID):
        actor = current_user._get_current_object()
        return _action(user_id, lambda person: act(actor, person), message)

    view.__name__, view.__doc__ = endpoint, doc
    bp.add_url_rule(f"/users/<uuid:user_id>/{path}", endpoint, role_required("admin")(view),
                    methods=["POST"])


for _button in BUTTONS:
    _button_view(*_button)


@bp.route("/users/<uuid:user_id>/assign", methods=["POST"])
@role_required("admin")
def assign(user_id: uuid.UUID):
    """Assign a therapist to a client."""
    actor = current_user._get_current_object()
    try:
        therapist_id = uuid.UUID(request.form.get("therapist", ""))
    except ValueError:
        therapist_id = uuid.UUID(int=0)
    return _action(user_id, lambda p: service.assign(actor, p, therapist_id),
                   "Therapist assigned.")


NOT_ASSIGNED = "That therapist was not assigned to this client."


def _chosen(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value or "")
    except ValueError:
        return None


def _posted() -> bool:
    """A POST with a good CSRF token (400 otherwise); False for a GET."""
    if request.method != "POST":
        return False
    require_button()
    return True


@bp.route("/users/<uuid:user_id>/unassign/<uuid:therapist_id>", methods=["GET", "POST"])
@role_required("admin")
def unassign(user_id: uuid.UUID, therapist_id: uuid.UUID):
    """Remove a therapist from a client: first what is at stake, and who takes the client's
    conversations over (a plain confirmation when there are none)."""
    person, leaving = _user_or_404(user_id), _user_or_404(therapist_id)
    if person.role != Role.CLIENT or leaving.role != Role.THERAPIST:
        abort(404)
    posted = _posted()
    at_stake = handover.stakes(person, leaving.id)
    if not at_stake.conversations and leaving not in service.therapists_of(person.id):
        flash(NOT_ASSIGNED, "info")
        return redirect(url_for("admin.user", user_id=person.id))
    choices = handover.candidates(person, leaving.id) if at_stake.conversations else []
    chosen, error = request.form.get("therapist", ""), None
    if posted:
        target = _chosen(chosen)
        if at_stake.conversations and target not in {c.id for c in choices}:
            error = ("Choose who takes over these conversations; nothing was changed."
                     if not chosen else "Choose a therapist from the list; nothing was changed.")
        else:
            try:
                done = handover.hand_over(current_user._get_current_object(), person,
                                          leaving.id, target)
            except RuleError as refused:
                error = refused.message
            else:
                if not done.moved and not done.unassigned:
                    flash(NOT_ASSIGNED, "info")
                elif done.moved:
                    names = names_of([admin_service.account(target)])
                    flash(f"Assignment removed. {done.moved} conversation"
                          f"{'s are' if done.moved != 1 else ' is'} now with "
                          f"{names[target]}, who has been told by email.", "success")
                else:
                    flash("Assignment removed.", "success")
                return redirect(url_for("admin.user", user_id=person.id))
    names = names_of([person, leaving])
    estimates = admin_service.estimates_in_progress([person.id], leaving.id).get(person.id, 0)
    _looked_at(person)
    return render_template("admin/handover.html", person=person, leaving=leaving, names=names,
                           stakes=at_stake, estimates=estimates, choices=choices,
                           groups=handover.GROUP_LABELS, chosen=chosen, error=error,
                           form=EmptyForm()), INVALID if error else 200


@bp.route("/users/<uuid:user_id>/deactivate/confirm", methods=["GET", "POST"])
@role_required("admin")
def confirm_deactivate(user_id: uuid.UUID):
    """Deactivate an account after confirming: a client's with a reason, a therapist's after
    choosing who takes over each client's conversations."""
    person = _user_or_404(user_id)
    if not person.active:
        flash("This account is already deactivated.", "info")
        return redirect(url_for("admin.user", user_id=person.id))
    posted = _posted()
    actor = current_user._get_current_object()
    errors: dict[str, str] = {}
    error = None
    at_stake: dict = {}
    clients, choices, chosen, estimates = [], {}, {}, {}
    if person.role == Role.THERAPIST:
        at_stake = handover.therapist_stakes(person)
        clients = [admin_service.account(client_id) for client_id in at_stake]
        choices = {c.id: handover.candidates(c, person.id) for c in clients}
        chosen = {c.id: request.form.get(f"target-{c.id}", "") for c in clients}
        estimates = admin_service.estimates_in_progress(list(at_stake), person.id)
    reason = request.form.get("reason", "")
    if posted:
        try:
            if person.role == Role.THERAPIST:
                targets = {}
                for c in clients:
                    target = _chosen(chosen[c.id])
                    if target in {option.id for option in choices[c.id]}:
                        targets[c.id] = target
                    else:
                        errors[str(c.id)] = "Choose who takes over these conversations."
                if errors:
                    raise RuleError("Choose who takes over each client's conversations; "
                                    "nothing was changed.")
                handover.deactivate_therapist(actor, person, targets)
            else:
                service.set_active(actor, person, False, reason=reason or None)
        except handover.MissingTargets as refused:
            for client_id in refused.client_ids:
                errors[str(client_id)] = "Choose who takes over these conversations."
            error = refused.message
        except RuleError as refused:
            if refused.field == "reason":
                errors["reason"] = refused.message
            else:
                error = refused.message
        else:
            flash("The account is deactivated and signed out everywhere."
                  + (" Each client's conversations were handed over." if clients else ""),
                  "success")
            return redirect(url_for("admin.user", user_id=person.id))
    names = names_of([person, *clients])
    unassisted = ([c for c in service.clients_of(person.id) if c.id not in at_stake]
                  if person.role == Role.THERAPIST else [])
    _looked_at(person, clients)
    return render_template("admin/deactivate.html", person=person, names=names,
                           clients=clients, stakes=at_stake, choices=choices, chosen=chosen,
                           estimates=estimates, groups=handover.GROUP_LABELS,
                           reasons=service.DEACTIVATION_REASONS, reason=reason,
                           without_conversations=len(unassisted), errors=errors, error=error,
                           form=EmptyForm()), INVALID if (error or errors) else 200


@bp.route("/covering")
@role_required("admin")
def covering():
    """Name the therapists who are covering clinicians (on call) for the practice."""
    therapists, names = admin_service.people("therapist")
    return render_template("admin/covering.html", form=EmptyForm(), names=names,
                           therapists=[t for t in therapists if t.active or t.covering])


@bp.route("/covering/<uuid:user_id>", methods=["POST"])
@role_required("admin")
def set_covering(user_id: uuid.UUID):
    """Make a therapist a covering clinician, or stop (audited; refused if it would leave a
    conversation written to the practice with nobody to read it)."""
    require_button()
    person = _user_or_404(user_id)
    wanted = request.form.get("covering") == "1"
    try:
        service.set_covering(current_user._get_current_object(), person, wanted)
    except RuleError as error:
        flash(error.message, "error")
    else:
        flash("They are now a covering clinician: they read and answer what clients write to "
              "the practice." if wanted else "They are no longer a covering clinician.",
              "success")
    return redirect(url_for("admin.covering"))


@bp.route("/audit", methods=["GET", "POST"])
@role_required("admin")
def audit():
    """Show the latest events (ids only, no content); check the whole chain when asked.

    Walking the chain costs time in proportion to the whole trail, so a visit does not; the
    "Check the chain now" button (a POST) does, and its result is shown with the events.
    """
    form = EmptyForm()
    result = admin_service.check_chain() if form.validate_on_submit() else None
    if request.method == "POST" and result is None:
        abort(400)
    return render_template("admin/audit.html", result=result, form=form,
                           events=admin_service.recent_events())
