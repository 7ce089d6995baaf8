"""Good Faith Estimates: the builder for staff, the client's estimates, PDF downloads, billing."""

import re
import uuid
from dataclasses import replace

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup, escape
from werkzeug.datastructures import MultiDict

from portal import downloads, paging, practice
from portal.accounts.identity import names_by_id, names_of
from portal.accounts.models import Role, User
from portal.errors import RuleError
from portal.estimates import (
    access,
    billing,
    clients,
    content,
    corrections,
    delivery,
    drafting,
    follow_ups,
    guardians,
    issuing,
    looks,
    panel,
    staff_lists,
    totals,
)
from portal.estimates.content import EstimateUnavailable
from portal.estimates.document import (
    CMS_PHONE,
    CMS_URL,
    DISCLAIMERS,
    IF_BILLED_MORE,
    IF_BILLED_MORE_TITLE,
    KEEP_A_COPY,
)
from portal.estimates.document import separately_scheduled_note as _scheduled_note
from portal.estimates.drafts import Draft
from portal.estimates.forms import (
    MAX_LINES,
    MAX_PROVIDERS,
    MIN_LINE_ROWS,
    MIN_PROVIDER_ROWS,
    BillForm,
    BuilderForm,
    CorrectionForm,
    NewEstimateForm,
    NextServiceForm,
    choices,
    draft_from_form,
    form_data,
    set_provider_choices,
)
from portal.estimates.models import GoodFaithEstimate
from portal.estimates.status import display_status
from portal.forms import INVALID, form_status, refuse, require_button
from portal.messaging import drafts as typed_drafts  # words typed, not yet saved (sealed)
from portal.pages import read_only
from portal.security import role_required

bp = Blueprint("estimates", __name__, url_prefix="/estimates")

STAFF = ("therapist", "admin")
PAGE_SIZE = 50
LINE_ROWS_ADDED = 3
_PATH = re.compile(r"(providers|line_items)\[(\d+)\](?:\.(\w+))?")
LINE_FIELDS = {"provider_npi": "provider", "cpt_code": "cpt_code", "description": "description",
               "quantity": "quantity", "unit_cents": "unit_charge",
               "line_total_cents": "unit_charge", "diagnosis_codes": "diagnosis",
               "no_charge_reason": "no_charge_reason"}
PROVIDER_FIELDS = {"name", "npi", "tin", "location", "state"}
HEADER_FIELDS = {"client_legal_name", "client_dob", "client_address", "primary_service",
                 "period_start", "period_end", "frequency", "sessions_min", "sessions_max",
                 "separately_scheduled"}


def _linked(text: str) -> Markup:
    """Escape a disclaimer and link the CMS address and phone number in it."""
    html = escape(text)
    html = html.replace(escape(CMS_URL), Markup('<a href="https://{0}">{0}</a>').format(CMS_URL))
    digits = "".join(ch for ch in CMS_PHONE if ch.isdigit())
    return html.replace(escape(CMS_PHONE),
                        Markup('<a href="tel:+{0}">{1}</a>').format(digits, CMS_PHONE))


LINKED_DISCLAIMERS = tuple(_linked(text) for text in DISCLAIMERS)


@bp.context_processor
def _document_text() -> dict:
    """The fixed wording every estimate page shares with the PDF."""
    return {"gfe_disclaimers": LINKED_DISCLAIMERS, "gfe_keep_a_copy": KEEP_A_COPY,
            "gfe_scheduled_note": _scheduled_note, "gfe_cms_url": CMS_URL,
            "gfe_cms_phone": CMS_PHONE, "gfe_status": display_status,
            "gfe_if_billed_more": IF_BILLED_MORE, "gfe_if_billed_more_title": IF_BILLED_MORE_TITLE}


def _me() -> User:
    return current_user._get_current_object()


def _button_post(load, estimate_id: uuid.UUID) -> tuple[User, GoodFaithEstimate]:
    """A button's POST on one estimate: `load` it as access allows (else 404), then CSRF (400)."""
    me = _me()
    estimate = load(me, estimate_id)
    require_button()
    return me, estimate


