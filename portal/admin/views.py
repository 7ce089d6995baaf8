"""Admin screens. Admins manage accounts and assignments; they never see message content."""

import uuid

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from wtforms import SelectChoice

from portal.accounts import service
from portal.accounts.forms import EmptyForm, InviteForm
from portal.accounts.identity import email_of, names_of
from portal.accounts.models import Role, User
from portal.audit import verify
from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.security import role_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _user_or_404(user_id: uuid.UUID) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


def _therapist_choices() -> list[tuple[str, str]]:
    therapists = list(db.session.scalars(select(User).where(User.role == Role.THERAPIST,
                                                            User.active.is_(True))))
    names = names_of(therapists)
    return [("", "— none yet —"),
            *sorted(((str(t.id), names[t.id]) for t in therapists),
                    key=lambda pair: pair[1].casefold())]


@bp.route("/users")
@role_required("admin")
def users():
    """List every account with its role and state."""
    people = list(db.session.scalars(select(User).order_by(User.role, User.created_at)))
    names = names_of(people)
    role = request.args.get("role")
    if role in set(Role):
        people = [p for p in people if p.role == role]
    people.sort(key=lambda p: (p.role, names[p.id].casefold()))
    return render_template("admin/users.html", people=people, names=names, role=role)


@bp.route("/users/invite", methods=["GET", "POST"])
@role_required("admin")
def invite():
    """Create an account and email its invitation."""
    form = InviteForm()
    form.therapist.choices = [SelectChoice(value, label) for value, label in _therapist_choices()]
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
            except service.AccountError as error:
                getattr(form, error.field or "email").errors = [error.message]
            else:
                flash("Invitation sent. The link works for 72 hours.", "success")
                return redirect(url_for("admin.user", user_id=user.id))
    return render_template("accounts/invite.html", form=form, staff=True)


@bp.route("/users/<uuid:user_id>")
@role_required("admin")
def user(user_id: uuid.UUID):
    """Show one account: state, assignments and actions."""
    person = _user_or_404(user_id)
    therapists = service.therapists_of(person.id) if person.role == Role.CLIENT else []
    clients = service.clients_of(person.id) if person.role == Role.THERAPIST else []
    names = names_of([person, *therapists, *clients])
    assigned = {str(t.id) for t in therapists}
    choices = [(value, label) for value, label in _therapist_choices()[1:]
               if value not in assigned]
    return render_template("admin/user.html", person=person, names=names,
                           email=email_of(person), therapists=therapists, clients=clients,
                           therapist_choices=choices, form=EmptyForm())


def _action(user_id: uuid.UUID, action, message: str, nothing_done: str | None = None):
    """Run a button-only action on an account, flash its outcome and go back to the account.

    An action that returns False changed nothing; `nothing_done` then says so, so the admin
    is never told something happened when it did not.
    """
    if not EmptyForm().validate_on_submit():
        abort(400)
    person = _user_or_404(user_id)
    try:
        outcome = action(person)
    except service.AccountError as error:
        flash(error.message, "error")
    else:
        if outcome is False and nothing_done:
            flash(nothing_done, "info")
        else:
            flash(message, "success")
    return redirect(url_for("admin.user", user_id=person.id))


@bp.route("/users/<uuid:user_id>/deactivate", methods=["POST"])
@role_required("admin")
def deactivate(user_id: uuid.UUID):
    """Deactivate an account and end its sessions."""
    actor = current_user._get_current_object()
    return _action(user_id, lambda p: service.set_active(actor, p, False),
                   "The account is deactivated and signed out everywhere.")


@bp.route("/users/<uuid:user_id>/reactivate", methods=["POST"])
@role_required("admin")
def reactivate(user_id: uuid.UUID):
    """Reactivate an account."""
    actor = current_user._get_current_object()
    return _action(user_id, lambda p: service.set_active(actor, p, True),
                   "The account is active again.")


@bp.route("/users/<uuid:user_id>/resend", methods=["POST"])
@role_required("admin")
def resend(user_id: uuid.UUID):
    """Send a fresh invitation link."""
    actor = current_user._get_current_object()
    return _action(user_id, lambda p: service.resend_invitation(actor, p),
                   "A new invitation is on its way; earlier links no longer work.")


@bp.route("/users/<uuid:user_id>/reset-2fa", methods=["POST"])
@role_required("admin")
def reset_mfa(user_id: uuid.UUID):
    """Clear someone's two-step sign-in after they lost their phone (audited)."""
    actor = current_user._get_current_object()
    return _action(user_id, lambda p: service.admin_reset_mfa(actor, p),
                   "Two-step sign-in was reset. They will set it up again at next sign-in.")


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


@bp.route("/users/<uuid:user_id>/unassign/<uuid:therapist_id>", methods=["POST"])
@role_required("admin")
def unassign(user_id: uuid.UUID, therapist_id: uuid.UUID):
    """Remove a therapist from a client."""
    actor = current_user._get_current_object()
    return _action(user_id, lambda p: service.unassign(actor, p, therapist_id),
                   "Assignment removed.",
                   nothing_done="That therapist was not assigned to this client.")


@bp.route("/audit")
@role_required("admin")
def audit():
    """Show the chain's state and the latest events (ids only, no content)."""
    result = verify()
    events = list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())
                                     .limit(100)))
    return render_template("admin/audit.html", result=result, events=events)
