"""Messaging rules: start a conversation, reply, read, close, download, and the list pages.

Every function takes plain values and the acting user, loads protected rows only through
`portal.access`, owns its transaction (commits once, or rolls back and raises) and writes its
audit events with ids only. Pages get plain view objects with the sealed fields already
opened, so a template never touches the database or the keys.
"""

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Uuid, and_, bindparam, case, func, select, tuple_, update

from portal import access
from portal.accounts.identity import names_by_id, names_of
from portal.accounts.models import Assignment, Role, User
from portal.audit import events_for_subject, record
from portal.crypto import (
    UNREADABLE,
    Context,
    DecryptionError,
    open_bytes,
    open_text,
    open_text_safe,
    preload_keys,
    seal,
)
from portal.crypto.hooks import report_decrypt_failure
from portal.db import new_id, utcnow
from portal.db.transactions import write_transaction
from portal.extensions import db
from portal.messaging import crisis, notifications
from portal.messaging.attachments import (
    KINDS,
    CheckedFile,
    Refused,
    check_file,
    clean_name,
)
from portal.messaging.models import (
    Attachment,
    Message,
    Thread,
    ThreadStatus,
    attachment_name_context,
    body_context,
)
from portal.text import size_text

THREAD_PAGE = 50
LIST_PAGE = 25
SUBJECT_MAX = 150
SEARCH_MAX = 100
FILTERS = ("all", "awaiting", "unread")
TICK = timedelta(microseconds=1)


class Unreadable(Exception):
    """A sealed attachment would not open (audited by the crypto hooks); never a 500."""


class MessageError(Exception):
    """A rule refused the message; `field` names the form field, `refused` lists files."""

    def __init__(self, message: str, field: str | None = None,
                 refused: Sequence[tuple[str, str]] = ()):
        super().__init__(message)
        self.message = message
        self.field = field
        self.refused = list(refused)


# --- view objects ------------------------------------------------------------------------

@dataclass(frozen=True)
class AttachmentView:
    id: uuid.UUID
    name: str
    kind_label: str
    size_text: str


@dataclass(frozen=True)
class MessageView:
    id: uuid.UUID
    mine: bool
    sender_role: str
    author: str
    body: str
    unreadable: bool
    created_at: datetime
    read_at: datetime | None
    crisis_flag: bool
    attachments: list[AttachmentView] = field(default_factory=list)


@dataclass(frozen=True)
class ThreadPage:
    id: uuid.UUID
    subject: str
    closed: bool
    closed_at: datetime | None
    client_id: uuid.UUID
    client_name: str
    therapist_name: str
    viewer_role: str
    emergency: bool
    messages: list[MessageView]
    older_cursor: uuid.UUID | None
    paged: bool
    can_reply: bool
    reply_note: str | None
    crisis_flagged: bool


@dataclass(frozen=True)
class ThreadRow:
    id: uuid.UUID
    subject: str
    person: str  # the therapist (client's inbox) or the client (therapist's dashboard)
    last_message_at: datetime
    unread: int
    closed: bool
    awaiting_since: datetime | None = None
    crisis: bool = False


@dataclass(frozen=True)
class ListPage:
    rows: list[ThreadRow]
    page: int
    pages: int
    total: int
    counts: dict[str, int] = field(default_factory=dict)
    unread_messages: int | None = None  # the navigation badge, when the page knows it


@dataclass(frozen=True)
class Download:
    name: str
    content_type: str
    data: bytes


@dataclass
class AccessEntry:
    at: datetime
    who: str
    role: str
    what: str
    emergency: bool
    times: int = 1


# --- checks ------------------------------------------------------------------------------

def _config(name: str):
    return current_app.config[name]


def clean_body(body: str | None) -> str:
    """Normalize line breaks and check the length (the form checks it first, as typed)."""
    text = (body or "").replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    limit = _config("MESSAGE_MAX_CHARS")
    if len(text) > limit:
        raise MessageError(f"Your message is {len(text) - limit:,} characters too long. "
                           f"Please keep it to {limit:,} characters.", "body")
    return text.strip("\n")


