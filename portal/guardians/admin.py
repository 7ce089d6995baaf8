"""The administrator's screens for a minor client and their parents or guardians.

A client's "Minor and guardians" page: their date of birth and who consented to treatment
(Act 147 of 2004), the guardians linked to them (link an existing account, invite a new one,
unlink after a confirmation), and the history of links. A guardian account's page lists the
minors it is or was linked to. Administrators only; every page that shows a client records
the look on the client's access log.
"""

import uuid

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import SelectChoice

from portal.accounts.identity import email_of, names_by_id
from portal.accounts.models import Role, User
from portal.audit.catalogue import declare
from portal.audit.looks import clients_listed, record_look
from portal.errors import RuleError
from portal.extensions import db
from portal.forms import EmptyForm, form_status, refuse, require_button
from portal.guardians import links
from portal.guardians.forms import CONSENT_LABELS, GuardianInviteForm, LinkForm, MinorForm
from portal.guardians.models import Guardianship
from portal.guardians.status import minor_status
from portal.guardians.views import bp
from portal.security import role_required

MINOR_VIEWED = "client.minor_viewed"
declare(MINOR_VIEWED, "Opened your details as a minor (your date of birth, who consented to "
                      "your treatment) and your parents or guardians")

END_WORDS = {"turned_18": "ended: turned 18", "unlinked": "ended: unlinked",
             "no_longer_minor": "ended: no longer recorded as a minor"}


def _me() -> User:
    return current_user._get_current_object()


def _person_or_404(user_id: uuid.UUID, role: Role) -> User:
    person = db.session.get(User, user_id)
    if person is None or person.role != role:
        abort(404)
    return person


def _link_or_404(client: User, link_id: uuid.UUID) -> Guardianship:
    row = db.session.get(Guardianship, link_id)
    if row is None or row.minor_id != client.id:
        abort(404)
    return row


def _choices(client: User) -> list[SelectChoice]:
    """Active guardian accounts not linked to this minor now, by name."""
    linked = {r.guardian_id for r in links.guardians_of(client.id)}
    found = [g for g in links.guardian_accounts() if g.id not in linked]
    names = names_by_id({g.id for g in found}) if found else {}
    options = sorted(((str(g.id), f"{names.get(g.id, 'Unnamed')} ({email_of(g)})")
                      for g in found), key=lambda pair: pair[1].casefold())
    return [SelectChoice(value, label) for value, label in [("", "— choose —"), *options]]


def _page(client: User, *, minor_form=None, link_form=None, invite_form=None):
    """The client's "Minor and guardians" page (with a refused form when one is given)."""
    minor = links.minor_of(client.id)
    born = links.date_of_birth(minor) if minor is not None else None
    history = links.links_history(client.id)
    live = links.live_ids(history)
    people = {client.id, *(r.guardian_id for r in history),
              *(i for r in history for i in (r.created_by_id, r.ended_by_id) if i)}
    names = names_by_id(people)
    if minor_form is None:
        minor_form = MinorForm(formdata=None, date_of_birth=born,
                               consent_by=minor.consent_by if minor else None)
    link_form = link_form or LinkForm(formdata=None)
    link_form.guardian.choices = _choices(client)
    record_look(_me(), MINOR_VIEWED, client.id, target=("user", client.id))
    return render_template(
        "guardians/admin_minor.html", client=client, names=names, minor=minor, born=born,
        status=minor_status(client.id), history=history, live=live, end_words=END_WORDS,
        consent_labels=CONSENT_LABELS, minor_form=minor_form, link_form=link_form,
        invite_form=invite_form or GuardianInviteForm(formdata=None),
        form=EmptyForm()), form_status()


