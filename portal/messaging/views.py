"""Messaging pages: the client's inbox, the therapist's dashboard, threads, attachments,
"who has seen my record", and emergency access for administrators.

Views parse the request, load protected objects only through `portal.messaging.access`,
call one service function and render. A form that fails keeps everything typed and answers
422 (`portal.forms.INVALID`).
"""

import uuid
from datetime import timedelta

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user

from portal import downloads, hooks
from portal.accounts import sessions
from portal.accounts.display import person_label, reply_note
from portal.accounts.identity import names_by_id, names_of, pronouns_by_id
from portal.audit.access_log import access_log_page
from portal.audit.looks import Look, clients_listed, record_look, record_looks
from portal.db import utcnow
from portal.errors import RuleError
from portal.forms import INVALID, form_status, refuse, require_button
from portal.messaging import access, drafts, emergency, escalation, lists, reading, sending
from portal.messaging.attachments import clean_name
from portal.messaging.audited import GUARDIAN_THREAD_LISTED, GUARDIAN_THREAD_VIEWED, INBOX_LISTED
from portal.messaging.forms import ComposeForm, EmergencyForm, ReplyForm, chosen_files
from portal.pages import accepts_uploads, read_only, search_post
from portal.paging import MAX_PAGE, cursor, page_number
from portal.security import role_required

bp = Blueprint("messaging", __name__)

SETTINGS_SECTION = "messaging/_settings_section.html"
CRISIS_FOLLOW_UP = "crisis_follow_up"  # session key: show the crisis follow-up on this thread
SENT_MESSAGE = "sent_message"  # session key: the message just sent ("Sent to ..." beside it)
TO_PRACTICE = "practice"  # the compose form's recipient value for "the practice"


@bp.app_template_filter("waiting_for")
def waiting_for(since, now=None) -> str:
    """Say how long a client has been waiting: "under an hour", "5 hours", "2 days"."""
    if since is None:
        return ""
    minutes = int(((now or utcnow()) - since).total_seconds() // 60)
    if minutes < 60:
        return "under an hour"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} hour{'' if hours == 1 else 's'}"
    days = hours // 24
    return f"{days} days"


def unread_badge(user) -> int:
    """The unread count in the navigation (the page may have counted it already)."""
    known = g.get("unread_messages")
    return known if known is not None else lists.unread_count(user)


def _me():
    return current_user._get_current_object()


def _refuse(form, error: RuleError) -> None:
    """Show a refusal on the form; refused files each get their reason, and the files that
    were fine are named, since the browser forgets every chosen file on the reload."""
    if not isinstance(error, sending.FilesRefused):
        refuse(form, error)
        return
    messages = [f"“{name}” was not attached: {reason}." for name, reason in error.refused]
    refused = {name for name, _ in error.refused}
    kept = [clean_name(s.filename) for s in request.files.getlist(form.attachments.name)
            if s.filename and clean_name(s.filename) not in refused]
    if kept:
        messages.append("Your other files were fine, but browsers forget chosen files "
                        "when a page reloads: please choose "
                        + ", ".join(f"“{n}”" for n in kept) + " again.")
    form.attachments.errors = messages


# --- clients -------------------------------------------------------------------------------

def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _guardian_context(me) -> dict:
    """What a guardian's inbox and compose pages say: whom they can write to, about whom."""
    choices = sending.guardian_choices(me)
    minors = list(dict.fromkeys([m for m, _ in choices.pairs] + choices.without_therapist))
    names = names_by_id(minors)
    about = _and([names.get(m, "") for m in minors]) if minors else ""
    therapists = len({t.id for _, t in choices.pairs})
    return {"guardian": True, "choices": choices, "about_names": about,
            # "Riley's own conversations ..." / "The conversations Riley and Jesse have ..."
            "private_words": (f"{about}\u2019s own conversations with their therapist stay "
                              "private to them" if len(minors) == 1 else
                              f"The conversations {about} have with their therapists stay "
                              "private to them"),
            "therapist_words": "the therapist" if therapists <= 1 else "the therapists",
            "writable_names": _and(list(dict.fromkeys(
                names.get(m, "") for m, _ in choices.pairs))) if choices.pairs else "",
            "no_therapist_names": [names.get(m, "") for m in choices.without_therapist],
            "minor_names": names}


@bp.route("/messages")
@role_required("client", "guardian")
@read_only
def inbox():
    """List the client's (or guardian's) conversations, newest first, with unread markers."""
    me = _me()
    listing = lists.inbox(me, page_number())
    if me.role == "guardian":
        context = _guardian_context(me)
        return render_template("messaging/inbox.html", listing=listing,
                               can_write=bool(context["choices"].pairs), to_practice=False,
                               **context)
    can_write = bool(sending.counterparts(me))
    practice = not can_write and sending.can_write_to_practice(me)
    return render_template("messaging/inbox.html", listing=listing,
                           can_write=can_write or practice, to_practice=practice)


