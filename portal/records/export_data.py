"""What a record export reads: conversations, their messages in batches, attachments one at a
time, estimates, and the client's other records, opened with the portal's usual functions.

Nothing here loads a whole record: messages come in batches of BATCH (keyset paging on
`(created_at, id)`), an attachment's content is loaded alone when it is written, and the read
transaction ends after every batch (on SQLite a long read holds back the WAL checkpoint).
An item that will not decrypt comes back marked unavailable, never as an exception.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Uuid, bindparam, select, tuple_

from portal.accounts.identity import names_by_id
from portal.crypto import (
    UNREADABLE,
    DecryptionError,
    context_for,
    open_bytes,
    open_text,
    open_text_safe,
)
from portal.crypto.hooks import report_decrypt_failure
from portal.estimates.content import EstimateUnavailable, open_pdf
from portal.estimates.models import GoodFaithEstimate, Status
from portal.estimates.totals import total_in
from portal.extensions import db
from portal.messaging import crisis_state
from portal.messaging.attachments import KINDS
from portal.messaging.models import (
    Attachment,
    Message,
    Thread,
    attachment_name_context,
    body_context,
)
from portal.records.disclosures import disclosures_for

BATCH = 200


@dataclass
class ConversationInfo:
    id: uuid.UUID
    number: int
    subject: str
    subject_unavailable: bool
    therapist_id: uuid.UUID
    therapist_name: str
    started_at: datetime
    status: str
    closed_at: datetime | None
    to_practice: bool
    message_count: int


@dataclass
class AttachmentItem:
    id: uuid.UUID
    name: str
    kind: str
    kind_label: str
    size: int
    name_unavailable: bool = False


@dataclass
class MessageItem:
    id: uuid.UUID
    sender_id: uuid.UUID
    sender: str
    sender_role: str
    created_at: datetime
    read_at: datetime | None
    crisis_flag: bool
    body: str
    unavailable: bool
    attachments: list[AttachmentItem] = field(default_factory=list)


@dataclass
class EstimateItem:
    id: uuid.UUID
    number: str
    status: str
    issue_date: date | None
    total_cents: int | None  # opened from the sealed document (None if it will not open)
    superseded_by_id: uuid.UUID | None
    # The SHA-256 of the PDF as exported, computed from the bytes when the export is made
    # (the stored digest is keyed, so it says nothing to the client).
    pdf_sha256: str | None = None


@dataclass
class DisclosureItem:
    id: uuid.UUID
    disclosed_on: date
    recipient: str
    content: str
    purpose: str
    voided: bool


def conversations_of(client_id: uuid.UUID) -> list[ConversationInfo]:
    """The client's conversations, oldest first (one small row each, subjects opened)."""
    rows = db.session.execute(
        select(Thread.id, Thread.subject_sealed, Thread.therapist_id, Thread.created_at,
               Thread.status, Thread.closed_at, Thread.to_practice, Thread.message_count)
        .where(Thread.client_id == client_id).order_by(Thread.created_at, Thread.id)).all()
    names = names_by_id({row.therapist_id for row in rows}) if rows else {}
    found = []
    for number, row in enumerate(rows, start=1):
        subject = open_text_safe(client_id, context_for(Thread.subject_sealed, row.id),
                                 row.subject_sealed)
        found.append(ConversationInfo(
            id=row.id, number=number, subject=subject, subject_unavailable=subject == UNREADABLE,
            therapist_id=row.therapist_id, therapist_name=names.get(row.therapist_id, ""),
            started_at=row.created_at, status=str(row.status), closed_at=row.closed_at,
            to_practice=row.to_practice, message_count=row.message_count))
    return found


_FIRST = (select(Message.id, Message.sender_id, Message.sender_role, Message.body_sealed,
                 Message.created_at, Message.read_at, Message.crisis_sealed)
          .where(Message.thread_id == bindparam("thread_id", type_=Uuid()))
          .order_by(Message.created_at, Message.id).limit(BATCH))
_AFTER = _FIRST.where(tuple_(Message.created_at, Message.id) > tuple_(
    bindparam("after_at", type_=Message.created_at.type), bindparam("after_id", type_=Uuid())))
_FILES = (select(Attachment.id, Attachment.message_id, Attachment.kind, Attachment.size,
                 Attachment.name_sealed)
          .where(Attachment.message_id.in_(bindparam("ids", expanding=True)))
          .order_by(Attachment.message_id, Attachment.position))


