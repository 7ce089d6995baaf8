"""Queue mail inside the caller's transaction; deliver it after commit, with retries.

`enqueue()` renders a template, seals the template's name, the subject, the recipient address
and the bodies (each framed to a fixed size: `models.framed`), and adds an outbox row to the
caller's session: the mail exists if and only if the change that caused it
was committed. When MAIL_SEND_AFTER_COMMIT is on, the rows a transaction queued are sent from
memory, in a short transaction of their own: right after its commit, or, for a commit made
while answering a request, once the answer has gone out (the mail server's round trips are
not the page's, and a mail that only real accounts get cannot be timed). Whatever fails there
stays pending for `deliver_pending()` (the `deliver-mail` worker or cron job), which retries
with backoff.

Nothing here logs or raises with an address, a link or a body in it: errors are recorded by
exception class name only.
"""

import logging
import os
import smtplib
import ssl
import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from flask import Flask, Response, current_app, g, has_app_context, has_request_context
from sqlalchemy import delete, event, func, or_, select, update
from sqlalchemy.orm import Session

import config as config_module
from portal import hooks
from portal.after_response import after_response
from portal.crypto import Context, DecryptionError, context_for, open_text, seal
from portal.db import new_id, utcnow
from portal.db.connections import scrub_deleted
from portal.extensions import db
from portal.mail.models import (  # noqa: F401 (template_of: re-exported)
    BODY_BLOCK,
    NAME_BLOCK,
    OutboxMessage,
    framed,
    subject_of,
    template_of,
    unframed,
)
from portal.mail.templates import TEMPLATES

log = logging.getLogger("portal.mail")

CLAIM_FOR = timedelta(minutes=2)
MAX_BACKOFF_MINUTES = 60
_AFTER_COMMIT_KEY = "portal.mail.after_commit"
_BACKGROUND_KEY = "portal.mail.background"  # sent by _Background, off the request's worker
_HELD_KEY = "portal_mail_held"  # on `g`: mail a request committed, sent after its answer
_TABLE = OutboxMessage.__table__


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    failed: int
    pending: int


@dataclass(frozen=True)
class Outgoing:
    """One message opened for sending; its repr shows no address or body."""

    id: uuid.UUID
    subject: str
    to: str = field(repr=False)
    text: str = field(repr=False)
    html: str | None = field(default=None, repr=False)
    attempts: int = 0


# --- queueing -------------------------------------------------------------------------------

def render(template: str, **context) -> tuple[str, str]:
    """Render a mail template's plain and HTML bodies with its context."""
    spec = _spec(template)
    _check_context(template, spec, context)
    cfg = current_app.config
    values = {**context, "practice": cfg["PRACTICE"], "subject": spec.subject,
              "base_url": cfg["PORTAL_BASE_URL"].rstrip("/")}
    # The Jinja environment directly, not render_template: page context processors (navigation,
    # current_user) do not belong in a mail and need a request that a CLI or worker lacks.
    env = current_app.jinja_env
    text = env.get_template(f"mail/{template}.txt").render(values)
    html = env.get_template(f"mail/{template}.html").render(values)
    return text, html


def enqueue(user, template: str, *, to_address: str | None = None, background: bool = False,
            **context) -> OutboxMessage:
    """Queue a templated mail to a user inside the caller's transaction (the caller commits).

    `background`: after commit, send it from the background thread, not the caller's."""
    if user is None or getattr(user, "id", None) is None:
        raise TypeError("enqueue needs the recipient's account (with an id)")
    text, html = render(template, **context)
    address = _usable_address(to_address if to_address is not None else _address_of(user))
    subject = TEMPLATES[template].subject
    row = OutboxMessage(id=new_id(), user_id=user.id, attempts=0)
    now = utcnow()
    row.created_at = row.next_attempt_at = now
    row.template_sealed = seal(user.id, _context(row.id, "template_sealed"),
                               framed(template, NAME_BLOCK))
    row.subject_sealed = seal(user.id, _context(row.id, "subject_sealed"),
                              framed(subject, NAME_BLOCK))
    row.recipient_sealed = seal(user.id, _context(row.id, "recipient_sealed"), address)
    row.body_text_sealed = seal(user.id, _context(row.id, "body_text_sealed"), framed(text))
    row.body_html_sealed = seal(user.id, _context(row.id, "body_html_sealed"), framed(html))
    db.session.add(row)
    if current_app.config.get("MAIL_SEND_AFTER_COMMIT"):
        pending = db.session.info.setdefault(_BACKGROUND_KEY if background
                                             else _AFTER_COMMIT_KEY, {})
        pending[row.id] = Outgoing(row.id, subject, address, text, html)
    return row