@bp.route("/admin/users/<uuid:user_id>/minor", methods=["GET", "POST"])
@role_required("admin")
def admin_minor(user_id: uuid.UUID):
    """A client's details as a minor and their parents or guardians; saves the details."""
    client = _person_or_404(user_id, Role.CLIENT)
    form = None
    if request.method == "POST":
        form = MinorForm()
        if form.validate_on_submit():
            try:
                links.record_minor(_me(), client, born=form.date_of_birth.data,
                                   consent_by=form.consent_by.data)
            except RuleError as error:
                refuse(form, error)
            else:
                flash("The details are saved.", "success")
                return redirect(url_for("guardians.admin_minor", user_id=client.id))
    return _page(client, minor_form=form)


@bp.route("/admin/users/<uuid:user_id>/minor/link", methods=["POST"])
@role_required("admin")
def admin_link(user_id: uuid.UUID):
    """Link an existing parent or guardian account to this minor."""
    client = _person_or_404(user_id, Role.CLIENT)
    form = LinkForm()
    form.guardian.choices = _choices(client)
    if form.validate_on_submit():
        guardian = _chosen_guardian(form.guardian.data)
        if guardian is None:
            form.guardian.errors = ["Choose a parent or guardian account from the list."]
        else:
            try:
                links.link(_me(), guardian, client)
            except RuleError as error:
                refuse(form, error)
            else:
                flash("The parent or guardian is linked.", "success")
                return redirect(url_for("guardians.admin_minor", user_id=client.id))
    return _page(client, link_form=form)


def _chosen_guardian(value: str | None) -> User | None:
    try:
        guardian = db.session.get(User, uuid.UUID(value or ""))
    except ValueError:
        return None
    return guardian if guardian is not None and guardian.role == Role.GUARDIAN else None


@bp.route("/admin/users/<uuid:user_id>/minor/invite", methods=["POST"])
@role_required("admin")
def admin_invite(user_id: uuid.UUID):
    """Invite a new parent or guardian (their own account) and link them to this minor."""
    client = _person_or_404(user_id, Role.CLIENT)
    form = GuardianInviteForm()
    if form.validate_on_submit():
        try:
            links.invite_guardian(_me(), client, name=form.name.data, email=form.email.data)
        except RuleError as error:
            refuse(form, error)
        else:
            flash("Invitation sent and the parent or guardian is linked. The link works for "
                  "72 hours.", "success")
            return redirect(url_for("guardians.admin_minor", user_id=client.id))
    return _page(client, invite_form=form)


@bp.route("/admin/users/<uuid:user_id>/minor/links/<uuid:link_id>/unlink",
          methods=["GET", "POST"])
@role_required("admin")
def admin_unlink(user_id: uuid.UUID, link_id: uuid.UUID):
    """End a guardian's link to this minor, after a confirmation (kept in the history)."""
    client = _person_or_404(user_id, Role.CLIENT)
    row = _link_or_404(client, link_id)
    if request.method == "POST":
        require_button()
        try:
            links.unlink(_me(), row)
        except RuleError as error:
            flash(error.message, "info")
        else:
            flash("The link has ended. It stays in the history.", "success")
        return redirect(url_for("guardians.admin_minor", user_id=client.id))
    if row.ended_at is not None:
        flash("This link has already ended.", "info")
        return redirect(url_for("guardians.admin_minor", user_id=client.id))
    names = names_by_id({client.id, row.guardian_id})
    record_look(_me(), MINOR_VIEWED, client.id, target=("user", client.id))
    return render_template("guardians/admin_unlink.html", client=client, row=row,
                           names=names, form=EmptyForm())


@bp.route("/admin/users/<uuid:user_id>/minors")
@role_required("admin")
def admin_minors_of(user_id: uuid.UUID):
    """The minors a guardian account is or was linked to (live and ended)."""
    guardian = _person_or_404(user_id, Role.GUARDIAN)
    rows = links.links_of_guardian(guardian.id)
    live = links.live_ids(rows)
    names = names_by_id({guardian.id, *(r.minor_id for r in rows)})
    clients_listed(_me(), list(dict.fromkeys(r.minor_id for r in rows)))
    return render_template("guardians/admin_minors_of.html", guardian=guardian, rows=rows,
                           live=live, names=names, end_words=END_WORDS)
