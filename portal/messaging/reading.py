"""Reading a conversation: its page of messages, read receipts, and attachment downloads.

Protected rows load only through `portal.messaging.access`; every read is audited with ids
only.

Audit subjects: every event about a conversation has the thread's owner (`client_id`) as its
subject. For a parent or guardian's conversation that is the guardian, not the minor it is
about: the conversation is sealed under the guardian's key and is not part of the minor's
record (their export leaves it out), and the access-log words of these events ("Read your
conversation ...", "Wrote to you in ...") would be false on the minor's log. The minor's log
still shows that a clinician saw their name beside such a conversation: the thread page and
the dashboard record a look for the minor (`messaging.audited.GUARDIAN_THREAD_VIEWED`,
`GUARDIAN_THREAD_LISTED`).
"""

import uuid
from datetime import datetime

from sqlalchemy import Uuid, bindparam, func, select, tuple_, update

from portal import practice
from portal.accounts.display import person_label, reply_note
from portal.accounts.identity import names_by_id, pronouns_by_id, staff_details_by_id
from portal.accounts.models import User
from portal.accounts.service import therapists_of
from portal.audit import AuditEvent, record
from portal.crypto import UNREADABLE, DecryptionError, open_bytes, open_text, open_text_safe
from portal.crypto.hooks import report_decrypt_failure
from portal.db import utcnow
from portal.db.transactions import write_transaction
from portal.extensions import db
from portal.guardians.links import guardian_consented
from portal.messaging import access, crisis_state, notifications
from portal.messaging.access import ThreadAccess, care_client_of, is_assigned
from portal.messaging.attachments import KINDS
from portal.messaging.emergency_index import record_emergency
from portal.messaging.models import (
    Attachment,
    Message,
    Thread,
    ThreadStatus,
    attachment_name_context,
    body_context,
)
from portal.messaging.shown import AttachmentView, Download, MessageView, ThreadPage
from portal.text import size_text

THREAD_PAGE = 50


class Unreadable(Exception):
    """A sealed attachment would not open (audited by the crypto hooks); never a 500."""


