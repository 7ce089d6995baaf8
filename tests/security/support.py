"""Helpers for the security tests: a shared world of people and records, signed-in test
clients, form discovery from rendered pages, a log of database writes, the escaping check.

The hostile-input and header walks send thousands of requests; building a fresh database for
each would take far longer than the requests themselves, so these tests share one database per
module (`world`), and every check is written so that requests which are accepted (and change
that database) cannot hide a problem with the ones that follow.
"""

import functools
import hashlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from html.parser import HTMLParser
from types import SimpleNamespace
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select, text
from werkzeug.routing import Rule

from portal.accounts.models import Assignment, User, UserSession
from portal.extensions import db
from portal.mail.models import template_of
from tests.support.auth import signed_in
from tests.support.clients import IsolatedClient as SharedIsolatedClient
from tests.support.people import CSRF, PASSWORD, make_user

ROLES = ("anonymous", "client", "therapist", "admin", "guardian")
# The people have the shared PASSWORD. Forms are filled with a different one (FILLER_PASSWORD),
# so a hostile request can never pass a "type your password again" check by accident.
FILLER_PASSWORD = "harbor lights over quiet water"
assert FILLER_PASSWORD != PASSWORD

# --- payloads that must never run ----------------------------------------------------------------

MARK = "coeo_xss"
XSS_TAGS = '"><script>coeo_xss(1)</script><img src=x onerror=coeo_xss(2)><svg/onload=coeo_xss(3)>'
XSS_ATTR = ("' onmouseover='coeo_xss(4)' \" onfocus=\"coeo_xss(5)\" x=\""
            "</textarea></title></style><script>coeo_xss(7)</script>")
JS_URL = "javascript:coeo_xss(6)"
SSTI = "{{ 7 * 'coeo_ssti' }}{% raw %}"
SSTI_RENDERED = "coeo_ssticoeo_ssti"

# A tiny valid PDF: attachments are accepted by their first bytes.
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def csrf_from(html: str) -> str | None:
    """Return the CSRF token of a page, or None (a page without one is not a failure here)."""
    found = CSRF.search(html)
    return (found.group(1) or found.group(2)) if found else None


# --- the escaping check --------------------------------------------------------------------------