@bp.route("/account/access-log")
@role_required("client")
@read_only
def access_log():
    """Show the client every time practice staff opened their record."""
    log = access_log_page(_me(), page=page_number())
    return render_template("messaging/access_log.html", entries=log.entries, log=log)


# --- writing -------------------------------------------------------------------------------

@bp.route("/messages/new", methods=["GET", "POST"])
@role_required("client", "guardian", "therapist")
@accepts_uploads
def compose():
    """Start a conversation: a subject, a first message and optional files."""
    me = _me()
    if me.role == "guardian":
        return _compose_as_guardian(me)
    people = sending.counterparts(me)
    practice = not people and sending.can_write_to_practice(me)  # a client with no therapist
    names = names_of(people)
    pronouns = pronouns_by_id(p.id for p in people)
    labels = {p.id: person_label(names[p.id], pronouns.get(p.id, ""),
                                 (p.credentials or "") if p.is_staff else "") for p in people}
    # A client sees when each therapist usually replies ("" for one who has not said).
    reply_notes = [note for p in sorted(people, key=lambda p: names[p.id].casefold())
                   if p.is_staff and (note := reply_note(labels[p.id], p.reply_hours or ""))]
    form = ComposeForm()
    form.recipient.choices = sorted(((str(p.id), labels[p.id]) for p in people),
                                    key=lambda pair: pair[1].casefold())
    if practice:
        form.recipient.choices = [(TO_PRACTICE, "The practice (the clinicians on call)")]
    if request.method == "GET":
        wanted = request.args.get("to")
        if wanted in {value for value, _ in form.recipient.choices}:
            form.recipient.data = wanted
        elif len(form.recipient.choices) == 1:
            form.recipient.data = form.recipient.choices[0][0]
    draft_restored = request.method == "GET" and drafts.restore(
        me, drafts.COMPOSE, form, keep=frozenset({"recipient"} if request.args.get("to") else ()))
    clients_listed(me, [p.id for p in people])  # staff: the clients the chooser names
    if (people or practice) and form.validate_on_submit():
        try:
            thread, message = sending.start_thread(
                me, counterpart_id=None if practice else uuid.UUID(form.recipient.data),
                to_practice=practice, subject=form.subject.data,
                body=form.body.data, files=chosen_files(form.attachments))
        except RuleError as error:
            _refuse(form, error)
        else:
            return _started(me, thread, message)
    return render_template("messaging/compose.html", form=form, people=people,
                           to_practice=practice, draft_restored=draft_restored,
                           reply_notes=reply_notes), form_status()


def _started(me, thread, message):
    """After a new conversation is sent: the compose draft goes, the new message is shown."""
    drafts.discard(me, drafts.COMPOSE)
    _sent(message)
    return redirect(url_for("messaging.thread", thread_id=thread.id, _anchor=f"m-{message.id}"))


def _compose_as_guardian(me):
    """A parent or guardian writes to a therapist of a minor they are linked to, about them."""
    context = _guardian_context(me)
    choices = context["choices"]
    therapists = [t for _, t in choices.pairs]
    names = names_of(therapists)
    pronouns = pronouns_by_id(t.id for t in therapists)
    form = ComposeForm()
    form.recipient.choices = [
        (choices.value(minor_id, t.id),
         f"{person_label(names[t.id], pronouns.get(t.id, ''), t.credentials or '')}, "
         f"about {context['minor_names'].get(minor_id, '')}")
        for minor_id, t in choices.pairs]
    if request.method == "GET" and len(form.recipient.choices) == 1:
        form.recipient.data = form.recipient.choices[0][0]
    draft_restored = request.method == "GET" and drafts.restore(me, drafts.COMPOSE, form)
    if choices.pairs and form.validate_on_submit():
        minor_id, therapist = choices.find(form.recipient.data)
        try:
            thread, message = sending.start_thread(
                me, counterpart_id=therapist.id, about_client_id=minor_id,
                subject=form.subject.data, body=form.body.data,
                files=chosen_files(form.attachments))
        except RuleError as error:
            _refuse(form, error)
        else:
            return _started(me, thread, message)
    return render_template("messaging/compose.html", form=form, people=therapists,
                           to_practice=False, draft_restored=draft_restored, reply_notes=[],
                           **context), form_status()


