"""Emergency access (HIPAA 164.312(a)(2)(ii)): an administrator with two-step sign-in opens
one client's conversations, read-only, for 60 minutes, after writing down why.

The grant and every view under it are high-severity audit events (ids only); the written
reason may hold health information, so it is sealed and never put in the audit trail or an
email. Neither the grant row nor its audit events name the client to someone holding only the
database: the row keeps a keyed blind index of the client's id and the id itself sealed, the
events the client's keyed stand-in and a sealed detail (`emergency_index`; the model's
docstring says why both are sealed under the administrator's key). The reason's category (a
fixed list, `REASON_CATEGORIES`) is not sealed: the client's access log shows it. On a grant,
the client, each of their active therapists and the practice's other active administrators
are emailed one notice each (the same design, no name and no reason:
`templates/mail/emergency_access_*`), and the administrator is told exactly who was emailed.
The client sees all of it in "Who has seen my record".
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import abort, current_app
from sqlalchemy import select

from portal.accounts.identity import email_of, names_of
from portal.accounts.models import Role, User
from portal.accounts.service import therapists_of
from portal.crypto import DecryptionError, open_text, open_text_safe, preload_keys, seal
from portal.crypto.hooks import report_decrypt_failure
from portal.db import new_id, utcnow
from portal.db.transactions import write_transaction
from portal.errors import RuleError
from portal.extensions import db
from portal.mail import enqueue
from portal.messaging import access
from portal.messaging.emergency_index import client_index, is_index_of, record_emergency
from portal.messaging.models import EmergencyGrant, Thread, ThreadStatus
from portal.messaging.shown import ThreadRow

REASON_MIN = 20
REASON_MAX = 2000
DEFAULT_MINUTES = 60

# Why emergency access was opened, as the administrator chooses it (the form's choices) ...
REASON_CATEGORIES = {
    "safety": "Concern for the client's safety",
    "unreachable_therapist": "Their therapist cannot be reached",
    "legal": "A legal or regulatory request",
    "other": "Another reason",
}
# ... and as the client's access log says it, to the client.
REASON_FOR_CLIENT = {
    "safety": "concern for your safety",
    "unreachable_therapist": "your therapist could not be reached",
    "legal": "a legal or regulatory request",
    "other": "another reason (you are welcome to ask us about it)",
}


@dataclass(frozen=True)
class Told:
    """Who was emailed about a grant: the administrator's page says exactly this."""

    client: bool  # False when the client's portal access is paused or has no address
    therapists: tuple[str, ...]  # their names, as the administrator may see them
    admins: int  # other administrators

    def sentence(self, client_name: str) -> str:
        """Say who was emailed: "We emailed Alex Rivera, their therapist Colleen Xu and ..."."""
        told = []
        if self.client:
            told.append(client_name)
        if self.therapists:
            told.append(("their therapist " if len(self.therapists) == 1
                         else "their therapists ") + _and(list(self.therapists)))
        if self.admins:
            told.append(f"{self.admins} other administrator{'s' if self.admins != 1 else ''}")
        said = f"We emailed {_and(told)}." if told else "Nobody could be emailed."
        if not self.client:
            said += (f" {client_name} was not emailed: their portal access is paused or "
                     "has no email address.")
        if not self.therapists:
            said += " No therapist was told: the client has no active therapist assigned."
        if not self.admins:
            said += " You are the practice's only administrator, so no other administrator "\
                    "was told."
        return said


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@dataclass(frozen=True)
class GrantView:
    id: uuid.UUID
    client_name: str
    reason: str
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    active: bool
    category: str = ""  # the reason's kind, in the administrator's words


def minutes() -> int:
    return int(current_app.config.get("EMERGENCY_ACCESS_MINUTES", DEFAULT_MINUTES))


def may_use(user: User) -> bool:
    """Administrators with two-step sign-in on may ask for emergency access."""
    return user.role == Role.ADMIN and user.active and user.mfa_enabled


def clients_to_choose() -> list[tuple[uuid.UUID, str]]:
    """Every active client, by name (names open in the app, in one batch)."""
    clients = list(db.session.scalars(select(User).where(User.role == Role.CLIENT,
                                                         User.active.is_(True))))
    names = names_of(clients)
    return sorted(((c.id, names[c.id]) for c in clients), key=lambda p: p[1].casefold())


def other_admins(admin: User) -> list[User]:
    """The practice's other active administrators (those a grant's notice goes to)."""
    return list(db.session.scalars(select(User).where(
        User.role == Role.ADMIN, User.active.is_(True), User.id != admin.id)))


def grant(admin: User, *, client_id: uuid.UUID, reason: str,
          category: str = "other") -> EmergencyGrant:
    """Open a client's conversations to this administrator, read-only, for an hour, and
    email the client, their therapists and the other administrators (no PHI).

    The returned grant carries `told` (a `Told`): who was emailed.
    """
    if not may_use(admin):
        raise RuleError("Emergency access needs an administrator account with two-step "
                        "sign-in turned on.")
    reason = (reason or "").replace("\r\n", "\n").strip()
    if len(reason) < REASON_MIN:
        raise RuleError(f"Write the reason in at least {REASON_MIN} characters: what "
                        "happened, and why it cannot wait for the client's therapist.",
                        "reason")
    if len(reason) > REASON_MAX:
        raise RuleError(f"Keep the reason to {REASON_MAX:,} characters.", "reason")
    if category not in REASON_CATEGORIES:
        raise RuleError("Choose the kind of reason from the list.", "category")
    client = db.session.get(User, client_id) if isinstance(client_id, uuid.UUID) else None
    if client is None or client.role != Role.CLIENT:
        raise RuleError("Choose a client from the list.", "client")
    now = utcnow()
    index = client_index(client.id)
    current = db.session.scalar(select(EmergencyGrant).where(
        EmergencyGrant.admin_id == admin.id, EmergencyGrant.client_index == index,
        EmergencyGrant.ended_at.is_(None), EmergencyGrant.expires_at > now))
    if current is not None:
        raise RuleError("You already have emergency access to this client's "
                        "conversations.", "client")
    try:
        row = EmergencyGrant(id=new_id(), admin_id=admin.id, client_index=index,
                             reason_category=category, created_at=now,
                             expires_at=now + timedelta(minutes=minutes()))
        row.client_sealed = seal(admin.id, row.client_context(), str(client.id))
        row.reason_sealed = seal(admin.id, row.reason_context(), reason)
        db.session.add(row)
        db.session.flush()
        record_emergency(action="emergency.granted", admin=admin, grant_id=row.id,
                         client_id=client.id)
        told = _tell(admin, client)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    row.told = told  # not a column: what the administrator's page says next
    row.client_id = client_id  # not a column either: the page names the client
    return row


