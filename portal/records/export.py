"""Download my record: the whole record as one ZIP, streamed, audited, limited, never emailed.

Who may export (checked by `exportable_client_for`, through `portal.records.access`):
- a client: their own record, after confirming their password (and a code from their app
  when two-step sign-in is on);
- a therapist: an assigned client's record (for the chart, or to answer a request made on
  paper), after the same confirmation; and one conversation as a PDF;
- an administrator: not here. An administrator does not treat clients, and the minimum
  necessary rule (45 CFR 164.502(b)) says a whole-record copy goes to whoever needs it:
  the client themselves, or their therapist. A copy requested on paper is made by the
  client's therapist, or by an administrator under emergency access if there is none.

The confirmation answers a one-time download token, kept in the session for TOKEN_MINUTES;
the GET that streams takes it (so a reload cannot start a second export without a new
confirmation). Each export is one audit event, `record.exported` (the client) or
`record.exported_by_staff`, with the client as the subject, so a staff export is in the
client's "Who has seen my record" log. At most EXPORTS_PER_DAY exports of one record by one
person in 24 hours, counted from the audit trail. The client's email says only that an
export was made: no content, no link to the file.

What the ZIP holds is described in `docs/record-export.md`; how it is written (streamed,
in constant memory) in `portal/records/export_zip.py`.
"""

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import abort, current_app
from sqlalchemy import func, select

from portal import practice
from portal.accounts import mfa
from portal.accounts import service as accounts
from portal.accounts.identity import (
    email_of,
    legal_name_of,
    name_of,
    names_by_id,
    pronouns_of,
)
from portal.accounts.models import Role, User
from portal.audit import AuditEvent, record
from portal.audit.access_log import access_log
from portal.audit.catalogue import declare
from portal.db import utcnow
from portal.db.transactions import write_transaction
from portal.errors import RuleError
from portal.estimates.content import pdf_filename
from portal.extensions import db
from portal.mail.service import enqueue
from portal.messaging.access import thread_access
from portal.policies.service import acceptances_of, title_of
from portal.records import access, export_data
from portal.records.conversation_pdf import PART_SIZE, ConversationDocument, read_state
from portal.records.export_zip import StreamingZip
from portal.templating import local_time

EXPORTS_PER_DAY = 3
TOKEN_MINUTES = 10
SCHEMA = "coeo-record-export"
SCHEMA_VERSION = 1
ACTIONS = {"client": "record.exported", "staff": "record.exported_by_staff"}
TOKEN_KEY = "record_export"  # noqa: S105  (a session key, not a secret)


def exportable_client_for(user, client_id) -> User:
    """The client whose whole record this user may export, or 404 (see the module's rule:
    a client themselves, or an assigned therapist; never an administrator)."""
    if user is None or user.role not in (Role.CLIENT, Role.THERAPIST):
        abort(404)
    return access.client_for(user, client_id)


# --- confirming -----------------------------------------------------------------------------

def exports_left(actor: User, client: User) -> int:
    """How many more exports of this record this person may make in the next 24 hours."""
    since = utcnow() - timedelta(hours=24)
    made = db.session.scalar(
        select(func.count()).select_from(AuditEvent).where(
            AuditEvent.subject_id == client.id, AuditEvent.actor_id == actor.id,
            AuditEvent.action.in_(tuple(ACTIONS.values())), AuditEvent.at >= since)) or 0
    return max(0, current_app.config.get("RECORD_EXPORTS_PER_DAY", EXPORTS_PER_DAY) - made)


class TooManyExports(RuleError):
    """The day's exports are used up: a 429, with words saying when to try again."""


def _refuse_if_limited(actor: User, client: User) -> None:
    if exports_left(actor, client) <= 0:
        per_day = current_app.config.get("RECORD_EXPORTS_PER_DAY", EXPORTS_PER_DAY)
        raise TooManyExports(
            f"This record has been downloaded {per_day} times in the last 24 hours, which is "
            "as many as the portal allows. Please try again tomorrow, or ask the practice "
            "for a copy.")