def messages_of(client_id: uuid.UUID, thread_id: uuid.UUID, *,
                report: bool = True) -> Iterator[MessageItem]:
    """A conversation's messages, oldest first, read BATCH at a time.

    `report=False` on a second pass over the same messages: a body that will not open was
    already reported (audited) on the first.
    """
    names: dict[uuid.UUID, str] = {}
    after = None
    while True:
        if after is None:
            rows = db.session.execute(_FIRST, {"thread_id": thread_id}).all()
        else:
            rows = db.session.execute(_AFTER, {"thread_id": thread_id, "after_at": after[0],
                                               "after_id": after[1]}).all()
        if not rows:
            return
        files: dict[uuid.UUID, list[AttachmentItem]] = {}
        for f in db.session.execute(_FILES, {"ids": [row.id for row in rows]}):
            name = _open_text(client_id, attachment_name_context(f.id), f.name_sealed, report)
            kind = KINDS.get(f.kind)
            files.setdefault(f.message_id, []).append(AttachmentItem(
                id=f.id, name=name if name is not None else "attachment", kind=f.kind,
                kind_label=kind.label if kind else "file", size=f.size,
                name_unavailable=name is None))
        missing = {row.sender_id for row in rows} - names.keys()
        if missing:
            names.update(names_by_id(missing))
        batch = []
        for row in rows:
            body = _open_text(client_id, body_context(row.id), row.body_sealed, report)
            batch.append(MessageItem(
                id=row.id, sender_id=row.sender_id, sender=names.get(row.sender_id, ""),
                sender_role=row.sender_role, created_at=row.created_at, read_at=row.read_at,
                crisis_flag=crisis_state.message_flagged(client_id, row.id, row.crisis_sealed,
                                                         report=report),
                body=body if body is not None else UNREADABLE,
                unavailable=body is None, attachments=files.get(row.id, [])))
        last = rows[-1]
        after = (last.created_at, last.id)
        db.session.rollback()  # end the read transaction between batches
        yield from batch
        if len(rows) < BATCH:
            return


def _open_text(owner: uuid.UUID, context, blob: bytes, report: bool) -> str | None:
    try:
        return open_text(owner, context, blob)
    except DecryptionError as exc:
        if report:
            report_decrypt_failure(owner, context, exc.reason)
        return None


def attachment_content(client_id: uuid.UUID, attachment_id: uuid.UUID) -> bytes | None:
    """One attachment's content (loaded alone), or None if it will not open (reported)."""
    blob = db.session.scalar(select(Attachment.content_sealed)
                             .where(Attachment.id == attachment_id))
    context = context_for(Attachment.content_sealed, attachment_id)
    try:
        return open_bytes(client_id, context, blob)
    except DecryptionError as exc:
        report_decrypt_failure(client_id, context, exc.reason)
        return None
    finally:
        db.session.rollback()


def estimates_of(client_id: uuid.UUID) -> list[EstimateItem]:
    """Issued and superseded estimates, oldest first, without their sealed content."""
    rows = db.session.execute(
        select(GoodFaithEstimate.id, GoodFaithEstimate.number, GoodFaithEstimate.status,
               GoodFaithEstimate.issue_date, GoodFaithEstimate.client_id,
               GoodFaithEstimate.document_sealed, GoodFaithEstimate.superseded_by_id)
        .where(GoodFaithEstimate.client_id == client_id,
               GoodFaithEstimate.status.in_([Status.ISSUED, Status.SUPERSEDED]))
        .order_by(GoodFaithEstimate.issued_at, GoodFaithEstimate.id)).all()
    return [EstimateItem(id=r.id, number=r.number or "", status=str(r.status),
                         issue_date=r.issue_date,
                         total_cents=total_in(r.id, r.client_id, r.status, r.document_sealed),
                         superseded_by_id=r.superseded_by_id)
            for r in rows]


def estimate_pdf(estimate_id: uuid.UUID) -> bytes | None:
    """The frozen PDF exactly as issued, checked against its SHA-256; None if it will not
    open (estimates' `open_pdf` reports it)."""
    estimate = db.session.get(GoodFaithEstimate, estimate_id)
    try:
        return open_pdf(estimate)
    except EstimateUnavailable:
        return None
    finally:
        db.session.expunge(estimate)
        db.session.rollback()


def disclosures_of(client_id: uuid.UUID) -> list[DisclosureItem]:
    """The accounting of disclosures (164.528) the client is shown, oldest first."""
    return [DisclosureItem(id=d.id, disclosed_on=d.disclosed_on, recipient=d.recipient,
                           content=d.content, purpose=d.purpose, voided=d.voided_at is not None)
            for d in reversed(disclosures_for(client_id))]
