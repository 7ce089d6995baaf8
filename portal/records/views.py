"""The client's own record: pages for the export, requests and disclosures."""

import uuid

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal import practice
from portal.accounts.display import person_label
from portal.accounts.identity import names_by_id, pronouns_of
from portal.accounts.models import Role
from portal.audit.looks import clients_listed, record_look
from portal.errors import RuleError
from portal.forms import form_status, refuse, require_button
from portal.pages import read_only
from portal.records import access, disclosures, requests
from portal.records.forms import (
    DisclosureForm,
    FulfilForm,
    ReasonForm,
    RequestForm,
    StaffRequestForm,
)
from portal.security import role_required

bp = Blueprint("records", __name__, url_prefix="/record")


# --- requests for a copy or an amendment, disclosures (portal.records.requests, .disclosures)

ACCOUNT_SECTION = "records/disclosures_account_section.html"
REQUESTS_PANEL = "records/requests_dashboard_panel.html"
REQUEST_VIEWED = "record_request.viewed"
RECORD_VIEWED = "record_request.listed"


def _me():
    return current_user._get_current_object()


@bp.app_template_global("record_disclosures")
def record_disclosures(user) -> list:
    """The Account page's accounting of disclosures: the client's last six years."""
    if user is None or user.role != Role.CLIENT:
        return []
    return disclosures.for_client(user.id)


@bp.app_template_global("record_requests_open")
def record_requests_open(user) -> list:
    """The Account page's open requests of this client."""
    if user is None or user.role != Role.CLIENT:
        return []
    return [r for r in requests.requests_of(user.id) if r.is_open]


@bp.route("/requests", methods=["GET", "POST"])
@role_required("client")
def requests_page():
    """The client's requests for a copy or an amendment, and the form to make one."""
    me = _me()
    form = RequestForm()
    if form.validate_on_submit():
        try:
            made = requests.make(me, me, form.kind.data, form.details.data)
        except RuleError as error:
            refuse(form, error)
        else:
            flash("Thank you. Your request is recorded and the practice will answer by "
                  f"{made.due_on:%B} {made.due_on.day}, {made.due_on.year}.", "success")
            return redirect(url_for("records.request_show", request_id=made.id))
    return render_template("records/requests.html", form=form,
                           found=requests.requests_of(me.id), days=requests.DAYS_TO_ACT,
                           extension_days=requests.EXTENSION_DAYS), form_status()


def _request_page(found, *, extend_form=None, fulfil_form=None, deny_form=None):
    me = _me()
    shown = requests.view_of(found)
    names = names_by_id({i for i in (shown.client_id, shown.recorded_by_id,
                                     shown.extended_by_id, shown.closed_by_id) if i})
    record_look(me, REQUEST_VIEWED, found.client_id, ("record_request", found.id))
    return render_template(
        "records/requests_show.html", found=shown, names=names,
        extend_form=extend_form or ReasonForm(formdata=None),
        fulfil_form=fulfil_form or FulfilForm(formdata=None),
        deny_form=deny_form or ReasonForm(formdata=None, prefix="deny"),
        extension_days=requests.EXTENSION_DAYS), form_status()


@bp.route("/requests/<uuid:request_id>")
@read_only
def request_show(request_id: uuid.UUID):
    """One request: its status and deadline; for an administrator, what can be done."""
    return _request_page(access.request_for(_me(), request_id))


@bp.route("/requests/<uuid:request_id>/withdraw", methods=["POST"])
@role_required("client")
def request_withdraw(request_id: uuid.UUID):
    found = access.request_for(_me(), request_id)
    require_button()
    try:
        requests.withdraw(_me(), found)
    except RuleError as error:
        flash(error.message, "error")
    else:
        flash("Your request is withdrawn. You can make a new one at any time.", "success")
    return redirect(url_for("records.request_show", request_id=found.id))


def _staff_action(request_id: uuid.UUID, form, act, message: str, key: str):
    found = access.request_for(_me(), request_id)
    if form.validate_on_submit():
        try:
            act(found, form)
        except RuleError as error:
            refuse(form, error)
        else:
            flash(message, "success")
            return redirect(url_for("records.request_show", request_id=found.id))
    return _request_page(found, **{key: form})


@bp.route("/requests/<uuid:request_id>/extend", methods=["POST"])
@role_required("admin")
def request_extend(request_id: uuid.UUID):
    return _staff_action(request_id, ReasonForm(),
                         lambda found, form: requests.extend(_me(), found, form.reason.data),
                         "The deadline is extended and the client was told why.",
                         "extend_form")


@bp.route("/requests/<uuid:request_id>/fulfil", methods=["POST"])
@role_required("admin")
def request_fulfil(request_id: uuid.UUID):
    return _staff_action(request_id, FulfilForm(),
                         lambda found, form: requests.fulfil(_me(), found, form.note.data),
                         "Marked as done. The client was told.", "fulfil_form")