def confirm(actor: User, client: User, password: str, code: str | None) -> dict:
    """Check the password (and the app's code with two-step sign-in on) and the day's
    limit; return a one-time download token for the session.

    A wrong password counts like a wrong sign-in (the lockout applies): this is the
    account's own re-check (`accounts.service.check_current_password`).
    """
    _refuse_if_limited(actor, client)
    accounts.check_current_password(actor, password)
    if actor.mfa_enabled:
        if not (code or "").strip():
            raise RuleError("Enter the 6-digit code from your app.", "code")
        if not mfa.accept_totp(actor, code.strip()):
            db.session.commit()
            raise RuleError("That code did not work. Codes change every 30 seconds; please "
                            "try the newest one.", "code")
        db.session.commit()  # the code is used: it cannot confirm anything else
    return {"token": secrets.token_urlsafe(24), "client_id": str(client.id),
            "actor_id": str(actor.id), "expires": time.time() + TOKEN_MINUTES * 60}


def take_token(stored: dict | None, given: str | None, actor: User) -> uuid.UUID | None:
    """The client id a fresh, matching token is for (the caller removes it), or None."""
    if not stored or not given or stored.get("actor_id") != str(actor.id):
        return None
    if stored.get("expires", 0) < time.time():
        return None
    if not secrets.compare_digest(str(stored.get("token", "")), given):
        return None
    try:
        return uuid.UUID(stored["client_id"])
    except (KeyError, ValueError):
        return None


# --- starting -------------------------------------------------------------------------------

def start(actor: User, client: User) -> None:
    """Record the export (and queue the client's notice) before the first byte goes out.

    A short durable transaction of its own: the export itself only reads, so on SQLite the
    stream does not hold the write lock.
    """
    with write_transaction():
        _refuse_if_limited(actor, client)
        own = actor.id == client.id
        record(ACTIONS["client" if own else "staff"], actor=actor, target=("user", client.id),
               subject_id=client.id)
        if own:
            enqueue(client, "record_exported", when=local_time(utcnow()))


def archive_name(client: User, made_at: datetime) -> str:
    return f"coeo-record-{made_at.astimezone(practice.zone()):%Y-%m-%d}"


# --- writing --------------------------------------------------------------------------------

@dataclass
class _Run:
    client: User
    actor: User
    made_at: datetime
    zip: StreamingZip
    client_name: str = ""
    files: dict = field(default_factory=dict)      # attachment id -> path in the ZIP
    folders: dict = field(default_factory=dict)    # conversation id -> its folder
    pdfs: dict = field(default_factory=dict)       # conversation id -> [pdf paths]
    unavailable: list = field(default_factory=list)
    estimates: list = field(default_factory=list)  # (EstimateItem, path or None)
    messages: int = 0

    def path(self, folder: str, name: str) -> str:
        return self.zip.unique_name(folder, name)

    def relative(self, path: str) -> str:
        return path.split("/", 1)[1]


def stream(actor: User, client: User, *, made_at: datetime | None = None) -> Iterator[bytes]:
    """The ZIP, chunk by chunk. The caller has checked access and called `start`."""
    made_at = made_at or utcnow()
    run = _Run(client=client, actor=actor, made_at=made_at,
               zip=StreamingZip(archive_name(client, made_at)))
    run.client_name = name_of(client)
    conversations = export_data.conversations_of(client.id)
    for conversation in conversations:
        yield from _conversation_files(run, conversation)
    for conversation in conversations:
        yield from _conversation_html(run, conversation)
    yield from _estimates(run)
    details = _details(run)
    yield from run.zip.add(run.path("", "style.css"), _STYLE, when=made_at)
    yield from run.zip.add(run.path("", "index.html"),
                           _render("records/export_index.html", run=run, details=details,
                                   conversations=conversations), when=made_at)
    yield from _record_json(run, conversations, details)
    yield from run.zip.add(run.path("", "MANIFEST.txt"), _manifest(run), when=made_at)
    yield from run.zip.finish()