def _issued_or_404(estimate_id: uuid.UUID) -> tuple[User, GoodFaithEstimate]:
    """The PDF and billing exist only once an estimate is issued; a draft is a 404 there."""
    me = _me()
    estimate = access.estimate_for(me, estimate_id)
    if not estimate.is_issued:
        abort(404)
    return me, estimate


def _unavailable(estimate: GoodFaithEstimate, status: int = 200):
    """Content that will not open gets the calm explanation page, never a 500.

    A page that only shows the content answers 200; an action that could not be carried
    out because of it answers INVALID (422). The service has audited the failure already.
    """
    return render_template("estimates/unavailable.html", estimate=estimate), status


# ---------------------------------------------------------------------------------- clients


@bp.route("/")
@role_required("client", "guardian")
@read_only
def client_list():
    """List every estimate issued to the client, newest first, and offer to request one (a
    guardian: the estimates of their family's minors they may see, on each minor's log)."""
    me = _me()
    if me.role == Role.GUARDIAN:
        estimates = guardians.guardian_estimates(me)
        guardians.listed(me, estimates)
        return render_template("estimates/client_list.html", estimates=estimates,
                               totals=totals.totals_of(estimates),
                               for_names=names_by_id({e.client_id for e in estimates}),
                               guardian=True, requests=[], today=practice.today(),
                               routing=None, nobody_told=False, withdrawn=None)
    requests = clients.open_requests(me)
    routing = clients.request_routing(me)
    issued = clients.client_estimates(me)
    return render_template("estimates/client_list.html", estimates=issued,
                           totals=totals.totals_of(issued),
                           requests=requests, today=practice.today(), routing=routing,
                           nobody_told=bool(requests) and not routing.people,
                           withdrawn=None if requests else corrections.withdrawn_request(me))


def nobody_told_text(due: str) -> str:
    """The honest answer to a request when no therapist is assigned, so nobody was emailed."""
    profile = practice.profile()
    return (f"Thank you, your request is saved and the practice owes you the estimate by {due}. "
            "You do not have a therapist assigned yet, so nobody has been emailed about it: "
            f"please call the practice at {profile['phone']} or write to {profile['email']} "
            "so someone can start on it.")


def told_text(routing: clients.Routing, due: str) -> str:
    """The answer to a request: who was told and will prepare it (never a therapist the
    client does not have)."""
    who = routing.names_text()
    if routing.kind == "therapist":
        return f"Thank you. We have let {who} know; your estimate will be ready by {due}."
    if routing.kind == "covering":
        return (f"Thank you. You do not have a therapist assigned yet, so we have let {who}, "
                f"covering for the practice, know. {who} will prepare your estimate by {due}.")
    return (f"Thank you. You do not have a therapist assigned yet, so we have let {who} at the "
            f"practice know; they will see that your estimate is ready by {due}.")


@bp.route("/request", methods=["POST"])
@role_required("client")
def request_estimate():
    """Ask the practice for an estimate (starts the 3-business-day clock)."""
    require_button()
    me = _me()
    estimate, new = clients.request_estimate(me)
    if new:
        due = f"{estimate.due_date:%B} {estimate.due_date.day}"
        routing = clients.request_routing(me)
        if routing.people:
            flash(told_text(routing, due), "success")
        else:
            flash(nobody_told_text(due), "info")
    else:
        flash("You have already asked for an estimate. We will have it ready soon.", "info")
    return redirect(url_for("estimates.client_list"))


@bp.route("/<uuid:estimate_id>")
def show(estimate_id: uuid.UUID):
    """Show an estimate: the client's calm view, or the practice's view with billing."""
    me = _me()
    estimate = access.estimate_for(me, estimate_id)
    if estimate.is_draft:
        return redirect(url_for("estimates.review", estimate_id=estimate.id))
    try:
        document = content.open_document(estimate)
    except EstimateUnavailable:
        return _unavailable(estimate)
    summary = billing.summary_of(estimate, document)
    links = follow_ups.linked(estimate)
    if me.role == Role.GUARDIAN:  # a minor's issued estimate their guardian may see
        guardians.opened(me, estimate)  # on the minor's access log before the page goes out
        return render_template("estimates/client_show.html", estimate=estimate, doc=document,
                               summary=summary, links=guardians.visible_links(me, links),
                               guardian=True,
                               minor_name=names_by_id([estimate.client_id]).get(
                                   estimate.client_id, ""))
    if me.role == Role.CLIENT:
        delivery.record_view(me, estimate)
        return render_template("estimates/client_show.html", estimate=estimate, doc=document,
                               summary=summary, links=links,
                               sharing=guardians.sharing_for(me, estimate))
    bill_form = BillForm()
    bill_form.provider.choices = _provider_choices(document)
    return _staff_show(estimate, document, summary, links, bill_form)