def clean_subject(subject: str | None) -> str:
    text = " ".join((subject or "").split())
    if not text:
        raise MessageError("Give the conversation a short subject.", "subject")
    if len(text) > SUBJECT_MAX:
        raise MessageError(f"Keep the subject to {SUBJECT_MAX} characters.", "subject")
    return text


def check_files(files: Iterable[tuple[str | None, bytes]]) -> list[CheckedFile]:
    """Check every file; raise MessageError naming each refused file and why."""
    files = list(files)
    most = _config("ATTACHMENT_MAX_COUNT")
    if len(files) > most:
        raise MessageError(f"You can attach up to {most} files to one message; you chose "
                           f"{len(files)}.", "attachments")
    checked, refused = [], []
    for name, data in files:
        try:
            checked.append(check_file(name, data, max_bytes=_config("ATTACHMENT_MAX_BYTES")))
        except Refused as problem:
            refused.append((clean_name(name), problem.reason))
    if refused:
        raise MessageError("Some files could not be attached.", "attachments", refused)
    return checked


# --- sending -----------------------------------------------------------------------------

def counterparts(user: User) -> list[User]:
    """Who the user may start a conversation with: their therapists, or their clients."""
    if user.role == Role.CLIENT:
        partner, mine = Assignment.therapist_id, Assignment.client_id
    elif user.role == Role.THERAPIST:
        partner, mine = Assignment.client_id, Assignment.therapist_id
    else:
        return []
    return list(db.session.scalars(
        select(User).join(Assignment, partner == User.id)
        .where(mine == user.id, User.active.is_(True)).order_by(User.created_at)))


# Prebuilt statements name their parameters' types: a foreign key column has no type of its
# own until the table it points at is defined, which depends on the order of imports.
_ASSIGNMENT = select(Assignment.id).where(
    Assignment.client_id == bindparam("client_id", type_=Uuid()),
    Assignment.therapist_id == bindparam("therapist_id", type_=Uuid()))


def _assigned(client_id: uuid.UUID, therapist_id: uuid.UUID) -> bool:
    return db.session.execute(
        _ASSIGNMENT, {"client_id": client_id, "therapist_id": therapist_id}).first() is not None


def start_thread(actor: User, *, counterpart_id: uuid.UUID, subject: str, body: str,
                 files: Sequence[tuple[str | None, bytes]] = (), notify: bool = True
                 ) -> tuple[Thread, Message]:
    """Start a conversation with an assigned therapist (or client) and send its first message."""
    subject, text = clean_subject(subject), clean_body(body)
    if not text.strip():
        raise MessageError("Write your message.", "body")
    checked = check_files(files)
    counterpart = db.session.get(User, counterpart_id) if counterpart_id else None
    if actor.role == Role.CLIENT:
        client, therapist = actor, counterpart
    elif actor.role == Role.THERAPIST:
        client, therapist = counterpart, actor
    else:
        raise MessageError("Only clients and their therapists write messages.", "recipient")
    if (client is None or therapist is None or client.role != Role.CLIENT
            or therapist.role != Role.THERAPIST or not counterpart.active
            or not _assigned(client.id, therapist.id)):
        raise MessageError("Choose someone from the list.", "recipient")
    try:
        now = utcnow()
        thread = Thread(id=new_id(), client_id=client.id, therapist_id=therapist.id,
                        created_by_id=actor.id, status=ThreadStatus.OPEN, created_at=now,
                        last_message_at=now, message_count=0, client_unread=0,
                        therapist_unread=0)
        thread.subject_sealed = seal(client.id, thread.subject_context(), subject)
        db.session.add(thread)
        db.session.flush()
        record("thread.created", actor=actor, target=("thread", thread.id),
               subject_id=client.id)
        message = _append(thread, actor, text, checked, subject=subject,
                          recipient=counterpart, notify=notify)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return thread, message