def _tell(admin: User, client: User) -> Told:
    """Email the client, their active therapists and the other active administrators that
    emergency access was opened: one design, three audiences, no name and no reason."""
    therapists = [t for t in therapists_of(client.id) if t.active]
    admins = other_admins(admin)
    preload_keys([client.id, *(t.id for t in therapists), *(a.id for a in admins)])
    base = current_app.config["PORTAL_BASE_URL"].rstrip("/")

    def send(user: User, template: str, path: str) -> bool:
        address = email_of(user)
        if address:
            enqueue(user, template, to_address=address, link=base + path)
        return bool(address)

    told_client = client.active and send(client, "emergency_access_client",
                                         "/account/access-log")
    told_therapists = [t for t in therapists if send(t, "emergency_access_therapist",
                                                     "/dashboard")]
    told_admins = [a for a in admins if send(a, "emergency_access_notice", "/admin/audit")]
    names = names_of(told_therapists)
    return Told(client=bool(told_client),
                therapists=tuple(names[t.id] for t in told_therapists),
                admins=len(told_admins))


def end(admin: User, grant_id: uuid.UUID) -> None:
    """End the administrator's own grant before its hour is up."""
    with write_transaction():
        row = access.emergency_grant_for(admin, grant_id)
        client_id = _client_of_live(row)
        row.ended_at = utcnow()
        record_emergency(action="emergency.ended", admin=admin, grant_id=row.id,
                         client_id=client_id)


def client_of(row: EmergencyGrant) -> uuid.UUID | None:
    """The client a grant concerns, opened from its sealed copy (under the administrator's
    key) and checked against the row's blind index; None (audited as a decrypt failure) when
    the copy will not open or names someone else: then the grant opens nothing."""
    try:
        client_id = uuid.UUID(open_text(row.admin_id, row.client_context(), row.client_sealed))
    except (DecryptionError, ValueError) as error:
        report_decrypt_failure(row.admin_id, row.client_context(),
                               getattr(error, "reason", "malformed"))
        return None
    if not is_index_of(row.client_index, client_id):
        report_decrypt_failure(row.admin_id, row.client_context(), "mismatch")
        return None
    return client_id


def _client_of_live(row: EmergencyGrant) -> uuid.UUID:
    """`client_of` for a page under the grant: 404 when it will not open."""
    client_id = client_of(row)
    if client_id is None:
        abort(404)
    return client_id


def grants_of(admin: User, limit: int = 10) -> list[GrantView]:
    """The administrator's recent grants, live ones first, with reasons opened."""
    rows = list(db.session.scalars(
        select(EmergencyGrant).where(EmergencyGrant.admin_id == admin.id)
        .order_by(EmergencyGrant.created_at.desc()).limit(limit)))
    preload_keys([admin.id])
    client_ids = {r.id: client_of(r) for r in rows}
    clients = list(db.session.scalars(select(User).where(
        User.id.in_({c for c in client_ids.values() if c})))) if rows else []
    names = names_of(clients)
    now = utcnow()
    views = [_view(r, names.get(client_ids[r.id], ""), active=r.is_active(now)) for r in rows]
    return sorted(views, key=lambda v: not v.active)


def _view(row: EmergencyGrant, client_name: str, *, active: bool) -> GrantView:
    """A grant as pages show it, with the reason opened."""
    return GrantView(row.id, client_name,
                     open_text_safe(row.admin_id, row.reason_context(), row.reason_sealed),
                     row.created_at, row.expires_at, row.ended_at, active,
                     REASON_CATEGORIES.get(row.reason_category, REASON_CATEGORIES["other"]))


def client_threads(admin: User, grant_id: uuid.UUID) -> tuple[GrantView, list[ThreadRow]]:
    """List the client's conversations under a live grant (audited, high severity)."""
    with write_transaction():
        row = access.emergency_grant_for(admin, grant_id)
        client_id = _client_of_live(row)
        threads = list(db.session.scalars(
            select(Thread).where(Thread.client_id == client_id)
            .order_by(Thread.last_message_at.desc())))
        people = list(db.session.scalars(select(User).where(
            User.id.in_({client_id} | {t.therapist_id for t in threads}))))
        names = names_of(people)
        view = _view(row, names.get(client_id, ""), active=True)
        rows = [ThreadRow(
            id=t.id, subject=open_text_safe(t.client_id, t.subject_context(), t.subject_sealed),
            client_id=t.client_id,
            person=names.get(t.therapist_id, ""), last_message_at=t.last_message_at,
            unread=0, closed=t.status == ThreadStatus.CLOSED) for t in threads]
        record_emergency(action="emergency.threads_listed", admin=admin, grant_id=row.id,
                         client_id=client_id)
    return view, rows