def _provider_choices(document):
    return choices([("", "Choose…")] + [(str(i), p.name)
                                        for i, p in enumerate(document.providers)])


def _staff_show(estimate, document, summary, links, bill_form, status: int = 200):
    me = _me()
    codes = looks.shows_codes(me)
    looks.opened(me, estimate)  # on the client's access log before the page goes out
    return render_template(
        "estimates/staff_show.html", estimate=estimate,
        doc=document if codes else looks.without_codes(document),
        diagnosis_hidden=not codes, look_reason=looks.reason_given(me),
        reasons=looks.reason_choices(), reason_endpoint="estimates.show", summary=summary,
        links=links, bill_form=bill_form, client_name=staff_lists.client_name(estimate),
        sharing=guardians.sharing_for(me, estimate),
        events=delivery.delivery_events(estimate), history=corrections.history(estimate),
        today=practice.today(),
        bill_dates=billing.bill_dates(estimate), **billing.thresholds()), status


@bp.route("/<uuid:estimate_id>/pdf")
def download(estimate_id: uuid.UUID):
    """Download the frozen PDF (an attachment with a neutral name); every download recorded."""
    me, estimate = _issued_or_404(estimate_id)
    action = looks.download_action(me)
    if action is None:  # an admin: the PDF carries the diagnosis codes, so say why first
        flash("The PDF includes the diagnosis codes. Choose why you need them, then "
              "download it.", "info")
        return redirect(url_for("estimates.show", estimate_id=estimate.id, _anchor="reason"))
    try:
        pdf = content.open_pdf(estimate)
    except EstimateUnavailable:
        return _unavailable(estimate)
    if looks.needs_reason(me):
        looks.downloaded(me, estimate, action)
    elif me.role == Role.GUARDIAN:
        guardians.downloaded(me, estimate)  # on the minor's access log
    else:
        delivery.record_download(me, estimate)
    return downloads.download(pdf, filename=content.pdf_filename(estimate),
                              content_type="application/pdf")


@bp.route("/<uuid:estimate_id>/acknowledge", methods=["POST"])
@role_required("client")
def acknowledge(estimate_id: uuid.UUID):
    """Let the client confirm they received the estimate (optional)."""
    me, estimate = _button_post(access.estimate_for, estimate_id)
    if delivery.acknowledge(me, estimate):
        flash("Thank you — we have noted that you received this estimate.", "success")
    return redirect(url_for("estimates.show", estimate_id=estimate.id))


# ------------------------------------------------------------------------------------ staff