def _sent(message) -> None:
    flash("Your message was sent.", "success")
    # The thread opens scrolled to the sent message (its anchor), with "Sent to ..." beside it.
    session[SENT_MESSAGE] = str(message.id)
    if message.sent_flagged:
        # Not a flash: the follow-up carries tappable links, so the thread page renders it
        # from messaging/_crisis_follow_up.html (once) when this marker names its thread.
        session[CRISIS_FOLLOW_UP] = str(message.thread_id)


@bp.route("/messages/<uuid:thread_id>")
@read_only
def thread(thread_id: uuid.UUID):
    """Show a conversation (the newest 50 messages, then older ones) with the reply form."""
    form = ReplyForm()
    restored = drafts.restore(_me(), drafts.form_key_for_reply(thread_id), form)
    return _thread_page(thread_id, form, draft_restored=restored)


def _thread_page(thread_id: uuid.UUID, form: ReplyForm, status: int = 200, *,
                 draft_restored: bool = False):
    me = _me()
    thread_access = access.thread_access(me, thread_id)
    page = reading.view_thread(me, thread_access, before=cursor("before"), at=cursor("at"))
    recent_crisis = (me.id == page.client_id and page.messages and page.messages[-1].mine
                     and page.messages[-1].crisis_flag
                     and utcnow() - page.messages[-1].created_at < timedelta(hours=1))
    # The follow-up speaks to someone writing about themselves: a client, not a guardian.
    crisis_follow_up = (me.id == page.client_id and page.about_client_id is None
                        and session.pop(CRISIS_FOLLOW_UP, None) == str(thread_id))
    if page.about_client_id is not None and me.is_staff:  # the minor's name: on their log
        record_look(me, GUARDIAN_THREAD_VIEWED, page.about_client_id,
                    target=("thread", page.id))
    sent = session.pop(SENT_MESSAGE, None)
    just_sent = next((m.id for m in page.messages if m.mine and str(m.id) == sent), None)
    return render_template("messaging/thread.html", page=page, form=form,
                           recent_crisis=recent_crisis, crisis_follow_up=crisis_follow_up,
                           just_sent=just_sent,
                           grant=thread_access.grant, draft_restored=draft_restored), status


@bp.route("/messages/<uuid:thread_id>/reply", methods=["POST"])
@accepts_uploads
def reply(thread_id: uuid.UUID):
    """Send a reply; on a problem, show the thread again with the text kept."""
    me = _me()
    access.thread_for(me, thread_id)  # outsiders get the 404 before anything else
    form = ReplyForm()
    if form.validate_on_submit():
        try:
            message = sending.reply(me, thread_id, body=form.body.data,
                                    files=chosen_files(form.attachments))
        except RuleError as error:
            _refuse(form, error)
        else:
            drafts.discard(me, drafts.form_key_for_reply(thread_id))
            _sent(message)
            return redirect(url_for("messaging.thread", thread_id=thread_id,
                                    _anchor=f"m-{message.id}"))
    return _thread_page(thread_id, form, INVALID)


@bp.route("/messages/<uuid:thread_id>/crisis-seen", methods=["POST"])
@role_required("therapist")
def crisis_seen(thread_id: uuid.UUID):
    """Mark a conversation's crisis flag "seen and acted on" (who and when are shown)."""
    me = _me()
    access.thread_for(me, thread_id)
    require_button()
    if escalation.acknowledge(me, thread_id):
        flash("Marked as seen and acted on. Nobody else will be alerted about it.", "success")
    else:
        flash("Nothing here is waiting to be marked as seen.", "info")
    return redirect(url_for("messaging.thread", thread_id=thread_id))


@bp.route("/messages/<uuid:thread_id>/close", methods=["POST"])
@role_required("therapist")
def close(thread_id: uuid.UUID):
    """Mark a conversation closed; the client can reopen it by replying."""
    return _set_closed(thread_id, True)


@bp.route("/messages/<uuid:thread_id>/reopen", methods=["POST"])
@role_required("therapist")
def reopen(thread_id: uuid.UUID):
    """Open a closed conversation again."""
    return _set_closed(thread_id, False)


def _set_closed(thread_id: uuid.UUID, closed: bool):
    me = _me()
    access.thread_for(me, thread_id)
    require_button()
    try:
        sending.set_closed(me, thread_id, closed)
    except RuleError:
        abort(404)
    flash("The conversation is closed. It opens again if they reply." if closed
          else "The conversation is open again.", "success")
    return redirect(url_for("messaging.thread", thread_id=thread_id))


# --- attachments ---------------------------------------------------------------------------