def reply(actor: User, thread_id: uuid.UUID, *, body: str,
          files: Sequence[tuple[str | None, bytes]] = (), notify: bool = True) -> Message:
    """Add a message to a conversation the actor takes part in (reopens a closed one)."""
    text = clean_body(body)
    checked = check_files(files)
    if not text.strip() and not checked:
        raise MessageError("Write your message, or attach a file.", "body")
    try:
        thread = access.thread_for(actor, thread_id, write=True)  # takes the row lock
        if actor.role == Role.CLIENT and not _assigned(thread.client_id, thread.therapist_id):
            raise MessageError("This conversation is read-only now: this therapist is no "
                               "longer assigned to you. You can start a new conversation "
                               "with your current therapist.", "body")
        other_id = thread.therapist_id if actor.id == thread.client_id else thread.client_id
        recipient = db.session.get(User, other_id)
        message = _append(thread, actor, text, checked, recipient=recipient, notify=notify)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return message


def _append(thread: Thread, sender: User, text: str, files: list[CheckedFile], *,
            recipient: User | None, notify: bool, subject: str | None = None) -> Message:
    """Write one message, its attachments and the thread's state (caller holds the lock)."""
    now = utcnow()
    if thread.message_count and now <= thread.last_message_at:
        now = thread.last_message_at + TICK  # keep a thread's order strict under concurrency
    owner = thread.client_id
    from_client = sender.id == thread.client_id
    flagged = from_client and crisis.matches(subject, text)
    message = Message(id=new_id(), thread_id=thread.id, sender_id=sender.id,
                      sender_role=str(sender.role), created_at=now, crisis_flag=flagged)
    message.body_sealed = seal(owner, message.body_context(), text)
    rows: list[object] = [message]
    for position, checked in enumerate(files):
        attachment = Attachment(id=new_id(), message_id=message.id, position=position,
                                kind=checked.kind.key, size=checked.size, created_at=now)
        attachment.name_sealed = seal(owner, attachment.name_context(), checked.name)
        attachment.content_sealed = seal(owner, attachment.content_context(), checked.data)
        rows.append(attachment)
    db.session.add_all(rows)

    thread.last_message_at = now
    thread.message_count = (thread.message_count or 0) + 1
    if (thread.client_unread if from_client else thread.therapist_unread):
        _mark_read(sender, thread, now, locked=True)  # answering means having read it
    if from_client:
        thread.therapist_unread = (thread.therapist_unread or 0) + 1
        if thread.awaiting_since is None:
            thread.awaiting_since = now
        if flagged and thread.crisis_flagged_at is None:
            thread.crisis_flagged_at = now
    else:
        thread.client_unread = (thread.client_unread or 0) + 1
        thread.awaiting_since = None
        thread.crisis_flagged_at = None
    if thread.status == ThreadStatus.CLOSED:
        thread.status, thread.closed_at, thread.closed_by_id = ThreadStatus.OPEN, None, None
        record("thread.reopened", actor=sender, target=("thread", thread.id),
               subject_id=owner)
    if notify:
        notifications.notify(thread, recipient, now=now)
    record("message.sent", actor=sender, target=("message", message.id), subject_id=owner)
    if flagged:
        record("message.crisis_flagged", actor=sender, target=("message", message.id),
               subject_id=owner, severity="high")
    return message