def body_text_of(row) -> str:
    """The plain-text body of an outbox row, opened."""
    return unframed(open_text(row.user_id, _context(row.id, "body_text_sealed"),
                               row.body_text_sealed))


def _spec(template: str):
    try:
        return TEMPLATES[template]
    except KeyError:
        raise ValueError(f"unknown mail template {template!r}") from None


def _check_context(template: str, spec, context: dict) -> None:
    missing = sorted(set(spec.required) - context.keys())
    unexpected = sorted(context.keys() - spec.accepts)
    if missing:
        raise TypeError(f"mail template {template!r} needs {', '.join(missing)}")
    if unexpected:
        raise TypeError(f"mail template {template!r} does not take {', '.join(unexpected)}")


def _address_of(user) -> str:
    return hooks.email_address_of(user)  # the accounts feature owns identities


def _usable_address(address: str | None) -> str:
    address = (address or "").strip()
    _, parsed = parseaddr(address)
    if (not parsed or parsed != address or "@" not in address or len(address) > 254
            or any(ch in address for ch in "\r\n\0")):
        raise ValueError("the recipient's email address is not usable")
    return address


def _context(row_id: uuid.UUID, column: str) -> Context:
    return context_for(getattr(OutboxMessage, column), row_id)


# --- sending right after commit -------------------------------------------------------------

def init_app(app: Flask) -> None:
    """Hold mail committed during a request until its answer has gone out."""
    app.before_request_funcs.setdefault(None, []).insert(0, _hold_mail)
    app.after_request(_send_held_mail)


def _hold_mail() -> None:
    g.setdefault(_HELD_KEY, [])


def _send_held_mail(response: Response) -> Response:
    # A commit after this point (a teardown hook's) sends at once: the list is gone.
    held = g.pop(_HELD_KEY, None)
    if held:
        app = current_app._get_current_object()
        after_response(response, lambda: _send_now(app, held), what="mail")
    return response


@event.listens_for(Session, "after_commit")
def _deliver_after_commit(session: Session) -> None:
    """Send what the committed transaction queued (in a request, once the answer is out);
    failures stay pending for the worker."""
    pending = session.info.pop(_AFTER_COMMIT_KEY, None)
    background = session.info.pop(_BACKGROUND_KEY, None)
    if not (pending or background) or not has_app_context():
        return
    app = current_app._get_current_object()
    if not app.config.get("MAIL_SEND_AFTER_COMMIT"):
        return
    if background:
        _background.submit(app, list(background.values()))
    if not pending:
        return
    held = g.get(_HELD_KEY) if has_request_context() else None
    if held is not None:
        held.extend(pending.values())
    else:
        _send_now(app, list(pending.values()))


def _send_now(app: Flask, items: list[Outgoing]) -> None:
    try:
        with app.app_context():
            _send_from_memory(app.config, items)
    except Exception as exc:  # never into the request: the rows are still pending
        log.warning("mail: sending after commit failed (%s); left for the worker",
                    type(exc).__name__)


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_AFTER_COMMIT_KEY, None)
        session.info.pop(_BACKGROUND_KEY, None)


class _Background:
    """One sending thread per process, started on first use (and again in a forked child)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._jobs: list = []
        self._wake = threading.Condition(self._lock)
        self._busy = 0

    def submit(self, app: Flask, items: list[Outgoing]) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked worker has no thread of its parent's
                self._pid, self._jobs, self._busy = os.getpid(), [], 0
                threading.Thread(target=self._run, name="mail-background", daemon=True).start()
            self._jobs.append((app, items))
            self._busy += 1
            self._wake.notify_all()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._jobs:
                    self._wake.wait()
                app, items = self._jobs.pop(0)
            try:
                _send_now(app, items)
            finally:
                with self._lock:
                    self._busy -= 1
                    self._wake.notify_all()

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far was tried (for tests); False on timeout."""
        with self._lock:
            return self._wake.wait_for(lambda: self._busy == 0, timeout)


_background = _Background()


def wait_for_background(timeout: float = 10.0) -> bool:
    """Wait until the background thread has tried every mail given to it so far."""
    return _background.wait(timeout)


def _send_from_memory(config, items: list[Outgoing]) -> None:
    # The committing session cannot run SQL inside after_commit; use a short one of our own.
    with Session(db.engine) as session:
        now = utcnow()
        claimed = set(session.scalars(
            update(_TABLE).where(_TABLE.c.id.in_([item.id for item in items]), _claimable(now))
            .values(claimed_until=now + CLAIM_FOR).returning(_TABLE.c.id)))
        session.commit()
        sent = failed = 0
        with Transport(config) as transport:
            for item in items:
                if item.id not in claimed:
                    continue  # rolled back in a savepoint, or a worker has it
                error = transport.send(item)
                session.execute(_result_statement(item, error, utcnow()))
                session.commit()
                sent, failed = sent + (error is None), failed + (error is not None)
    log.info("mail: after commit %d sent, %d failed", sent, failed)