class _Inspector(HTMLParser):
    """Find markup that a payload managed to create: a tag, an attribute, a script, a URL."""

    DANGEROUS_TAGS = frozenset({"script", "img", "svg", "iframe", "object", "embed", "style"})
    URL_ATTRS = frozenset({"href", "src", "action", "formaction", "data", "xlink:href"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag in ("script", "style")
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                # The portal has no inline handlers at all (the CSP forbids them).
                self.problems.append(f"<{tag} {name}=...> event handler attribute")
            if MARK in name or (tag in self.DANGEROUS_TAGS and MARK in value):
                self.problems.append(f"<{tag} {name}={value[:60]!r}> carries the payload")
            if name in self.URL_ATTRS and value.strip().lower().startswith(
                    ("javascript:", "vbscript:", "data:text/html")):
                self.problems.append(f"<{tag} {name}={value[:60]!r}> script URL")
        if MARK in tag:
            self.problems.append(f"<{tag}> tag made from the payload")

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and MARK in data:
            self.problems.append(f"script or style text carries the payload: {data[:80]!r}")


def escaping_problems(body: str) -> list[str]:
    """Return how a page let a payload through unescaped (empty when it is safe)."""
    return list(_escaping_problems(body))


@functools.lru_cache(maxsize=512)
def _escaping_problems(body: str) -> tuple[str, ...]:
    """The check itself, remembered per page text: the walks fetch the same page again and
    again (every hostile query string a page ignores), and parsing it is the slow part."""
    return tuple(_find_escaping_problems(body))


def _find_escaping_problems(body: str) -> list[str]:
    problems = []
    if SSTI_RENDERED in body:
        problems.append("a template expression in the input was evaluated")
    if MARK not in body:
        return problems
    inspector = _Inspector()
    inspector.feed(body)
    inspector.close()
    return problems + inspector.problems


# --- form discovery ------------------------------------------------------------------------------

@dataclass
class Field:
    name: str
    kind: str  # text, email, password, hidden, checkbox, radio, file, date, select, textarea...
    value: str = ""
    options: list[str] = field(default_factory=list)
    checked: bool = False


@dataclass
class Form:
    action: str
    method: str
    enctype: str
    fields: list[Field] = field(default_factory=list)

    @property
    def multipart(self) -> bool:
        return self.enctype == "multipart/form-data"

    def inputs(self) -> list[Field]:
        """The fields a person fills in (not the token, not the buttons)."""
        return [f for f in self.fields if f.name != "csrf_token" and f.kind not in
                ("submit", "button")]

    def buttons(self) -> list[Field]:
        return [f for f in self.fields if f.kind in ("submit", "button") and f.name]


class _FormParser(HTMLParser):
    def __init__(self, page_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page_url = page_url
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: Field | None = None
        self._textarea: Field | None = None
        self._option_value: str | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            action = a.get("action") or self.page_url
            self._form = Form(action=action, method=(a.get("method") or "get").lower(),
                              enctype=a.get("enctype") or "application/x-www-form-urlencoded")
            self.forms.append(self._form)
            return
        if self._form is None:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = (a.get("type") or "text").lower()
            self._form.fields.append(Field(name, kind, a.get("value", ""),
                                           checked="checked" in a))
        elif tag == "button" and name:
            self._form.fields.append(Field(name, (a.get("type") or "submit").lower(),
                                           a.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea = Field(name, "textarea")
            self._form.fields.append(self._textarea)
        elif tag == "select" and name:
            self._select = Field(name, "select")
            self._form.fields.append(self._select)
        elif tag == "option" and self._select is not None:
            value = a.get("value")
            self._option_value = value
            if value is not None:
                self._select.options.append(value)
                if "selected" in a:
                    self._select.value = value
                    self._select.checked = True

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea.value += data
        elif self._select is not None and self._option_value is None and data.strip():
            self._select.options.append(data.strip())  # an option without a value attribute

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None
        elif tag == "option":
            self._option_value = None


def forms_in(html: str, page_url: str) -> list[Form]:
    """Return every form on a page (POST forms only: GET forms change nothing)."""
    parser = _FormParser(page_url)
    parser.feed(html)
    parser.close()
    return [f for f in parser.forms if f.method == "post"]


def benign_value(f: Field) -> str | None:
    """A harmless value a person might type, so that only the hostile field is wrong."""
    if f.kind == "select":
        if f.checked:
            return f.value
        return next((o for o in f.options if o), f.options[0] if f.options else "")
    if f.kind in ("checkbox", "radio"):
        return (f.value or "y") if f.checked or f.kind == "checkbox" else None
    if f.kind == "file":
        return None
    if f.value:
        return f.value
    return {"email": "someone@example.org", "password": FILLER_PASSWORD,
            "date": (date.today() - timedelta(days=1)).isoformat(), "number": "1",
            "textarea": "Hello, just checking in.", "hidden": ""}.get(f.kind, "Hello")


# --- what a request wrote -------------------------------------------------------------------

# Columns a request may touch without changing anything that matters: the idle timer, and a
# conversation's sealed crisis state, which a clinician's every look reseals unchanged (so an
# acknowledgement looks like a look in a copy of the database; portal.messaging.crisis_state).
VOLATILE = {"user_sessions": frozenset({"last_seen_at"}),
            "message_threads": frozenset({"crisis_sealed"})}


@dataclass
class Change:
    table: str
    kind: str  # added, changed, removed
    row: dict
    columns: frozenset = frozenset()

    def __str__(self) -> str:
        detail = f" ({', '.join(sorted(self.columns))})" if self.columns else ""
        return f"{self.kind} {self.table}{detail}"


_WRITE = re.compile(r'^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE)
_READ = re.compile(r"^\s*(SELECT|PRAGMA)\b", re.IGNORECASE)
_SET = re.compile(r"\bSET\s+(.*?)(?:\s+WHERE\s|\s+RETURNING\s|$)", re.IGNORECASE | re.DOTALL)
_SET_COLUMN = re.compile(r'(?:^|,)\s*"?(\w+)"?\s*=')


class WriteLog:
    """Record every INSERT, UPDATE and DELETE that commits while recording is on.

    Comparing whole tables before and after each of thousands of requests grows slower as the
    tables grow; the database driver sees every write anyway. Writes are kept per connection
    until its transaction ends: committed ones count, rolled-back ones never happened.
    """

    def __init__(self, engine) -> None:
        self.engine = engine
        self.recording = False
        self.committed: list[Change] = []
        self.statements_that_may_write = 0
        self._counts: tuple[int, dict[str, int]] | None = None
        event.listen(engine, "after_cursor_execute", self._executed)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", self._rollback)

    def _executed(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if not _READ.match(statement):
            self.statements_that_may_write += 1
        if not self.recording:
            return
        found = _WRITE.match(statement)
        if not found:
            return
        kind = {"INSERT": "added", "UPDATE": "changed", "DELETE": "removed"}[
            found.group(1).split()[0].upper()]
        if kind != "added" and cursor.rowcount == 0:
            return  # an UPDATE or DELETE that matched nothing changed nothing
        columns = frozenset()
        if kind == "changed":
            clause = _SET.search(statement)
            columns = frozenset(_SET_COLUMN.findall(clause.group(1))) if clause else frozenset()
        rows = (context.compiled_parameters if context is not None and
                context.compiled_parameters else None) or [{}]
        conn.info.setdefault("security_writes", []).extend(
            Change(found.group(2), kind, dict(row), columns) for row in rows)

    def _commit(self, conn) -> None:
        self.committed.extend(conn.info.pop("security_writes", []))

    def _rollback(self, conn) -> None:
        conn.info.pop("security_writes", None)

    def counts(self) -> dict[str, int]:
        """Return count_rows(), counted again only if a statement other than a read has run
        since the last count: a row count cannot change without one."""
        if self._counts is None or self._counts[0] != self.statements_that_may_write:
            self._counts = (self.statements_that_may_write, count_rows())
        return self._counts[1]

    def __enter__(self) -> list[Change]:
        self.committed = []
        self.recording = True
        return self.committed

    def __exit__(self, *exc) -> None:
        self.recording = False


def count_rows() -> dict[str, int]:
    """Return the number of rows in every table (one statement)."""
    tables = [t.name for t in db.metadata.sorted_tables]
    # Table names come from the models, never from input.
    query = "SELECT " + ", ".join(f'(SELECT count(*) FROM "{t}")' for t in tables)  # noqa: S608
    counts = dict(zip(tables, db.session.execute(text(query)).one(), strict=True))
    db.session.commit()
    return counts


# --- test clients --------------------------------------------------------------------------------

class IsolatedClient(SharedIsolatedClient):
    """The shared isolated test client (the world keeps one app context pushed), whose
    responses are closed as a server does once it has sent them."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


def signed_in_client(app: Flask, user: User | None) -> tuple[FlaskClient, str]:
    """Return a client signed in as `user` (or anonymous) and its CSRF token."""
    if user is not None:
        client = signed_in(app, user)
        page = client.get("/__no_such_page__")  # the 404 page carries the token in a meta tag
    else:
        client = app.test_client()
        page = client.get("/sign-in")
    csrf = csrf_from(page.get_data(as_text=True))
    assert csrf, "no CSRF token for a new client"
    return client, csrf


# --- the world -----------------------------------------------------------------------------------

@dataclass
class World:
    """The people and records every hostile request aims at."""

    app: Flask
    users: dict[str, User]
    ids: dict[str, object]
    tokens: dict[str, str]
    writes: WriteLog

    def user_for(self, role: str) -> User | None:
        return None if role == "anonymous" else self.users[role]


def build_world(app: Flask) -> World:
    """Create people, conversations, estimates, policies and grants, with payloads stored in
    every free-text field a page shows back (names, subjects, bodies, file names, addresses)."""
    from portal import practice
    from portal.accounts import email_change, tokens
    from portal.accounts import service as accounts
    from portal.accounts.models import TokenPurpose
    from portal.estimates import billing, drafting, issuing
    from portal.estimates.models import BilledAmount
    from portal.messaging import emergency
    from portal.messaging import sending as messaging
    from portal.messaging.models import Attachment
    from portal.policies import service as policies
    from tests.estimates.conftest import complete_draft

    admin = make_user("admin", f"Ada {XSS_TAGS}")
    make_user("admin", "Second Admin")  # told about emergency access
    therapist = make_user("therapist", f"Terry {XSS_ATTR}")
    other_therapist = make_user("therapist", "Kristen Other")
    client = make_user("client", f"Casey {XSS_TAGS}")
    other_client = make_user("client", "Olive Other")
    target = make_user("client", f"Quinn {XSS_ATTR}")  # what admin actions aim at
    inactive = make_user("client", "Ivy Inactive", active=False)
    staff_signing_in = make_user("therapist", "Sam Signing-In")  # the code step's account
    pending_client = make_user("client", "Pat Pending")  # has policies to accept
    client_with_mfa = make_user("client", "Max Two-Step", mfa_on=True)
    for c, t in ((client, therapist), (other_client, other_therapist), (target, therapist),
                 (inactive, therapist), (pending_client, therapist),
                 (client_with_mfa, therapist)):
        db.session.add(Assignment(client_id=c.id, therapist_id=t.id))
    db.session.commit()

    policies.ensure_defaults(admin)
    policies.publish(admin, slug="accessibility",
                     text=f"# Accessibility\n\n{XSS_TAGS}\n\n[link]({JS_URL}) {XSS_ATTR}\n",
                     effective_date=practice.today(), summary=f"Changed {XSS_TAGS}",
                     requires_acceptance=False)
    for person in (client, other_client, target, client_with_mfa):
        pending = policies.pending_for(person)
        if pending:
            policies.accept(person, [v.id for v in pending], ip="127.0.0.1")

    thread, message = messaging.start_thread(
        client, counterpart_id=therapist.id, subject=f"Subject {XSS_ATTR}",
        body=f"Body {XSS_TAGS} {SSTI}", files=[(f"{XSS_TAGS}.pdf", PDF)], notify=False)
    messaging.reply(therapist, thread.id, body=f"Reply {XSS_ATTR}", notify=False)
    # Crisis-flagged, so its thread page shows the "Mark seen and acted on" form.
    closed_thread, _ = messaging.start_thread(client, counterpart_id=therapist.id,
                                              subject="Closed", body="Done. I want to die",
                                              notify=False)
    messaging.set_closed(therapist, closed_thread.id, True)
    other_thread, _ = messaging.start_thread(other_client, counterpart_id=other_therapist.id,
                                             subject="Other", body="Other body", notify=False)
    attachment_id = db.session.scalar(select(Attachment.id).where(
        Attachment.message_id == message.id))

    today = practice.today()
    issued_draft = drafting.create_draft(therapist, client)
    drafting.save_draft(therapist, issued_draft, complete_draft(
        today, client_address=f"12 Walnut Street {XSS_TAGS}\nTrappe, PA 19426",
        separately_scheduled=f"None anticipated {XSS_ATTR}",
        period_start=today))  # begun, so the bill dated today below is for its care
    issued = issuing.issue(therapist, issued_draft.id)
    billing.record_bill(therapist, issued, provider_position=0, amount_cents=120_00,
                        bill_date=today)
    db.session.commit()
    draft = drafting.create_draft(therapist, client)
    drafting.save_draft(therapist, draft, complete_draft(
        today, primary_service=f"Therapy {XSS_TAGS}"))
    bill_id = db.session.scalar(select(BilledAmount.id).where(
        BilledAmount.estimate_id == issued.id))

    grant = emergency.grant(admin, client_id=client.id,
                            reason=f"Welfare check requested by the police {XSS_TAGS}")

    invited, link = accounts.create_user(admin, role="client", name=f"Iris {XSS_TAGS}",
                                         email=f"invited-{uuid.uuid4().hex[:6]}@example.org",
                                         therapist_ids=[therapist.id])
    reset_token = tokens.issue(other_client.id, TokenPurpose.RESET, timedelta(minutes=30))
    db.session.commit()
    # An email correction waiting (shown on the target's admin page; its link's pages).
    moving = email_change.request_email_change(
        admin, target, f"moved-{uuid.uuid4().hex[:6]}@example.org")

    # A request for a copy (open: its page shows the administrator's forms) and a disclosure.
    from portal.ops import holds
    from portal.records import disclosures as record_disclosures
    from portal.records import requests as record_requests

    hold = holds.place(admin, target, "dispute")  # the release route's <hold_id>
    # The target is a minor with a guardian (the admin's guardian pages' <link_id>).
    from portal.guardians import links as guardian_links

    guardian = make_user("guardian", f"Gale {XSS_TAGS}", mfa_on=False)
    guardian_links.record_minor(admin, target, born=guardian_links.birthday(today, -15),
                                consent_by="guardian")
    guardianship = guardian_links.link(admin, guardian, target)
    pending = policies.pending_for(guardian)
    if pending:  # past the acceptance gate, so the walks reach a guardian's pages
        policies.accept(guardian, [v.id for v in pending], ip="127.0.0.1")
    # The guardian's own conversation about the minor (the guardian is a role of the walks).
    messaging.start_thread(guardian, counterpart_id=therapist.id, subject=f"About Q {XSS_TAGS}",
                           body=f"A parent's note {XSS_ATTR}", notify=False,
                           about_client_id=target.id)
    record_request = record_requests.make(client, client, "copy", f"My notes {XSS_TAGS}")
    disclosure = record_disclosures.record_disclosure(
        therapist, client, disclosed_on=today, recipient=f"A court {XSS_ATTR}",
        content=f"Dates {XSS_TAGS}", purpose=f"Subpoena {SSTI}")

    ids = {
        "thread_id": thread.id, "other_thread_id": other_thread.id,
        "closed_thread_id": closed_thread.id,
        "message_id": message.id, "attachment_id": attachment_id,
        "estimate_id": issued.id, "draft_id": draft.id, "bill_id": bill_id,
        "grant_id": grant.id, "user_id": target.id, "therapist_id": therapist.id,
        "inactive_id": inactive.id, "invited_id": invited.id,
        "slug": "accessibility", "number": 1,
        "request_id": record_request.id, "disclosure_id": disclosure.id,
        "client_id": client.id, "hold_id": hold.id, "link_id": guardianship.id,
    }
    users = {"client": client, "therapist": therapist, "admin": admin,
             "other_client": other_client, "target": target, "inactive": inactive,
             "staff_signing_in": staff_signing_in, "other_therapist": other_therapist,
             "pending_client": pending_client, "client_with_mfa": client_with_mfa,
             "guardian": guardian}
    return World(app, users, ids,
                 {"invitation": link.rsplit("/", 1)[1], "reset": reset_token,
                  "email_change": moving.rsplit("/", 1)[1]},
                 WriteLog(db.engine))


def real_value(world: World, rule: Rule, arg: str) -> str:
    """Return a real id (or slug, number, token) for one of a route's arguments."""
    drafts_only = rule.endpoint in ("estimates.edit", "estimates.review", "estimates.issue",
                                    "estimates.discard")
    if arg == "estimate_id" and drafts_only:
        return str(world.ids["draft_id"])
    if arg == "token":
        kinds = {"accounts.reset_link": "reset", "accounts.email_change_link": "email_change"}
        return world.tokens[kinds.get(rule.endpoint, "invitation")]
    if arg == "filename":
        return "css/portal.css"
    if arg == "session_id":
        return str(uuid.uuid4())  # filled per client by the tests (a session of one's own)
    if arg == "form_key":  # a draft's form (portal/messaging/drafts.py): a reply in the thread
        return f"reply:{world.ids['thread_id']}"
    if arg not in world.ids:
        raise AssertionError(f"{rule.endpoint}: no real value for <{arg}>; add one to the "
                             "world in tests/security/support.py")
    return str(world.ids[arg])


def build_url(rule: Rule, values: dict[str, str]) -> str:
    """Fill a rule's placeholders with raw text (so bogus values reach the router as sent)."""
    from urllib.parse import quote

    path = rule.rule
    for name in rule.arguments:
        path = re.sub(rf"<(?:[^<>]*:)?{name}>", quote(values[name], safe="/%"), path)
    return path


def routes(app: Flask) -> Iterator[Rule]:
    """Every rule of the app, in a stable order."""
    yield from sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))


def is_local(location: str) -> bool:
    """Say whether a redirect stays on this site (a relative path, or localhost)."""
    parts = urlsplit(location)
    if parts.scheme or parts.netloc:
        return parts.scheme in ("http", "https") and parts.hostname == "localhost"
    return location.startswith("/") and not location.startswith("//")



# --- an actor: one role's client, token and view of the database ---------------------------------

# Where a wrong password or code counts towards the lockout, as at sign-in: a stolen session
# must not be a way to guess the password without the lockout and its email.
SIGNIN_ENDPOINTS = frozenset({"accounts.sign_in", "accounts.mfa_challenge",
                              "accounts.change_password", "accounts.mfa_disable",
                              "accounts.recovery_codes", "accounts.mfa_setup",
                              "records.export_confirm",
                              "records.staff_export_confirm"})
# Security logging that a refused request may (and should) leave behind.
REFUSAL_AUDIT = frozenset({"auth.lockout", "auth.password_disabled"})
COUNTER_COLUMNS = frozenset({"failed_signins", "total_failed_signins", "locked_until",
                             "password_disabled"})
REFUSAL_MAIL = frozenset({"lockout_notice", "password_disabled"})


def unexplained(found: list[Change], endpoint: str) -> list[Change]:
    """Return the changes a refused request must not make.

    A refusal may leave its own trace in the security log: an audit event marked as a failure
    (or recording that a record was read, when the refusal shows it again), and for sign-in
    steps the failed-attempt row, the account's failure counters and the lockout email.
    Anything else (a message, an estimate, an account change) is a problem.
    """
    audit_added = any(c.table == "audit_events" for c in found)
    left = []
    for change in found:
        row = change.row
        if change.kind == "changed" and change.columns and \
                change.columns <= VOLATILE.get(change.table, frozenset()):
            continue
        if change.table == "audit_events" and change.kind == "added" and (
                row.get("outcome") == "failure" or row.get("action") in REFUSAL_AUDIT
                or str(row.get("action", "")).endswith("viewed")):
            # A refused reply shows the conversation again: reading a record is logged.
            continue
        if change.table == "audit_head" and audit_added:
            continue
        if endpoint in SIGNIN_ENDPOINTS:
            if change.table == "signin_attempts" and change.kind == "added" \
                    and row.get("outcome") != "success":
                continue
            if change.table == "users" and change.kind == "changed" \
                    and change.columns <= COUNTER_COLUMNS:
                continue
            if change.table == "mail_outbox" and change.kind == "added" \
                    and _outbox_template(row) in REFUSAL_MAIL:
                continue
        left.append(change)
    return left


def _outbox_template(row: dict) -> str | None:
    """The template of an outbox row as it was inserted (sealed: opened with its key)."""
    if row.get("template_sealed") is None:
        return None
    return template_of(SimpleNamespace(id=row["id"], user_id=row["user_id"],
                                       template_sealed=row["template_sealed"]))


def actor_for(world: "World", role: str) -> "Actor":
    """Return this world's actor for a role, signed in once and reused by every test.

    Signing in is a request and a write; thousands of requests do not need a new session
    each. An actor that lost its session (a sign-out, a changed password) renews itself; an
    anonymous visitor starts afresh for each caller, since forms put state in its session (a
    pending code step, an invitation's token).
    """
    pool = world.__dict__.setdefault("_actors", {})
    actor = pool.get(role)
    if actor is None:
        actor = pool[role] = Actor(world, role)
    elif role == "anonymous" or not actor.session_alive():
        actor.renew()
    return actor


def another_sessions_csrf(world: "World") -> str:
    """Return the CSRF token of a session no actor uses (made once per world)."""
    if "_other_csrf" not in world.__dict__:
        world.__dict__["_other_csrf"] = signed_in_client(world.app, None)[1]
    return world.__dict__["_other_csrf"]


class Actor:
    """One role making requests: its client, CSRF token, and the database as last seen."""

    def __init__(self, world: World, role: str) -> None:
        self.world, self.role = world, role
        self.user = world.user_for(role)
        self.renew()

    def renew(self) -> None:
        """Start over with a fresh session (after a sign-out, or after signing someone in)."""
        self.client, self.csrf = signed_in_client(self.world.app, self.user)
        self._cookie_checked: tuple[str | None, bool] = (None, False)

    def still_signed_in(self) -> bool:
        """Say whether the client's cookie still carries this actor's server session."""
        if self.user is None:
            return True
        app = self.world.app
        cookie = self.client.get_cookie(app.config["SESSION_COOKIE_NAME"])
        if cookie is None:
            return False
        if cookie.value != self._cookie_checked[0]:  # decoding it is slow; most requests keep it
            data = app.session_interface.get_signing_serializer(app).loads(cookie.value)
            self._cookie_checked = (cookie.value, bool(data.get("sid")) and
                                    data.get("_user_id") == self.user.alt_id)
        return self._cookie_checked[1]

    def session_alive(self) -> bool:
        """Say whether the cookie's server session still exists for this actor (a request
        may have ended it without touching the cookie: sign out everywhere, a new alt id)."""
        if not self.still_signed_in():
            return False
        app = self.world.app
        cookie = self.client.get_cookie(app.config["SESSION_COOKIE_NAME"])
        data = app.session_interface.get_signing_serializer(app).loads(cookie.value)
        db.session.expire_all()
        row = db.session.scalar(select(UserSession).where(
            UserSession.token_hash == hashlib.sha256(data["sid"].encode()).digest()))
        alive = row is not None and row.user.alt_id == self.user.alt_id and row.user.active
        db.session.commit()
        return alive

    def refresh_csrf(self, path: str) -> None:
        token = csrf_from(self.client.get(path).get_data(as_text=True))
        if token:
            self.csrf = token

    def prepare(self, endpoint: str) -> None:
        """Put what a form needs into the session: a link's token, a pending code step."""
        import time

        if self.role != "anonymous":
            return
        if endpoint == "accounts.accept_invitation":
            self.client.get(f"/invitation/{self.world.tokens['invitation']}")
            self.refresh_csrf("/invitation")
        elif endpoint == "accounts.reset_password":
            self.client.get(f"/reset/{self.world.tokens['reset']}")
            self.refresh_csrf("/reset")
        elif endpoint == "accounts.confirm_email_change":
            self.client.get(f"/email-change/{self.world.tokens['email_change']}")
            self.refresh_csrf("/email-change")
        elif endpoint == "accounts.mfa_challenge":
            staff = self.world.users["staff_signing_in"]
            with self.client.session_transaction() as session:
                session["mfa_pending"] = {"uid": staff.alt_id, "at": time.time(), "next": None}

    def endpoint_of(self, url: str, method: str = "POST") -> str | None:
        adapter = self.world.app.url_map.bind("localhost")
        try:
            endpoint, _ = adapter.match(urlsplit(url).path, method=method)
        except Exception:
            return None
        return endpoint