def _folder(run: _Run, conversation) -> str:
    if conversation.id not in run.folders:
        title = "conversation" if conversation.subject_unavailable else conversation.subject
        name = run.path("conversations", f"{conversation.number:02d} {title}")
        run.folders[conversation.id] = run.relative(name)
    return run.folders[conversation.id]


def _conversation_files(run: _Run, conversation) -> Iterator[bytes]:
    """The PDF (in parts of PART_SIZE messages) and the attachments, in one pass."""
    folder = _folder(run, conversation)
    if conversation.subject_unavailable:
        run.unavailable.append({"what": "conversation subject", "id": str(conversation.id),
                                "where": folder})
    part, document, paths = 1, None, []

    def finish(document, part):
        name = "conversation.pdf" if part == 1 else f"conversation, part {part}.pdf"
        path = run.path(folder, name)
        paths.append(path)
        return run.zip.add(path, document.output(), when=run.made_at)

    for message in export_data.messages_of(run.client.id, conversation.id):
        if document is None:
            document = ConversationDocument(conversation, client_name=run.client_name,
                                            made_at=run.made_at, part=part)
        if message.unavailable:
            run.unavailable.append({"what": "message", "id": str(message.id),
                                    "where": folder})
        for item in message.attachments:
            yield from _attachment(run, folder, item)
        document.add(message, {a: run.relative(p) for a, p in run.files.items()
                               if a in {i.id for i in message.attachments}})
        run.messages += 1
        if document.count >= PART_SIZE:
            yield from finish(document, part)
            part, document = part + 1, None
    if document is not None or not paths:
        document = document or ConversationDocument(
            conversation, client_name=run.client_name, made_at=run.made_at, part=part)
        yield from finish(document, part)
    run.pdfs[conversation.id] = [run.relative(p) for p in paths]


def _attachment(run: _Run, folder: str, item) -> Iterator[bytes]:
    data = export_data.attachment_content(run.client.id, item.id)
    if data is None or item.name_unavailable:
        run.unavailable.append({"what": "attachment", "id": str(item.id), "where": folder})
        if data is None:
            return
    path = run.path(f"{folder}/files", item.name)
    yield from run.zip.add(path, data, when=run.made_at, compress=item.kind == "txt")
    run.files[item.id] = path


def _conversation_html(run: _Run, conversation) -> Iterator[bytes]:
    """The conversation as a web page, rendered as it is written (Jinja's `generate`)."""
    folder = run.folders[conversation.id]
    entry = run.zip.open(run.path(folder, "conversation.html"), when=run.made_at)
    depth = "../" * folder.count("/") + "../"
    files = {a: "files/" + p.rsplit("/", 1)[1] for a, p in run.files.items()
             if p.startswith(f"{run.zip.top}/{folder}/files/")}
    template = current_app.jinja_env.get_template("records/export_conversation.html")
    pieces = template.generate(
        conversation=conversation, client_name=run.client_name, made_at=run.made_at,
        messages=export_data.messages_of(run.client.id, conversation.id, report=False),
        files=files, up=depth, read_state=read_state, local_time=local_time)
    for piece in pieces:
        entry.write(piece)
        yield from run.zip.chunks()
    entry.close()
    yield from run.zip.chunks()


def _estimates(run: _Run) -> Iterator[bytes]:
    for item in export_data.estimates_of(run.client.id):
        pdf = export_data.estimate_pdf(item.id)
        if pdf is None:
            run.unavailable.append({"what": "estimate", "id": str(item.id),
                                    "where": "estimates"})
            run.estimates.append((item, None))
            continue
        item.pdf_sha256 = sha256(pdf)  # of the client's copy, made now, not a stored value
        path = run.path("estimates", f"good-faith-estimate-{item.number}.pdf"
                        if item.number else pdf_filename(item))
        yield from run.zip.add(path, pdf, when=run.made_at, compress=False)
        run.estimates.append((item, run.relative(path)))