# --- the worker -----------------------------------------------------------------------------

def deliver_pending(limit: int = 100) -> DeliveryReport:
    """Claim due messages, send them, and record each result; owns its transactions.

    Call it outside a unit of work (the CLI worker, a cron job, a test after commit): it
    commits the session it runs in.
    """
    session = db.session
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("deliver_pending commits; commit or roll back your changes first")
    session.commit()
    ids = _claim(limit)
    items, unopened = _open(ids)
    sent = failed = 0
    with Transport(current_app.config) as transport:
        for row_id in ids:
            if row_id in unopened:
                item, error = unopened[row_id]
            elif row_id in items:
                item = items[row_id]
                error = transport.send(item)
            else:
                continue  # deleted since we claimed it (its account was removed)
            session.execute(_result_statement(item, error, utcnow()))
            session.commit()
            sent, failed = sent + (error is None), failed + (error is not None)
    pending = session.scalar(
        select(func.count()).select_from(_TABLE).where(_TABLE.c.sent_at.is_(None))) or 0
    session.commit()
    log.info("mail: %d sent, %d failed, %d pending", sent, failed, pending)
    return DeliveryReport(sent, failed, pending)


def _claimable(now: datetime):
    return (_TABLE.c.sent_at.is_(None)
            & or_(_TABLE.c.claimed_until.is_(None), _TABLE.c.claimed_until <= now))