@bp.route("/messages/attachments/<uuid:attachment_id>")
def attachment(attachment_id: uuid.UUID):
    """Download an attachment: participants only, never shown inline, never cached."""
    try:
        found = reading.download(_me(), attachment_id)
    except reading.Unreadable:
        return render_template("messaging/unreadable.html"), 422
    return downloads.download(found.data, filename=found.name, content_type=found.content_type,
                              sandbox=True)


# --- therapists ----------------------------------------------------------------------------

@bp.route("/dashboard", methods=["GET", "POST"])
@role_required("therapist")
@read_only
@search_post
def dashboard():
    """The therapist's home: who is waiting for a reply, crisis-flagged first.

    A search by client name is a POST (with its CSRF token) whose results render here, so
    the name never reaches a URL, the browser's history or an access log; during a search
    its filters and pages post the search again. A `q` in the query string is ignored.
    """
    me = _me()
    if request.method == "POST":
        searched = request.form
        query = searched.get("q", "").strip()[:lists.SEARCH_MAX]
        show = searched.get("show", "all")
        page = searched.get("page", default=1, type=int)
        page = page if page and 0 < page < MAX_PAGE else 1  # as page_number() reads it
    else:
        query, show, page = "", request.args.get("show", "all"), page_number()
    listing = lists.dashboard(me, show=show, query=query, page=page)
    g.unread_messages = listing.unread_messages
    # Other features' panels (e.g. estimates due) are included by the template; their
    # context keys are namespaced by the feature (e.g. `estimates_panel`), and ours win.
    # They load after our commit, so any ORM objects they pass stay loaded for the render.
    panels, panel_context = list(hooks.dashboard_panels), {}
    shown = [Look(INBOX_LISTED, None, row.client_id) for row in listing.rows
             if row.about_client_id is None]
    # A guardian's conversation names its minor ("Parent or guardian of Riley"); the guardian
    # is not a client and has no access log.
    shown += [Look(GUARDIAN_THREAD_LISTED, None, row.about_client_id) for row in listing.rows
              if row.about_client_id is not None]
    for panel in panels:
        context = panel.context(me)
        panel_context.update(context)
        if panel.looks is not None:
            shown += panel.looks(context)
    record_looks(me, shown)  # every client named on the page, on their access log
    return render_template("messaging/dashboard.html", **{
        **panel_context, "listing": listing, "query": query,
        "panels": [panel.template for panel in panels],
        "panel_stylesheets": [panel.stylesheet for panel in panels if panel.stylesheet],
        "show": show if show in lists.FILTERS else "all", "now": utcnow()})


# --- emergency access ----------------------------------------------------------------------

def _emergency_admin():
    me = _me()
    current = sessions.current()
    if not emergency.may_use(me) or current is None or not current.mfa_verified:
        abort(404)
    return me


@bp.route("/emergency-access", methods=["GET", "POST"])
@role_required("admin")
def emergency_access():
    """Ask for emergency access to one client's conversations, with a written reason."""
    me = _emergency_admin()
    form = EmergencyForm()
    choices = dict(emergency.clients_to_choose())
    form.client.choices = [("", "Choose a client")] + [
        (str(client_id), name) for client_id, name in choices.items()]
    form.category.choices = [("", "Choose one"), *emergency.REASON_CATEGORIES.items()]
    clients_listed(me, choices)  # the chooser names every active client
    if form.validate_on_submit():
        try:
            grant = emergency.grant(me, client_id=uuid.UUID(form.client.data),
                                    reason=form.reason.data, category=form.category.data)
        except RuleError as error:
            refuse(form, error)
        else:
            told = grant.told.sentence(choices.get(grant.client_id, "The client"))
            flash(f"Emergency access is open for the next {emergency.minutes()} minutes, "
                  f"read-only, and it has been recorded. {told}", "warning")
            return redirect(url_for("messaging.emergency_grant", grant_id=grant.id))
    return render_template("messaging/emergency.html", form=form,
                           grants=emergency.grants_of(me), minutes=emergency.minutes(),
                           other_admins=len(emergency.other_admins(me))), form_status()


@bp.route("/emergency-access/<uuid:grant_id>")
@role_required("admin")
def emergency_grant(grant_id: uuid.UUID):
    """List the client's conversations under a live emergency grant."""
    me = _emergency_admin()
    grant, rows = emergency.client_threads(me, grant_id)
    return render_template("messaging/emergency_grant.html", grant=grant, rows=rows)


@bp.route("/emergency-access/<uuid:grant_id>/end", methods=["POST"])
@role_required("admin")
def emergency_end(grant_id: uuid.UUID):
    """End emergency access before the hour is up."""
    me = _emergency_admin()
    require_button()
    emergency.end(me, grant_id)
    flash("Emergency access has ended.", "success")
    return redirect(url_for("messaging.emergency_access"))