def set_closed(actor: User, thread_id: uuid.UUID, closed: bool) -> None:
    """Mark a conversation closed (therapists) or open again (therapists; clients by replying)."""
    try:
        thread = access.thread_for(actor, thread_id, write=True)
        if actor.id != thread.therapist_id:
            raise MessageError("Only the therapist can close or reopen a conversation.")
        if closed and thread.status != ThreadStatus.CLOSED:
            thread.status, thread.closed_at, thread.closed_by_id = (
                ThreadStatus.CLOSED, utcnow(), actor.id)
            thread.awaiting_since = None
            thread.crisis_flagged_at = None
            record("thread.closed", actor=actor, target=("thread", thread.id),
                   subject_id=thread.client_id)
        elif not closed and thread.status == ThreadStatus.CLOSED:
            thread.status, thread.closed_at, thread.closed_by_id = ThreadStatus.OPEN, None, None
            record("thread.reopened", actor=actor, target=("thread", thread.id),
                   subject_id=thread.client_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


# --- reading -----------------------------------------------------------------------------

def _mark_read(reader: User, thread: Thread, now: datetime, *, locked: bool = False,
               seen_through: datetime | None = None) -> None:
    """Mark the other side's messages read, zero the reader's count, withdraw their notice.

    `seen_through`: the newest message the reader was shown. One that arrived after the page
    was read stays unread, with its count and its notice, so no one is told "read" about a
    message that was never on screen.
    """
    if not locked:
        db.session.scalar(select(Thread).where(Thread.id == thread.id).with_for_update()
                          .execution_options(populate_existing=True))
    theirs = [Message.thread_id == thread.id, Message.sender_id != reader.id,
              Message.read_at.is_(None)]
    seen = theirs if seen_through is None else [*theirs, Message.created_at <= seen_through]
    db.session.execute(update(Message).where(*seen).values(read_at=now)
                       .execution_options(synchronize_session=False))
    unread = 0 if seen_through is None else db.session.scalar(
        select(func.count()).select_from(Message).where(*theirs))
    if reader.id == thread.client_id:
        thread.client_unread = unread
    else:
        thread.therapist_unread = unread
    if not unread:
        notifications.withdraw(thread, reader.id, now=now)


def _has_unread(reader: User, thread: Thread) -> bool:
    """Anything for this reader to mark read, or a notice of theirs to withdraw?"""
    if reader.id == thread.client_id:
        return bool(thread.client_unread or thread.client_notice_id)
    return bool(thread.therapist_unread or thread.therapist_notice_id)


def view_thread(viewer: User, thread_access: access.ThreadAccess, *,
                before: uuid.UUID | None = None) -> ThreadPage:
    """Open a conversation page, then mark it read (participants) and audit the view.

    The page is built from a read transaction; the writes follow in a short transaction of
    their own, so SQLite's write lock is not held while messages are decrypted. The page is
    only returned once the view is on the audit trail. A participant's read need not wait
    for the disk (see `portal.db.transactions`).
    """
    thread = thread_access.thread
    cursor = None
    if before is not None:
        cursor = access.message_for(viewer, before, thread_id=thread.id)
    page = _thread_page(viewer, thread_access, cursor)
    mark_read = (not thread_access.emergency and cursor is None and page.messages
                 and _has_unread(viewer, thread))
    # A participant's view only records a read; a view under emergency access is a
    # high-severity event the client is shown, so it waits for the disk like any change.
    with write_transaction(durable=thread_access.emergency):
        if thread_access.emergency:
            record("emergency.thread_viewed", actor=viewer, target=("thread", thread.id),
                   subject_id=thread.client_id, severity="high")
        else:
            if mark_read:
                _mark_read(viewer, thread, utcnow(), seen_through=page.messages[-1].created_at)
            record("thread.viewed", actor=viewer, target=("thread", thread.id),
                   subject_id=thread.client_id)
    return page


def _open_body(owner: uuid.UUID, message_id: uuid.UUID, blob: bytes) -> tuple[str, bool]:
    """Open a message body; (UNREADABLE, True) and an audited failure if it will not open."""
    context = body_context(message_id)
    try:
        return open_text(owner, context, blob), False
    except DecryptionError as exc:
        report_decrypt_failure(owner, context, exc.reason)
        return UNREADABLE, True


def _thread_page(viewer: User, thread_access: access.ThreadAccess,
                 cursor: Message | None) -> ThreadPage:
    """Build the page from plain rows: a page of 50 messages should not cost 50 models."""
    thread = thread_access.thread
    owner = thread.client_id
    found, older = _page_of_messages(thread.id, cursor)
    files: dict[uuid.UUID, list[AttachmentView]] = {}
    for row in found:
        if row.file_id is not None:
            files.setdefault(row.id, []).append(AttachmentView(
                id=row.file_id, name=open_text_safe(owner, attachment_name_context(row.file_id),
                                                    row.name_sealed),
                kind_label=KINDS[row.kind].label if row.kind in KINDS else "file",
                size_text=size_text(row.size)))
    found = list({row.id: row for row in found}.values())  # one row per message

    names = names_by_id([thread.client_id, thread.therapist_id])
    client_name = names.get(thread.client_id, "")
    therapist_name = names.get(thread.therapist_id, "")
    authors = {thread.client_id: client_name, thread.therapist_id: therapist_name}

    views = []
    viewer_id = viewer.id
    for row in found:
        body, unreadable = _open_body(owner, row.id, row.body_sealed)
        mine = row.sender_id == viewer_id
        views.append(MessageView(
            id=row.id, mine=mine, sender_role=row.sender_role,
            author="You" if mine else authors.get(row.sender_id, ""),
            body=body, unreadable=unreadable, created_at=row.created_at,
            read_at=row.read_at, crisis_flag=row.crisis_flag,
            attachments=files.get(row.id, [])))

    can_reply, note = thread_access.can_write, None
    if thread_access.emergency:
        note = "You are reading under emergency access. Nothing here can be changed."
    elif viewer.id == thread.client_id and not _assigned(thread.client_id,
                                                          thread.therapist_id):
        can_reply = False
        note = ("This conversation is read-only now, because this therapist is no longer "
                "assigned to you. You can start a new conversation with your current "
                "therapist.")
    return ThreadPage(
        id=thread.id,
        subject=open_text_safe(owner, thread.subject_context(), thread.subject_sealed),
        closed=thread.status == ThreadStatus.CLOSED, closed_at=thread.closed_at,
        client_id=thread.client_id, client_name=client_name, therapist_name=therapist_name,
        viewer_role=str(viewer.role), emergency=thread_access.emergency, messages=views,
        older_cursor=found[0].id if older and found else None, paged=cursor is not None,
        can_reply=can_reply, reply_note=note,
        crisis_flagged=thread.crisis_flagged_at is not None)


def _page_statement(*, before: bool):
    """The newest page of a thread's messages (before a cursor), oldest first, each with its
    attachments: a row per file, file columns None when it has none."""
    page = select(Message.id, Message.sender_id, Message.sender_role, Message.body_sealed,
                  Message.created_at, Message.read_at, Message.crisis_flag
                  ).where(Message.thread_id == bindparam("thread_id", type_=Uuid()))
    if before:
        page = page.where(tuple_(Message.created_at, Message.id)
                          < tuple_(bindparam("before_at", type_=Message.created_at.type),
                                   bindparam("before_id", type_=Uuid())))
    page = page.order_by(Message.created_at.desc(), Message.id.desc()
                         ).limit(THREAD_PAGE + 1).subquery()
    return (select(page, Attachment.id.label("file_id"), Attachment.kind, Attachment.size,
                   Attachment.name_sealed)
            .outerjoin(Attachment, Attachment.message_id == page.c.id)
            .order_by(page.c.created_at, page.c.id, Attachment.position))


# Built once (see README, "Conventions for speed"): the subquery alone cost more to construct
# than the page's decryption.
_NEWEST_PAGE = _page_statement(before=False)
_OLDER_PAGE = _page_statement(before=True)


def _page_of_messages(thread_id: uuid.UUID, cursor: Message | None) -> tuple[list, bool]:
    """The rows of a page (see `_page_statement`) and whether older messages exist."""
    if cursor is None:
        stmt, params = _NEWEST_PAGE, {"thread_id": thread_id}
    else:
        stmt, params = _OLDER_PAGE, {"thread_id": thread_id, "before_at": cursor.created_at,
                                     "before_id": cursor.id}
    rows = db.session.execute(stmt, params).all()
    older = len({row.id for row in rows}) > THREAD_PAGE
    if older:  # the extra (oldest) message only said that there are more
        rows = [row for row in rows if row.id != rows[0].id]
    return rows, older


def download(user: User, attachment_id: uuid.UUID) -> Download:
    """Open an attachment for a participant (or an emergency grant); audit the download."""
    try:
        attachment, thread_access = access.attachment_for(user, attachment_id,
                                                          with_content=True)
        owner = thread_access.thread.client_id
        try:
            data = open_bytes(owner, attachment.content_context(), attachment.content_sealed)
        except DecryptionError as exc:
            report_decrypt_failure(owner, attachment.content_context(), exc.reason)
            raise Unreadable() from None
        name = open_text_safe(owner, attachment.name_context(), attachment.name_sealed)
        if name == UNREADABLE:
            name = "attachment"
        kind = KINDS[attachment.kind]
        if thread_access.emergency:
            record("emergency.attachment_downloaded", actor=user,
                   target=("attachment", attachment.id), subject_id=owner, severity="high")
        else:
            record("attachment.downloaded", actor=user, target=("attachment", attachment.id),
                   subject_id=owner)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return Download(name=name, content_type=kind.content_type, data=data)


# --- lists -------------------------------------------------------------------------------

def _end_read() -> None:
    """End a read-only transaction once the page's data is in plain objects.

    On SQLite every transaction takes the write lock at its first statement (BEGIN
    IMMEDIATE), so a list page should not hold it while its template renders.
    """
    db.session.commit()


def _pages(total: int) -> int:
    return max(1, math.ceil(total / LIST_PAGE))


def _rows(threads: list[Thread], people: dict[uuid.UUID, str], person_of) -> list[ThreadRow]:
    rows = []
    for t in threads:
        rows.append(ThreadRow(
            id=t.id, subject=open_text_safe(t.client_id, t.subject_context(), t.subject_sealed),
            person=people.get(person_of(t), ""), last_message_at=t.last_message_at,
            unread=t.therapist_unread if person_of(t) == t.client_id else t.client_unread,
            closed=t.status == ThreadStatus.CLOSED, awaiting_since=t.awaiting_since,
            crisis=t.crisis_flagged_at is not None))
    return rows


def _names_for(ids: Iterable[uuid.UUID], *, also_keys: Iterable[uuid.UUID] = ()
               ) -> dict[uuid.UUID, str]:
    """Names for a list page; `also_keys` preloads other owners' keys (e.g. for subjects)."""
    ids = list(ids)
    preload_keys([*ids, *also_keys])  # one key query for the names and the subjects
    return names_by_id(ids)


def inbox(client: User, page: int = 1) -> ListPage:
    """The client's conversations, newest activity first."""
    where = Thread.client_id == client.id
    total = db.session.scalar(select(func.count()).select_from(Thread).where(where)) or 0
    pages = _pages(total)
    page = min(max(page, 1), pages)
    threads = list(db.session.scalars(
        select(Thread).where(where)
        .order_by(Thread.last_message_at.desc(), Thread.id)
        .limit(LIST_PAGE).offset((page - 1) * LIST_PAGE)))
    names = _names_for([t.therapist_id for t in threads], also_keys=[client.id])
    listing = ListPage(_rows(threads, names, lambda t: t.therapist_id), page, pages, total)
    _end_read()
    return listing


def _dashboard_from(stmt, therapist: User):
    """Limit a statement to the therapist's threads with clients still assigned to them."""
    return (stmt.join(Assignment, and_(Assignment.client_id == Thread.client_id,
                                       Assignment.therapist_id == Thread.therapist_id))
            .where(Thread.therapist_id == therapist.id))


def matching_clients(therapist: User, query: str) -> list[uuid.UUID]:
    """Ids of the therapist's clients whose name contains the query (names open in the app)."""
    needle = " ".join(query.split()).casefold()
    clients = list(db.session.scalars(
        select(User).join(Assignment, Assignment.client_id == User.id)
        .where(Assignment.therapist_id == therapist.id)))
    names = names_of(clients)
    return [c.id for c in clients if needle in " ".join(names[c.id].split()).casefold()]


def dashboard(therapist: User, *, show: str = "all", query: str = "", page: int = 1
              ) -> ListPage:
    """The therapist's conversations: crisis-flagged first, then longest waiting, then newest."""
    show = show if show in FILTERS else "all"
    query = (query or "").strip()[:SEARCH_MAX]
    conditions = []
    if query:
        conditions.append(Thread.client_id.in_(matching_clients(therapist, query)))
    awaiting = and_(Thread.awaiting_since.is_not(None), Thread.status == ThreadStatus.OPEN)
    unread = Thread.therapist_unread > 0
    counts_row = db.session.execute(_dashboard_from(
        select(func.count(Thread.id),
               func.coalesce(func.sum(case((awaiting, 1), else_=0)), 0),
               func.coalesce(func.sum(case((unread, 1), else_=0)), 0),
               func.coalesce(func.sum(Thread.therapist_unread), 0)).select_from(Thread),
        therapist).where(*conditions)).one()
    counts = {"all": int(counts_row[0]), "awaiting": int(counts_row[1]),
              "unread": int(counts_row[2])}
    # Unfiltered, the same rows as `unread_count`: the badge needs no query of its own.
    unread_messages = None if conditions else int(counts_row[3])
    if show == "awaiting":
        conditions.append(awaiting)
    elif show == "unread":
        conditions.append(unread)
    total = counts[show]
    pages = _pages(total)
    page = min(max(page, 1), pages)
    order = (
        case((Thread.crisis_flagged_at.is_not(None), 0), else_=1),
        Thread.crisis_flagged_at,
        case((awaiting, 0), else_=1),
        Thread.awaiting_since,
        Thread.last_message_at.desc(),
        Thread.id,
    )
    threads = list(db.session.scalars(
        _dashboard_from(select(Thread), therapist).where(*conditions)
        .order_by(*order).limit(LIST_PAGE).offset((page - 1) * LIST_PAGE)))
    names = _names_for([t.client_id for t in threads])
    listing = ListPage(_rows(threads, names, lambda t: t.client_id), page, pages, total,
                       counts, unread_messages)
    _end_read()
    return listing


_UNREAD_OF_CLIENT = select(func.coalesce(func.sum(Thread.client_unread), 0)).where(
    Thread.client_id == bindparam("user_id", type_=Uuid()), Thread.client_unread > 0)
_UNREAD_OF_THERAPIST = (
    select(func.coalesce(func.sum(Thread.therapist_unread), 0))
    .join(Assignment, and_(Assignment.client_id == Thread.client_id,
                           Assignment.therapist_id == Thread.therapist_id))
    .where(Thread.therapist_id == bindparam("user_id", type_=Uuid()),
           Thread.therapist_unread > 0))


def unread_count(user: User) -> int:
    """Unread messages for the navigation badge (one query, on every page)."""
    if user.role == Role.CLIENT:
        stmt = _UNREAD_OF_CLIENT
    elif user.role == Role.THERAPIST:
        stmt = _UNREAD_OF_THERAPIST
    else:
        return 0
    return int(db.session.execute(stmt, {"user_id": user.id}).scalar() or 0)


# --- who has seen my record --------------------------------------------------------------

ROLE_LABELS = {"therapist": "Therapist", "admin": "Practice administrator"}
GROUP_WITHIN = timedelta(minutes=30)


def access_log(client: User, limit: int = 200) -> list[AccessEntry]:
    """What practice staff did with this client's record, newest first, from the audit trail."""
    events = events_for_subject(client.id, staff_only=True, limit=limit)
    actor_ids = {e.actor_id for e in events if e.actor_id}
    ids_of = {kind: [_uuid(e.target_id) for e in events if e.target_type == kind]
              for kind in ("thread", "message", "attachment")}
    subjects = _subjects(client.id, ids_of["thread"], ids_of["message"])
    files = _file_names(client.id, ids_of["attachment"])
    names = _names_for(actor_ids, also_keys=[client.id])

    entries: list[AccessEntry] = []
    for event in events:
        what = _describe(event, subjects, files)
        if what is None:
            continue
        who = names.get(event.actor_id, "A member of staff") if event.actor_id else "Staff"
        previous = entries[-1] if entries else None
        if (previous is not None and previous.what == what and previous.who == who
                and previous.at - event.at <= GROUP_WITHIN):
            previous.times += 1
            continue
        entries.append(AccessEntry(
            at=event.at, who=who, role=ROLE_LABELS.get(event.actor_role or "", "Staff"),
            what=what, emergency=event.action.startswith("emergency.")))
    _end_read()
    return entries


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def _subjects(client_id: uuid.UUID, thread_ids: list, message_ids: list
              ) -> dict[str, str]:
    """Subjects by thread id and by message id (as strings), for this client's threads only."""
    out: dict[str, str] = {}
    thread_ids = [i for i in thread_ids if i]
    message_ids = [i for i in message_ids if i]
    if not thread_ids and not message_ids:
        return out
    preload_keys([client_id])
    rows = db.session.execute(
        select(Thread.id, Thread.subject_sealed, Message.id)
        .outerjoin(Message, and_(Message.thread_id == Thread.id, Message.id.in_(message_ids)))
        .where(Thread.client_id == client_id,
               Thread.id.in_(thread_ids) | Message.id.in_(message_ids)))
    for thread_id, sealed, message_id in rows:
        subject = open_text_safe(client_id, Context("message_threads", "subject", thread_id),
                                 sealed)
        out[str(thread_id)] = subject
        if message_id is not None:
            out[str(message_id)] = subject
    return out


def _file_names(client_id: uuid.UUID, attachment_ids: list) -> dict[str, str]:
    attachment_ids = [i for i in attachment_ids if i]
    if not attachment_ids:
        return {}
    preload_keys([client_id])
    rows = db.session.execute(
        select(Attachment.id, Attachment.name_sealed)
        .join(Message, Message.id == Attachment.message_id)
        .join(Thread, Thread.id == Message.thread_id)
        .where(Thread.client_id == client_id, Attachment.id.in_(attachment_ids)))
    return {str(a_id): open_text_safe(client_id, Context("message_attachments", "name", a_id),
                                      sealed)
            for a_id, sealed in rows}


def _describe(event, subjects: dict[str, str], files: dict[str, str]) -> str | None:
    """Say in plain words what a staff event was; None for events not worth listing."""
    action, target = event.action, event.target_id or ""
    subject = subjects.get(target)
    about = f"your conversation “{subject}”" if subject else "one of your conversations"
    file_name = files.get(target)
    a_file = f"your file “{file_name}”" if file_name else "a file you shared"
    described = {
        "thread.viewed": f"Read {about}",
        "thread.created": f"Started {about}",
        "thread.closed": f"Marked {about} as closed",
        "thread.reopened": f"Reopened {about}",
        "message.sent": f"Wrote to you in {about}",
        "attachment.downloaded": f"Downloaded {a_file}",
        "emergency.granted": "Opened emergency access to your conversations "
                             "(read-only, for up to an hour)",
        "emergency.ended": "Ended emergency access to your conversations",
        "emergency.threads_listed": "Looked at the list of your conversations",
        "emergency.thread_viewed": f"Read {about}",
        "emergency.attachment_downloaded": f"Downloaded {a_file}",
        "assignment.added": "Assigned a therapist to you",
        "assignment.removed": "Removed a therapist assignment",
        "crypto.decrypt_failure": "Tried to open part of your record that could not be "
                                  "decrypted",
    }
    if action in described:
        return described[action]
    if action == "message.crisis_flagged":
        return None  # the send itself is listed
    if action.startswith("estimate."):
        if "view" in action or "download" in action or "pdf" in action:
            return "Opened one of your Good Faith Estimates"
        return "Worked on one of your Good Faith Estimates"
    return "Worked with your record"