@bp.route("/requests/<uuid:request_id>/deny", methods=["POST"])
@role_required("admin")
def request_deny(request_id: uuid.UUID):
    return _staff_action(request_id, ReasonForm(prefix="deny"),
                         lambda found, form: requests.deny(_me(), found, form.reason.data),
                         "Marked as not granted. The client can read the reason and their "
                         "rights.", "deny_form")


@bp.route("/staff")
@role_required("therapist", "admin")
@read_only
def staff_requests():
    """Open requests (an administrator: every one; a therapist: their clients'), the nearest
    deadline first, and the clients whose record can be opened here."""
    me = _me()
    found = requests.open_requests(me)
    client_ids = requests.clients_to_choose(me)
    names = names_by_id({*client_ids, *(r.client_id for r in found)})
    clients_listed(me, names)
    return render_template("records/requests_staff.html", found=found, names=names,
                           client_ids=client_ids, warn_days=requests.WARN_DAYS)


@bp.route("/clients")
@role_required("therapist", "admin")
@read_only
def client_pick():
    """The staff page's client chooser (a GET form) opens the chosen client's record page."""
    try:
        client_id = uuid.UUID(request.args.get("client", ""))
    except ValueError:
        return redirect(url_for("records.staff_requests"))
    client = access.staff_client_for(_me(), client_id)
    return redirect(url_for("records.client_record", client_id=client.id))


def _client_page(client, *, request_form=None, disclosure_form=None):
    me = _me()
    found = requests.requests_of(client.id)
    shown = disclosures.disclosures_for(client.id, include_voided=True)
    people = {client.id, *(d.recorded_by_id for d in shown), *(d.voided_by_id for d in shown)}
    names = names_by_id({i for i in people if i})
    if client.id in names:  # the page's heading: the client with their pronouns
        names[client.id] = person_label(names[client.id], pronouns_of(client))
    record_look(me, RECORD_VIEWED, client.id)
    return render_template(
        "records/disclosures_client.html", client=client, names=names, found=found,
        shown=shown, since=disclosures.shown_since(),
        request_form=request_form or StaffRequestForm(formdata=None,
                                                      received_on=practice.today()),
        disclosure_form=disclosure_form or DisclosureForm(formdata=None)), form_status()


@bp.route("/clients/<uuid:client_id>")
@role_required("therapist", "admin")
@read_only
def client_record(client_id: uuid.UUID):
    """A client's requests and disclosures, for their therapist or an administrator."""
    return _client_page(access.staff_client_for(_me(), client_id))


@bp.route("/clients/<uuid:client_id>/requests", methods=["POST"])
@role_required("therapist", "admin")
def client_request(client_id: uuid.UUID):
    """Write down a request the client made on paper, in person or by phone."""
    client = access.staff_client_for(_me(), client_id)
    form = StaffRequestForm()
    if form.validate_on_submit():
        try:
            made = requests.make(_me(), client, form.kind.data, form.details.data,
                                 received_on=form.received_on.data)
        except RuleError as error:
            refuse(form, error)
        else:
            flash("The request is recorded; its deadline counts from the day it arrived.",
                  "success")
            return redirect(url_for("records.request_show", request_id=made.id))
    return _client_page(client, request_form=form)


@bp.route("/clients/<uuid:client_id>/disclosures", methods=["POST"])
@role_required("therapist", "admin")
def client_disclosure(client_id: uuid.UUID):
    """Record a disclosure made outside the portal."""
    client = access.staff_client_for(_me(), client_id)
    form = DisclosureForm()
    if form.validate_on_submit():
        try:
            disclosures.record_disclosure(
                _me(), client, disclosed_on=form.disclosed_on.data,
                recipient=form.recipient.data, content=form.content.data,
                purpose=form.purpose.data)
        except RuleError as error:
            refuse(form, error)
        else:
            flash("The disclosure is recorded. The client sees it on their Account page.",
                  "success")
            return redirect(url_for("records.client_record", client_id=client.id,
                                    _anchor="disclosures"))
    return _client_page(client, disclosure_form=form)


@bp.route("/disclosures/<uuid:disclosure_id>/void", methods=["POST"])
@role_required("therapist", "admin")
def disclosure_void(disclosure_id: uuid.UUID):
    """Void a disclosure recorded by mistake (it stays on the staff page, struck out)."""
    found = access.disclosure_for(_me(), disclosure_id)
    require_button()
    try:
        disclosures.void(_me(), found)
    except RuleError as error:
        flash(error.message, "error")
    else:
        flash("The disclosure is voided. The client no longer sees it.", "success")
    return redirect(url_for("records.client_record", client_id=found.client_id,
                            _anchor="disclosures"))
