"""What messaging pages show: plain objects with the sealed fields already opened, so a
template never touches the database or the keys."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime


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
    # Handed over from another therapist: who had it, and since when (None: never, or the
    # date is not known).
    handed_over_from: str | None = None
    handed_over_on: datetime | None = None
    # The flagged message to jump to, and who marked the flag "seen and acted on", and when.
    crisis_message_id: uuid.UUID | None = None
    crisis_acknowledged_at: datetime | None = None
    crisis_acknowledged_by: str = ""
    to_practice: bool = False
    # The two people as the page names them (`accounts.display.person_label`: pronouns, and
    # a therapist's credentials), and the therapist's usual reply time for the client.
    client_label: str = ""
    therapist_label: str = ""
    therapist_reply_note: str = ""
    # A parent or guardian's conversation about a minor: the minor's id and name, and whether
    # the minor consented to their own care (then they decide what a guardian is told).
    about_client_id: uuid.UUID | None = None
    about_name: str | None = None
    about_self_consented: bool = False


@dataclass(frozen=True)
class ThreadRow:
    id: uuid.UUID
    subject: str
    client_id: uuid.UUID | None
    person: str  # the therapist (client's inbox) or the client (therapist's dashboard)
    last_message_at: datetime
    unread: int
    closed: bool
    awaiting_since: datetime | None = None
    crisis: bool = False
    # Handed over to this therapist and not opened by them yet: from whom.
    handed_over_from: str | None = None
    crisis_message_id: uuid.UUID | None = None
    crisis_acknowledged_at: datetime | None = None
    crisis_acknowledged_by: str = ""
    to_practice: bool = False
    person_label: str = ""  # `person` with pronouns (and a therapist's credentials)
    # A parent or guardian's conversation about a minor: the minor's id and name.
    about_client_id: uuid.UUID | None = None
    about_name: str | None = None


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