def _uuid_arg(name: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(request.args.get(name, ""))
    except ValueError:
        return None


@bp.route("/practice")
@role_required(*STAFF)
@read_only
def staff_list():
    """List the estimates this member of staff looks after, with what is due."""
    me = _me()
    client_id = _uuid_arg("client")
    client = access.estimate_client_for(me, client_id) if client_id else None
    page = paging.page_number()
    estimates, more = staff_lists.staff_estimates(
        me, client_id=client.id if client else None, limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE)
    mine = staff_lists.clients_for(me)
    shown_panel = panel.dashboard_panel(me)
    # Every client this page names, once each, on their access log (the chooser lists
    # clients only when there is more than one).
    looks.listed(me, [*estimates, *looks.panel_estimates(shown_panel)],
                 mine if len(mine) > 1 else [])
    return render_template(
        "estimates/staff_list.html", estimates=estimates, totals=totals.totals_of(estimates),
        names=staff_lists.client_names(estimates), client=client, clients=mine,
        client_names=names_of(mine), page=page, more=more, today=practice.today(),
        **shown_panel)


@bp.route("/new", methods=["GET", "POST"])
@role_required(*STAFF)
@read_only
def new():
    """Choose the client, then start a blank draft."""
    me = _me()
    mine = staff_lists.clients_for(me)
    names = names_of(mine)
    form = NewEstimateForm()
    form.client.choices = choices([("", "Choose a client…")]
                                  + [(str(c.id), names[c.id]) for c in mine])
    if request.method == "GET" and _uuid_arg("client"):
        form.client.data = str(_uuid_arg("client"))
    if form.validate_on_submit():
        client = access.estimate_client_for(me, uuid.UUID(form.client.data))
        estimate = drafting.create_draft(me, client)
        flash("Draft started. Nothing is sent until you issue it.", "success")
        return redirect(url_for("estimates.edit", estimate_id=estimate.id))
    looks.listed(me, [], mine)  # the chooser names every client this person writes for
    return render_template("estimates/new.html", form=form,
                           has_clients=bool(mine)), form_status()


def _rows(arg: str, current: int, minimum: int, maximum: int) -> int:
    value = request.args.get(arg, "")
    wanted = int(value) if value.isdigit() and len(value) < 4 else 0
    return max(minimum, current, min(wanted, maximum))


def _field_for(form: BuilderForm, path: str):
    """Return the form field a compliance problem points at, or None."""
    match = _PATH.fullmatch(path)
    if match:
        kind, index, attr = match.group(1), int(match.group(2)), match.group(3)
        entries = form.providers if kind == "providers" else form.lines
        if index >= len(entries) or attr is None:
            return None
        sub = entries[index].form
        name = LINE_FIELDS.get(attr) if kind == "line_items" else (
            attr if attr in PROVIDER_FIELDS else None)
        return getattr(sub, name) if name else None
    return getattr(form, path) if path in HEADER_FIELDS else None


def _attach(form: BuilderForm, problems) -> list[tuple[object, str, str | None]]:
    """Put each problem next to its field; return (problem, message, field id) for the summary."""
    summary = []
    for problem in problems:
        field = _field_for(form, problem.field)
        if field is not None:
            field.errors = [*list(field.errors or []), problem.message]
        summary.append((problem, problem.message, field.id if field is not None else None))
    return summary


def _format_errors(form: BuilderForm) -> list[tuple[str, str, str]]:
    """Every field error of the builder, nested rows included, as (label, message, field id)."""
    found = []

    def walk(fields, prefix: str = "") -> None:
        for f in fields:
            if f.type == "CSRFTokenField":
                continue
            if f.type == "FieldList":
                for number, entry in enumerate(f.entries, start=1):
                    row = "Provider" if f.name == "providers" else "Line"
                    walk(entry.form, f"{row} {number}, ")
                continue
            for message in f.errors or ():
                if isinstance(message, str):
                    found.append((f.label.text, f"{prefix}{f.label.text}: {message}", f.id))

    walk(form)
    return found


def _builder(estimate, form: BuilderForm, *, problems=None, status: int = 200,
             draft_restored: bool = False):
    me = _me()
    looks.opened(me, estimate)  # on the client's access log before the page goes out
    return render_template(
        "estimates/edit.html", estimate=estimate, form=form, draft_restored=draft_restored,
        look_reason=looks.reason_given(me),
        draft_key=typed_drafts.form_key_for_estimate(estimate.id),
        client_name=staff_lists.client_name(estimate), saved_total=totals.total_of(estimate),
        problems=problems, format_errors=_format_errors(form) if problems is None else [],
        max_providers=MAX_PROVIDERS, max_lines=MAX_LINES,
        links=follow_ups.linked(estimate), locked_dates=corrections.correctable(estimate),
        history=corrections.history(estimate)), status


@bp.route("/<uuid:estimate_id>/edit", methods=["GET", "POST"])
@role_required(*STAFF)
@read_only
def edit(estimate_id: uuid.UUID):
    """The builder: save a draft as it is, add rows, or go on to check it."""
    me = _me()
    estimate = access.draft_estimate_for(me, estimate_id)
    if request.method == "POST":
        form = BuilderForm()
        names = [entry.form.name.data or "" for entry in form.providers]
        set_provider_choices(form, names)
        if not form.validate():
            return _builder(estimate, form, status=INVALID)
        draft = draft_from_form(form, dict(practice.profile()))
        drafting.save_draft(me, estimate, _practice_contact(draft),
                           scheduled_on=form.scheduled_on.data,
                           service_date=form.service_date.data,
                           requested_on=form.requested_on.data)
        typed_drafts.discard(me, typed_drafts.form_key_for_estimate(estimate.id))
        action = request.form.get("action", "save")
        saved = content.open_draft(estimate)
        reason = looks.reason_given(me)  # an admin's reason goes on with them
        if action == "check":
            return redirect(url_for("estimates.review", estimate_id=estimate.id, reason=reason))
        if action == "add_provider":
            return redirect(url_for("estimates.edit", estimate_id=estimate.id, reason=reason,
                                    providers=len(saved.providers) + 1, _anchor="providers"))
        if action == "add_lines":
            return redirect(url_for("estimates.edit", estimate_id=estimate.id, reason=reason,
                                    lines=len(saved.lines) + LINE_ROWS_ADDED, _anchor="lines"))
        flash("Draft saved. Nothing has been sent to the client.", "success")
        return redirect(url_for("estimates.edit", estimate_id=estimate.id, reason=reason))
    if not looks.shows_codes(me):
        # The builder shows (and saves) every diagnosis code: an admin says why first.
        flash("This draft's diagnosis codes are part of the builder. Choose why you need "
              "them to edit it.", "info")
        return redirect(url_for("estimates.review", estimate_id=estimate.id, _anchor="reason"))
    try:
        draft = content.open_draft(estimate)
    except EstimateUnavailable:
        return _unavailable(estimate)
    provider_rows = _rows("providers", len(draft.providers), MIN_PROVIDER_ROWS, MAX_PROVIDERS)
    line_rows = _rows("lines", len(draft.lines) + 1, MIN_LINE_ROWS, MAX_LINES)
    form = BuilderForm(data=form_data(
        draft, provider_rows=provider_rows, line_rows=line_rows,
        scheduled_on=estimate.scheduled_on, service_date=estimate.service_date,
        requested_on=estimate.requested_on))
    set_provider_choices(form, [p.name for p in draft.providers])
    # What was typed and not saved yet (an idle sign-out, a closed tab) comes back as typed.
    typed = typed_drafts.load(me, typed_drafts.form_key_for_estimate(estimate.id))
    if typed:
        form = BuilderForm(formdata=MultiDict(typed))
        set_provider_choices(form, [entry.form.name.data or "" for entry in form.providers])
    problems = None
    if request.args.get("check") == "1":
        problems = _attach(form, drafting.review(estimate).problems)
    return _builder(estimate, form, problems=problems, draft_restored=bool(typed))


def _practice_contact(draft: Draft) -> Draft:
    """Estimates carry the practice's contact details from configuration, never typed."""
    profile = practice.profile()
    keys = ("name", "street", "city", "state", "postal_code", "phone", "email")
    return replace(draft, practice={key: profile.get(key, "") for key in keys})


@bp.route("/<uuid:estimate_id>/review")
@role_required(*STAFF)
@read_only
def review(estimate_id: uuid.UUID):
    """Check a draft: every problem at once, and a preview of what the client will see."""
    me = _me()
    estimate = access.draft_estimate_for(me, estimate_id)
    try:
        checked = drafting.review(estimate)
    except EstimateUnavailable:
        return _unavailable(estimate)
    form = BuilderForm(formdata=None, data=form_data(checked.draft, provider_rows=0,
                                                     line_rows=0))
    summary = _attach(form, checked.problems)
    codes = looks.shows_codes(me)
    if not codes:
        checked = replace(checked, document=looks.without_codes(checked.document))
        summary = looks.without_code_problems(summary)
    looks.opened(me, estimate)  # on the client's access log before the page goes out
    return render_template("estimates/review.html", estimate=estimate, checked=checked,
                           diagnosis_hidden=not codes, look_reason=looks.reason_given(me),
                           reasons=looks.reason_choices(), reason_endpoint="estimates.review",
                           problems=summary, client_name=staff_lists.client_name(estimate),
                           links=follow_ups.linked(estimate))


@bp.route("/<uuid:estimate_id>/issue", methods=["POST"])
@role_required(*STAFF)
def issue(estimate_id: uuid.UUID):
    """Issue the draft: it is frozen from now on, and the client is told it is ready."""
    me, estimate = _button_post(access.draft_estimate_for, estimate_id)
    try:
        issued = issuing.issue(me, estimate.id)
    except issuing.NotReady as not_ready:
        flash(f"Not issued: {len(not_ready.problems)} things still need fixing.", "error")
        return redirect(url_for("estimates.review", estimate_id=estimate_id))
    except EstimateUnavailable:
        return _unavailable(estimate, INVALID)
    except RuleError as error:
        flash(error.message, "error")
        return redirect(url_for("estimates.staff_list"))
    flash(f"Estimate {issued.number} is issued. The client has been told it is in their "
          "portal.", "success")
    return redirect(url_for("estimates.show", estimate_id=issued.id))


@bp.route("/<uuid:estimate_id>/discard", methods=["POST"])
@role_required(*STAFF)
def discard(estimate_id: uuid.UUID):
    """Delete a draft that will not be issued."""
    me, estimate = _button_post(access.draft_estimate_for, estimate_id)
    try:
        drafting.discard_draft(me, estimate)
    except RuleError as error:
        flash(error.message, "error")
        return redirect(url_for("estimates.edit", estimate_id=estimate.id, _anchor="deadline"))
    flash("Draft deleted.", "success")
    return redirect(url_for("estimates.staff_list"))


@bp.route("/<uuid:estimate_id>/correct", methods=["POST"])
@role_required(*STAFF)
def correct(estimate_id: uuid.UUID):
    """Start a replacement for an issued estimate (the original stays, linked), due one
    business day before the next scheduled session when one is given (45 CFR
    149.610(b)(1)(vii))."""
    return _start_follow_up(
        estimate_id, follow_ups.may_correct,
        lambda me, estimate: follow_ups.start_correction(me, estimate, **_posted_next_service()),
        "A corrected copy is ready to edit. The current estimate stays in force until you "
        "issue the correction, which is due one business day before the client's next session: "
        "if none is shown under “When it is due”, record it there.")


def _posted_next_service() -> dict:
    """The next session's date the "Correct it" button may carry (optional), as keywords."""
    field = NextServiceForm().next_service
    if field.process_errors:
        raise RuleError(f"Not started. The date of the next session: {field.process_errors[0]}")
    return {"next_service": field.data} if field.data else {}


@bp.route("/<uuid:estimate_id>/correct-date", methods=["GET", "POST"])
@role_required(*STAFF)
@read_only
def correct_date(estimate_id: uuid.UUID):
    """Correct a recorded date (?date=requested_on, scheduled_on or service_date) that started
    a deadline: a reason, the history kept."""
    me = _me()
    estimate = access.draft_estimate_for(me, estimate_id)
    field = request.args.get("date", "")
    if field not in corrections.correctable(estimate):
        abort(404)
    form = CorrectionForm()
    form.reason.choices = choices([("", "Choose…"), *corrections.REASON_LABELS.items()])
    if form.validate_on_submit():
        try:
            corrections.correct_date(me, estimate, field=field, new_value=form.new_date.data,
                                     reason=form.reason.data, note=form.note.data or "")
        except RuleError as error:
            refuse(form, error)
        else:
            flash("Date corrected. The original deadline and this correction are kept in the "
                  "history.", "success")
            return redirect(url_for("estimates.edit", estimate_id=estimate.id,
                                    _anchor="deadline"))
    return render_template(
        "estimates/correct_date.html", estimate=estimate, form=form, field=field,
        label=corrections.field_label(estimate, field), current=getattr(estimate, field),
        client_name=staff_lists.client_name(estimate),
        history=corrections.history(estimate)), form_status()


@bp.route("/<uuid:estimate_id>/next-service", methods=["GET", "POST"])
@role_required(*STAFF)
@read_only
def next_service(estimate_id: uuid.UUID):
    """Record a correction's next scheduled session, which sets its due date."""
    me = _me()
    estimate = access.draft_estimate_for(me, estimate_id)
    if estimate.supersedes_id is None or estimate.service_date is not None:
        abort(404)
    form = NextServiceForm()
    if form.validate_on_submit():
        try:
            corrections.record_next_service(me, estimate, form.next_service.data)
        except RuleError as error:
            refuse(form, error)
        else:
            flash("Next session recorded. The correction is due one business day before it.",
                  "success")
            return redirect(url_for("estimates.edit", estimate_id=estimate.id,
                                    _anchor="deadline"))
    return render_template("estimates/next_service.html", estimate=estimate, form=form,
                           client_name=staff_lists.client_name(estimate)), form_status()


@bp.route("/<uuid:estimate_id>/renew", methods=["POST"])
@role_required(*STAFF)
def renew(estimate_id: uuid.UUID):
    """Start next period's estimate from an issued one."""
    return _start_follow_up(estimate_id, follow_ups.may_renew, follow_ups.start_renewal,
                            "A renewal for the next period is ready to edit.")


def _start_follow_up(estimate_id: uuid.UUID, may_start, start, ready: str):
    """Correcting and renewing are one flow, so their answers cannot drift apart.

    An estimate the rule does not allow is a 404, as if the button were not there; a refusal
    from the service (e.g. content that will not open) is shown on the estimate; otherwise the
    new draft, or the one already under way, opens in the builder.
    """
    me, estimate = _button_post(access.estimate_for, estimate_id)
    if not may_start(estimate):
        abort(404)
    try:
        draft = start(me, estimate)
    except RuleError as error:
        flash(error.message, "error")
        return redirect(url_for("estimates.show", estimate_id=estimate.id))
    flash(ready, "info")
    return redirect(url_for("estimates.edit", estimate_id=draft.id))


@bp.route("/<uuid:estimate_id>/bills", methods=["POST"])
@role_required(*STAFF)
def record_bill(estimate_id: uuid.UUID):
    """Record an amount billed by one provider, and compare it with the estimate."""
    me, estimate = _issued_or_404(estimate_id)
    try:
        document = content.open_document(estimate)
    except EstimateUnavailable:
        return _unavailable(estimate, INVALID)
    form = BillForm()
    form.provider.choices = _provider_choices(document)
    if not form.validate_on_submit():
        return _bill_form_again(estimate, document, form)
    try:
        summary = billing.record_bill(me, estimate, provider_position=int(form.provider.data),
                                      amount_cents=form.amount.data,
                                      bill_date=form.bill_date.data)
    except EstimateUnavailable:
        return _unavailable(estimate, INVALID)
    except RuleError as error:
        refuse(form, error)
        return _bill_form_again(estimate, document, form)
    if summary.window_open:
        flash("Recorded. A provider's bill is now $400 or more over the estimate: the client "
              "can see their right to dispute it.", "warning")
    elif summary.level == "dispute_eligible":
        flash("Recorded. A provider's bill is $400 or more over the estimate, but the 120 days "
              "from its first bill have passed: the client sees that the window has closed and "
              "how to reach you.", "warning")
    elif summary.level == "warning":
        flash("Recorded. A provider's bill is close to the $400 dispute level.", "warning")
    else:
        flash("Billed amount recorded.", "success")
    return redirect(url_for("estimates.show", estimate_id=estimate.id, _anchor="billing"))


def _bill_form_again(estimate, document, form: BillForm):
    """The estimate page again, with the bill form as typed and its errors (INVALID)."""
    summary = billing.summary_of(estimate, document)
    return _staff_show(estimate, document, summary, follow_ups.linked(estimate), form,
                       status=INVALID)


@bp.route("/<uuid:estimate_id>/bills/<uuid:bill_id>/void", methods=["POST"])
@role_required(*STAFF)
def void_bill(estimate_id: uuid.UUID, bill_id: uuid.UUID):
    """Void a mistyped billed amount (kept in the history)."""
    me, estimate = _button_post(access.estimate_for, estimate_id)
    if not estimate.is_issued:
        abort(404)
    try:
        billing.void_bill(me, estimate, bill_id)
    except EstimateUnavailable:
        return _unavailable(estimate, INVALID)
    except RuleError:
        abort(404)
    flash("Billed amount voided.", "success")
    return redirect(url_for("estimates.show", estimate_id=estimate.id, _anchor="billing"))