def mark_read(reader: User, thread: Thread, now: datetime, *, locked: bool = False,
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


def view_thread(viewer: User, thread_access: ThreadAccess, *,
                before: uuid.UUID | None = None, at: uuid.UUID | None = None) -> ThreadPage:
    """Open a conversation page, then mark it read (participants) and audit the view.

    The page is built from a read transaction; the writes follow in a short transaction of
    their own, so SQLite's write lock is not held while messages are decrypted. The page is
    only returned once the view is on the audit trail. A participant's read need not wait
    for the disk (see `portal.db.transactions`).
    """
    thread = thread_access.thread
    cursor, inclusive = None, False
    if before is not None:
        cursor = access.message_for(viewer, before, thread_id=thread.id)
    elif at is not None:  # the page that ends with this message (the flagged one, say)
        cursor, inclusive = access.message_for(viewer, at, thread_id=thread.id), True
    page = _thread_page(viewer, thread_access, cursor, inclusive=inclusive)
    should_mark = (not thread_access.emergency and cursor is None and page.messages
                   and _has_unread(viewer, thread))
    # A participant's view only records a read; a view under emergency access is a
    # high-severity event the client is shown, so it waits for the disk like any change.
    with write_transaction(durable=thread_access.emergency):
        if thread_access.emergency:
            record_emergency(action="emergency.thread_viewed", admin=viewer,
                             grant_id=thread_access.grant.id, client_id=thread.client_id,
                             thread=thread.id)
        else:
            if should_mark:
                mark_read(viewer, thread, utcnow(), seen_through=page.messages[-1].created_at)
            if thread.handed_over_at is not None and viewer.id == thread.therapist_id:
                # Its new therapist has opened it: the dashboard's handover marker goes.
                db.session.execute(update(Thread).where(Thread.id == thread.id)
                                   .values(handed_over_at=None)
                                   .execution_options(synchronize_session=False))
            if viewer.id != thread.client_id:
                # A clinician's look rewrites the crisis state, as an acknowledgement does.
                crisis_state.reseal(thread)
            record("thread.viewed", actor=viewer, target=("thread", thread.id),
                   subject_id=thread.client_id, detail=crisis_state.viewed_detail())
    return page


def _open_body(owner: uuid.UUID, message_id: uuid.UUID, blob: bytes) -> tuple[str, bool]:
    """Open a message body; (UNREADABLE, True) and an audited failure if it will not open."""
    context = body_context(message_id)
    try:
        return open_text(owner, context, blob), False
    except DecryptionError as exc:
        report_decrypt_failure(owner, context, exc.reason)
        return UNREADABLE, True


def _thread_page(viewer: User, thread_access: ThreadAccess,
                 cursor: Message | None, *, inclusive: bool = False) -> ThreadPage:
    """Build the page from plain rows: a page of 50 messages should not cost 50 models."""
    thread = thread_access.thread
    owner = thread.client_id
    found, older = _page_of_messages(thread.id, cursor, inclusive=inclusive)
    files: dict[uuid.UUID, list[AttachmentView]] = {}
    for row in found:
        if row.file_id is not None:
            files.setdefault(row.id, []).append(AttachmentView(
                id=row.file_id, name=open_text_safe(owner, attachment_name_context(row.file_id),
                                                    row.name_sealed),
                kind_label=KINDS[row.kind].label if row.kind in KINDS else "file",
                size_text=size_text(row.size)))
    found = list({row.id: row for row in found}.values())  # one row per message

    crisis = crisis_state.state_of(thread)
    acknowledged_by = crisis.acknowledged_by
    about = thread.about_client_id
    names = names_by_id([thread.client_id, thread.therapist_id, *([about] if about else []),
                         *([acknowledged_by] if acknowledged_by else []),
                         *([thread.handed_over_from_id] if thread.handed_over_from_id else [])])
    client_name = names.get(thread.client_id, "")
    therapist_name = names.get(thread.therapist_id, "")
    authors = {thread.client_id: client_name, thread.therapist_id: therapist_name}
    others = {row.sender_id for row in found} - authors.keys()
    if others:  # written to the practice: any covering clinician may have answered
        authors.update(names_by_id(others))
    # Each person as the page names them: pronouns, and staff's credentials (one statement
    # each for everyone on the page).
    pronouns = pronouns_by_id(authors)
    staff = staff_details_by_id(authors.keys() - {thread.client_id})
    labels = {i: person_label(name, pronouns.get(i, ""), staff.get(i, ("", ""))[0])
              for i, name in authors.items()}

    views = []
    viewer_id = viewer.id
    for row in found:
        body, unreadable = _open_body(owner, row.id, row.body_sealed)
        mine = row.sender_id == viewer_id
        views.append(MessageView(
            id=row.id, mine=mine, sender_role=row.sender_role,
            author="You" if mine else labels.get(row.sender_id, ""),
            body=body, unreadable=unreadable, created_at=row.created_at,
            read_at=row.read_at,
            crisis_flag=crisis_state.message_flagged(owner, row.id, row.crisis_sealed),
            attachments=files.get(row.id, [])))

    can_reply, note = thread_access.can_write, None
    if thread_access.emergency:
        note = "You are reading under emergency access. Nothing here can be changed."
    elif (viewer.id == thread.client_id and not thread.to_practice
          and not is_assigned(care_client_of(thread), thread.therapist_id)):
        can_reply = False
        if about:
            minor = names.get(about, "") or "this young person"
            note = ("This conversation is read-only now, because this therapist is no longer "
                    f"caring for {minor}. " + _where_to_write_now(about, about=minor))
        else:
            note = ("This conversation is read-only now, because this therapist is no longer "
                    "assigned to you. " + _where_to_write_now(thread.client_id))
    return ThreadPage(
        id=thread.id,
        subject=open_text_safe(owner, thread.subject_context(), thread.subject_sealed),
        closed=thread.status == ThreadStatus.CLOSED, closed_at=thread.closed_at,
        client_id=thread.client_id, client_name=client_name, therapist_name=therapist_name,
        viewer_role=str(viewer.role), emergency=thread_access.emergency, messages=views,
        older_cursor=found[0].id if older and found else None, paged=cursor is not None,
        can_reply=can_reply, reply_note=note,
        crisis_flagged=crisis.flagged,
        crisis_message_id=crisis.message_id,
        crisis_acknowledged_at=crisis.acknowledged_at,
        crisis_acknowledged_by=names.get(acknowledged_by, "") if acknowledged_by else "",
        to_practice=thread.to_practice,
        handed_over_from=(names.get(thread.handed_over_from_id, "another therapist")
                          if thread.handed_over_from_id else None),
        handed_over_on=_handed_over_on(thread) if thread.handed_over_from_id else None,
        client_label=labels[thread.client_id], therapist_label=labels[thread.therapist_id],
        therapist_reply_note=reply_note(labels[thread.therapist_id],
                                        staff.get(thread.therapist_id, ("", ""))[1]),
        about_client_id=about, about_name=names.get(about, "") if about else None,
        about_self_consented=bool(about) and viewer.is_staff and not guardian_consented(about))


# When a conversation was last handed over: the row's marker is cleared once the new
# therapist opens it, the audit trail keeps the date (found by the client's indexed subject).
_HANDED_OVER_ON = select(func.max(AuditEvent.at)).where(
    AuditEvent.subject_id == bindparam("client_id", type_=Uuid()),
    AuditEvent.action == "thread.handed_over",
    AuditEvent.target_type == "thread",
    AuditEvent.target_id == bindparam("thread_id", type_=AuditEvent.target_id.type))


def _handed_over_on(thread: Thread) -> datetime | None:
    return thread.handed_over_at or db.session.execute(
        _HANDED_OVER_ON, {"client_id": thread.client_id, "thread_id": str(thread.id)}).scalar()


def _page_statement(*, before: bool, inclusive: bool = False):
    """The newest page of a thread's messages (before a cursor, or up to and including it),
    oldest first, each with its attachments: a row per file, file columns None when it has
    none."""
    page = select(Message.id, Message.sender_id, Message.sender_role, Message.body_sealed,
                  Message.created_at, Message.read_at, Message.crisis_sealed
                  ).where(Message.thread_id == bindparam("thread_id", type_=Uuid()))
    if before:
        bound = tuple_(bindparam("before_at", type_=Message.created_at.type),
                       bindparam("before_id", type_=Uuid()))
        position = tuple_(Message.created_at, Message.id)
        page = page.where(position <= bound if inclusive else position < bound)
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
_PAGE_ENDING_AT = _page_statement(before=True, inclusive=True)


def _page_of_messages(thread_id: uuid.UUID, cursor: Message | None, *,
                      inclusive: bool = False) -> tuple[list, bool]:
    """The rows of a page (see `_page_statement`) and whether older messages exist."""
    if cursor is None:
        stmt, params = _NEWEST_PAGE, {"thread_id": thread_id}
    else:
        stmt = _PAGE_ENDING_AT if inclusive else _OLDER_PAGE
        params = {"thread_id": thread_id, "before_at": cursor.created_at,
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
            record_emergency(action="emergency.attachment_downloaded", admin=user,
                             grant_id=thread_access.grant.id, client_id=owner,
                             attachment=attachment.id, thread=thread_access.thread.id)
        else:
            record("attachment.downloaded", actor=user, target=("attachment", attachment.id),
                   subject_id=owner)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return Download(name=name, content_type=kind.content_type, data=data)


def _where_to_write_now(client_id: uuid.UUID, *, about: str | None = None) -> str:
    """Point a client (a guardian: about the minor) to a current therapist only when there is
    one (honest words)."""
    profile = practice.profile()
    if about is not None:
        if any(t.active for t in therapists_of(client_id)):
            return f"You can start a new conversation with {about}'s current therapist."
        return (f"No other therapist is caring for {about} yet, so please reach the practice "
                f"by phone at {profile['phone']} or by email at {profile['email']}.")
    if any(t.active for t in therapists_of(client_id)):
        return "You can start a new conversation with your current therapist."
    return ("No other therapist is assigned to you yet, so please reach the practice by "
            f"phone at {profile['phone']} or by email at {profile['email']}.")