def _details(run: _Run) -> dict:
    """Account details, policies, the access log and disclosures, as plain data."""
    client = run.client
    therapists = accounts.therapists_of(client.id)
    names = names_by_id([t.id for t in therapists]) if therapists else {}
    made_by = None if run.actor.id == client.id else {
        "id": str(run.actor.id), "name": name_of(run.actor), "role": str(run.actor.role)}
    account = {
        "id": str(client.id), "name": run.client_name,
        # The legal name is what the law needs (it is on Good Faith Estimates); "name" is the
        # name they go by, used everywhere else.
        "legal_name": legal_name_of(client), "pronouns": pronouns_of(client) or None,
        "email": email_of(client),
        "account_created_at": _iso(client.created_at), "active": client.active,
        "two_step_sign_in": client.mfa_enabled, "last_sign_in_at": _iso(client.last_signin_at),
        "therapists": [{"id": str(t.id), "name": names.get(t.id, "")} for t in therapists],
    }
    policies = [{"slug": a.slug, "title": title_of(a.slug), "version": a.number,
                 "accepted_at": _iso(a.accepted_at), "text_sha256": a.text_hash}
                for a in acceptances_of(client)]
    log = [{"at": _iso(e.at), "who": e.who, "role": e.role, "what": e.what,
            "times": e.times, "emergency": e.emergency}
           for e in access_log(client, limit=100_000)]
    disclosures = [{"id": str(d.id), "disclosed_on": d.disclosed_on.isoformat(),
                    "recipient": d.recipient, "content": d.content, "purpose": d.purpose}
                   for d in export_data.disclosures_of(client.id)]
    db.session.rollback()
    return {"made_by": made_by, "account": account, "policies": policies,
            "access_log": log, "disclosures": disclosures}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _record_json(run: _Run, conversations, details: dict) -> Iterator[bytes]:
    """`record.json`, written as it goes: the messages are read again, a batch at a time."""
    entry = run.zip.open(run.path("", "record.json"), when=run.made_at)
    head = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "generated_at": _iso(run.made_at),
        "practice": practice.profile().get("name", ""), **details,
        "estimates": [{
            "id": str(item.id), "number": item.number, "status": item.status,
            "issue_date": item.issue_date.isoformat() if item.issue_date else None,
            "total_cents": item.total_cents, "pdf_sha256": item.pdf_sha256, "file": path,
            "superseded_by": str(item.superseded_by_id) if item.superseded_by_id else None}
            for item, path in run.estimates],
        "unavailable": run.unavailable,
    }
    entry.write(_dumps(head)[:-1] + ',"conversations":[')
    for n, conversation in enumerate(conversations):
        folder = run.folders[conversation.id]
        info = {"id": str(conversation.id), "number": conversation.number,
                "subject": None if conversation.subject_unavailable else conversation.subject,
                "with": "practice" if conversation.to_practice else "therapist",
                "therapist": {"id": str(conversation.therapist_id),
                              "name": conversation.therapist_name},
                "started_at": _iso(conversation.started_at), "status": conversation.status,
                "closed_at": _iso(conversation.closed_at), "folder": folder,
                "pdf": run.pdfs.get(conversation.id, []),
                "html": f"{folder}/conversation.html"}
        entry.write(("," if n else "") + _dumps(info)[:-1] + ',"messages":[')
        for m_n, message in enumerate(export_data.messages_of(run.client.id, conversation.id,
                                                              report=False)):
            entry.write(("," if m_n else "") + _dumps({
                "id": str(message.id), "sender": {"id": str(message.sender_id),
                                                  "name": message.sender,
                                                  "role": message.sender_role},
                "sent_at": _iso(message.created_at), "read_at": _iso(message.read_at),
                "body": None if message.unavailable else message.body,
                "unavailable": message.unavailable, "crisis_flag": message.crisis_flag,
                "attachments": [{
                    "id": str(a.id), "name": None if a.name_unavailable else a.name,
                    "kind": a.kind, "size": a.size,
                    "file": run.relative(run.files[a.id]) if a.id in run.files else None}
                    for a in message.attachments]}))
            yield from run.zip.chunks()
        entry.write("]}")
    entry.write("]}\n")
    entry.close()
    yield from run.zip.chunks()


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _manifest(run: _Run) -> str:
    made_by = ("you" if run.actor.id == run.client.id
               else f"{name_of(run.actor)} ({run.actor.role}), at the practice")
    lines = [
        f"{practice.profile().get('name', 'coeo')} portal: a copy of the record of "
        f"{run.client_name}",
        f"Made: {local_time(run.made_at)} ({_iso(run.made_at)} UTC), by {made_by}",
        f"Conversations: {len(run.folders)}, messages: {run.messages}, files: "
        f"{len(run.files)}, Good Faith Estimates: "
        f"{sum(1 for _, p in run.estimates if p)}",
        "",
        "Every file, with its size in bytes and its SHA-256. The Good Faith Estimates are the",
        "PDFs exactly as they were issued: each one's SHA-256 is the one stored when it was",
        "issued. This file itself is not listed (a file cannot hold its own hash).",
        "",
    ]
    for entry in run.zip.entries:
        lines.append(f"{entry.sha256}  {entry.size:>10}  {run.relative(entry.name)}")
    lines.append("")
    if run.unavailable:
        lines.append("Could not be decrypted, so not included (the practice has been told):")
        for item in run.unavailable:
            lines.append(f"- {item['what']} {item['id']} (in {item['where']})")
    else:
        lines.append("Everything could be opened: nothing is missing.")
    return "\n".join(lines) + "\n"


