"""Pages of the record export: confirm, then download (its routes join `records.bp`).

Confirm (a POST with the password, and the app's code when two-step sign-in is on) puts a
one-time token in the session and shows the download link; the GET that streams takes the
token, records the export, and streams the ZIP through `portal.downloads.download`.
"""

import uuid
from collections.abc import Iterator

from flask import render_template, request, session, stream_with_context, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional

from portal.accounts.identity import name_of
from portal.audit.looks import record_look
from portal.db import utcnow
from portal.downloads import download
from portal.errors import RuleError
from portal.extensions import db
from portal.forms import form_status, refuse
from portal.pages import read_only
from portal.records import export
from portal.records.views import bp
from portal.security import role_required

ACCOUNT_SECTION = "records/export_section.html"
TOO_MANY = 429


class ExportConfirmForm(FlaskForm):
    current_password = PasswordField("Your password", validators=[
        DataRequired("Enter your password."), Length(max=1024)])
    code = StringField("6-digit code from your app", validators=[Optional(), Length(max=12)])


def _confirm(client, *, staff: bool):
    actor = current_user._get_current_object()
    form = ExportConfirmForm()
    if not actor.mfa_enabled:
        del form.code
    status = None
    if form.validate_on_submit():
        try:
            token = export.confirm(actor, client, form.current_password.data,
                                   form.code.data if actor.mfa_enabled else None)
        except export.TooManyExports as error:
            refuse(form, error)
            status = TOO_MANY
        except RuleError as error:
            refuse(form, error)
        else:
            session[export.TOKEN_KEY] = token
            endpoint = "records.staff_export_download" if staff else "records.export_download"
            values = {"client_id": client.id} if staff else {}
            return render_template(
                "records/export_ready.html", staff=staff, back=_back(client, staff),
                link=url_for(endpoint, token=token["token"], **values),
                minutes=export.TOKEN_MINUTES)
    elif request.method == "GET" and export.exports_left(actor, client) <= 0:
        status = TOO_MANY
    left = export.exports_left(actor, client)
    db.session.rollback()
    if staff:  # the page names the client: a look on their access log
        record_look(actor, export.EXPORT_PAGE_VIEWED, client.id, target=("user", client.id))
    return render_template(
        "records/export_confirm.html", form=form, staff=staff, left=left,
        per_day=export.EXPORTS_PER_DAY, client_name=_name(client) if staff else None,
        back=_back(client, staff)), status or form_status()


def _back(client, staff: bool) -> str:
    if staff:
        return url_for("records.client_record", client_id=client.id)
    return url_for("accounts.settings")


def _name(client) -> str:
    return name_of(client)


def _download(client):
    actor = current_user._get_current_object()
    client_id = export.take_token(session.get(export.TOKEN_KEY), request.args.get("token"),
                                  actor)
    if client_id is None or client_id != client.id:
        return render_template("records/export_expired.html",
                               again=request.path.rsplit("/", 1)[0]), 410
    session.pop(export.TOKEN_KEY, None)
    try:
        export.start(actor, client)
    except export.TooManyExports:
        return render_template("records/export_expired.html", limited=True,
                               again=request.path.rsplit("/", 1)[0]), TOO_MANY
    made_at = utcnow()
    name = export.archive_name(client, made_at) + ".zip"
    chunks = stream_with_context(_released(export.stream(actor, client, made_at=made_at)))
    return download(chunks, filename=name, content_type="application/zip")


def _released(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Hand the database connection back when the ZIP is done or the browser goes away
    (the server closes the response: GeneratorExit here)."""
    try:
        yield from chunks
    finally:
        chunks.close()
        db.session.rollback()
        db.session.close()


# --- the client -----------------------------------------------------------------------------

@bp.route("/export", methods=["GET", "POST"])
@role_required("client")
def export_confirm():
    """Confirm it is you, then download your whole record as one ZIP."""
    me = current_user._get_current_object()
    return _confirm(export.exportable_client_for(me, me.id), staff=False)


@bp.route("/export/download")
@role_required("client")
@read_only
def export_download():
    """Stream the ZIP (needs the token the confirmation gave; once)."""
    me = current_user._get_current_object()
    return _download(export.exportable_client_for(me, me.id))


# --- staff ----------------------------------------------------------------------------------

@bp.route("/clients/<uuid:client_id>/export", methods=["GET", "POST"])
@role_required("therapist")
def staff_export_confirm(client_id: uuid.UUID):
    """A therapist exports an assigned client's record (for the chart, or a paper request)."""
    client = export.exportable_client_for(current_user._get_current_object(), client_id)
    return _confirm(client, staff=True)


@bp.route("/clients/<uuid:client_id>/export/download")
@role_required("therapist")
@read_only
def staff_export_download(client_id: uuid.UUID):
    client = export.exportable_client_for(current_user._get_current_object(), client_id)
    return _download(client)


@bp.route("/conversations/<uuid:thread_id>/pdf")
@role_required("therapist")
@read_only
def conversation_pdf(thread_id: uuid.UUID):
    """One conversation as a PDF, for its therapist (audited, in the client's access log)."""
    name, pdf = export.conversation_pdf(current_user._get_current_object(), thread_id)
    return download(pdf, filename=name, content_type="application/pdf")