def _claim(limit: int) -> list[uuid.UUID]:
    """Mark up to `limit` due rows as ours for two minutes; other workers skip them."""
    session = db.session
    now = utcnow()
    due = (select(_TABLE.c.id).where(_claimable(now), _TABLE.c.next_attempt_at <= now)
           .order_by(_TABLE.c.next_attempt_at, _TABLE.c.created_at).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    candidates = list(session.scalars(due))
    claimed: set[uuid.UUID] = set()
    if candidates:
        # The conditions again: a worker on a database without row locks may have won the race.
        claimed = set(session.scalars(
            update(_TABLE).where(_TABLE.c.id.in_(candidates), _claimable(now))
            .values(claimed_until=now + CLAIM_FOR).returning(_TABLE.c.id)))
    session.commit()
    return [row_id for row_id in candidates if row_id in claimed]


def _open(ids: list[uuid.UUID]) -> tuple[dict[uuid.UUID, Outgoing],
                                         dict[uuid.UUID, tuple[Outgoing, str]]]:
    """Open the claimed rows' sealed fields; return them, and what would not open and why."""
    items: dict[uuid.UUID, Outgoing] = {}
    failures: dict[uuid.UUID, tuple[Outgoing, str]] = {}
    if ids:
        for row in db.session.execute(select(_TABLE).where(_TABLE.c.id.in_(ids))):
            try:
                items[row.id] = _opened(row)
            except DecryptionError as exc:
                failures[row.id] = (Outgoing(row.id, "", "", "", None, row.attempts),
                                    type(exc).__name__)
    db.session.commit()  # release the read before talking to the mail server
    return items, failures


def _opened(row) -> Outgoing:
    if row.user_id is None:
        raise DecryptionError("the message has no owner to open it with")
    to = open_text(row.user_id, _context(row.id, "recipient_sealed"), row.recipient_sealed)
    text = body_text_of(row)
    html = None
    if row.body_html_sealed is not None:
        html = unframed(open_text(row.user_id, _context(row.id, "body_html_sealed"),
                                   row.body_html_sealed))
    return Outgoing(row.id, subject_of(row), to, text, html, row.attempts)


def backoff(attempts: int) -> timedelta:
    """Wait 1, 2, 4, 8 ... minutes after each failed attempt, at most an hour."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), MAX_BACKOFF_MINUTES))


def _result_statement(item: Outgoing, error: str | None, now: datetime):
    stmt = update(_TABLE).where(_TABLE.c.id == item.id, _TABLE.c.sent_at.is_(None))
    if error is None:
        return stmt.values(sent_at=now, claimed_until=None, last_error=None)
    return stmt.values(attempts=_TABLE.c.attempts + 1, claimed_until=None,
                       next_attempt_at=now + backoff(item.attempts + 1),
                       last_error=error[:200])


def purge_delivered(older_than_days: float | None = None) -> int:
    """Delete messages sent more than `older_than_days` ago (by default MAIL_KEEP_SENT_MINUTES:
    none is kept, since a row names whom it went to); return how many (commits)."""
    if older_than_days is None:
        older_than_days = current_app.config.get("MAIL_KEEP_SENT_MINUTES", 0) / (24 * 60)
    cutoff = utcnow() - timedelta(days=older_than_days)
    result = db.session.execute(
        delete(_TABLE).where(_TABLE.c.sent_at.is_not(None), _TABLE.c.sent_at < cutoff))
    db.session.commit()
    purged = result.rowcount or 0
    if purged:
        scrub_deleted(db.engine)  # no older copy of the rows left in SQLite's WAL or file
    return purged


# --- the wire -------------------------------------------------------------------------------

_plaintext_noted: set[tuple[str, int]] = set()


def _note_plaintext(cfg, host: str, port: int) -> None:
    """Log once per process and relay that mail goes without TLS, with the operator's reason."""
    reason = config_module.plaintext_mail_reason(cfg)
    if reason is None or (host, port) in _plaintext_noted:
        return
    _plaintext_noted.add((host, port))
    log.warning("mail: sending without TLS to the relay at %s:%s "
                "(MAIL_ALLOW_PLAINTEXT_LOOPBACK: %s)", host, port, reason[:200])


class Transport:
    """One SMTP connection for a batch, or the console when MAIL_SERVER is not set.

    `send()` returns None when the message went, else the exception's class name. After a
    failed connection the rest of the batch fails fast with the same name.
    """

    def __init__(self, config, stream=None):
        self.config = config
        self.stream = stream
        self._smtp: smtplib.SMTP | None = None
        self._connect_error: str | None = None

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def send(self, item: Outgoing) -> str | None:
        if not self.config.get("MAIL_SERVER"):
            return self._to_console(item)
        if self._connect_error:
            return self._connect_error
        try:
            if self._smtp is None:
                self._smtp = self._connect()
        except Exception as exc:
            self._connect_error = type(exc).__name__
            return self._connect_error
        try:
            self._smtp.send_message(self._message(item), from_addr=self._from_address(),
                                    to_addrs=[item.to])
        except Exception as exc:
            if isinstance(exc, smtplib.SMTPServerDisconnected | OSError):
                self._drop()
            return type(exc).__name__
        return None

    def close(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except Exception:  # the server went away; nothing to tidy
            self._drop()
        self._smtp = None

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def _connect(self) -> smtplib.SMTP:
        """Open the connection: implicit TLS (MAIL_USE_SSL), STARTTLS (MAIL_USE_TLS, refused
        with SMTPNotSupportedError when the server does not offer it), or plain text (which
        production allows only to a loopback relay with a reason; see config.py)."""
        cfg = self.config
        host, port = cfg["MAIL_SERVER"], int(cfg.get("MAIL_PORT") or 25)
        timeout = cfg.get("MAIL_TIMEOUT") or 10
        if cfg.get("MAIL_USE_SSL"):
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        try:
            smtp.ehlo()
            if cfg.get("MAIL_USE_TLS") and not cfg.get("MAIL_USE_SSL"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            elif not cfg.get("MAIL_USE_SSL"):
                _note_plaintext(cfg, host, port)
            if cfg.get("MAIL_USERNAME"):
                smtp.login(cfg["MAIL_USERNAME"], cfg.get("MAIL_PASSWORD") or "")
        except Exception:
            smtp.close()
            raise
        return smtp

    def _from_address(self) -> str:
        return parseaddr(self.config["MAIL_FROM"])[1]

    def _message(self, item: Outgoing) -> EmailMessage:
        sender = self._from_address()
        domain = sender.rpartition("@")[2] or "localhost"
        msg = EmailMessage()
        msg["Subject"] = item.subject
        msg["From"] = self.config["MAIL_FROM"]
        msg["To"] = item.to
        msg["Date"] = formatdate(usegmt=True)
        # Stable per outbox row, so a resend after a crash is recognisably the same message.
        msg["Message-ID"] = f"<{item.id}@{domain}>"
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(item.text)
        if item.html:
            msg.add_alternative(item.html, subtype="html")
        return msg

    def _to_console(self, item: Outgoing) -> str | None:
        if self.config.get("ENV_NAME") == "production":
            return "MailServerNotConfigured"
        out = self.stream or sys.stdout
        rule = "=" * 72
        print(rule, file=out)
        print("DEVELOPMENT CONSOLE MAIL - not sent (MAIL_SERVER is not set)", file=out)
        print(f"From: {self.config['MAIL_FROM']}", file=out)
        print(f"To: {item.to}", file=out)
        print(f"Subject: {item.subject}", file=out)
        print("", file=out)
        print(item.text.rstrip("\n"), file=out)
        print(rule, file=out)
        out.flush()
        return None