def _render(template: str, **context) -> str:
    return current_app.jinja_env.get_template(template).render(
        local_time=local_time, practice=practice.profile(), when=_local_iso, **context)


def _local_iso(value: str | None) -> str:
    return local_time(datetime.fromisoformat(value)) if value else ""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- one conversation (staff) ----------------------------------------------------------------

def conversation_pdf(actor: User, thread_id: uuid.UUID) -> tuple[str, bytes]:
    """One conversation as a PDF for its therapist (a participant, not emergency access);
    audited as `conversation.exported` with the client as the subject."""
    if actor.role != Role.THERAPIST:
        abort(404)
    found = thread_access(actor, thread_id)
    if found.emergency:
        abort(404)
    thread = found.thread
    client = db.session.get(User, thread.client_id)
    conversation = next(c for c in export_data.conversations_of(client.id) if c.id == thread.id)
    made_at = utcnow()
    document = ConversationDocument(conversation, client_name=name_of(client), made_at=made_at)
    for message in export_data.messages_of(client.id, thread.id):
        document.add(message)
    pdf = document.output()
    with write_transaction():
        record("conversation.exported", actor=actor, target=("thread", thread.id),
               subject_id=client.id)
    return f"conversation-{made_at.astimezone(practice.zone()):%Y-%m-%d}.pdf", pdf


_STYLE = """body{font-family:"DejaVu Sans",system-ui,sans-serif;color:#262626;max-width:46rem;
margin:2rem auto;padding:0 1rem;line-height:1.5}h1{font-size:1.6rem}h2{font-size:1.2rem;
border-bottom:1px solid #c8c8c8;margin-top:2rem}.muted{color:#606060;font-size:.9rem}
.message{border-top:1px solid #c8c8c8;padding:.75rem 0}.message .body{white-space:pre-wrap}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem;
border-bottom:1px solid #e4e4e4;vertical-align:top}
"""


EXPORT_PAGE_VIEWED = "record.export_page_viewed"
ACTION_WORDS = {
    EXPORT_PAGE_VIEWED: "Opened the page for making a copy of your record",
    "record.exported": None,  # the client's own download: not a member of staff's access
    "record.exported_by_staff": "Downloaded a copy of your whole record",
    "conversation.exported": "Saved {target} as a PDF",
}


def declare_actions() -> None:
    for action, words in ACTION_WORDS.items():
        declare(action, words)
