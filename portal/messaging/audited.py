"""Messaging's audited actions as the client's access log words them, and the names of
their targets (a conversation's subject, a file's name), for `portal.audit.catalogue`.

An `emergency.*` event names nobody at rest (`emergency_index`): its target is the grant and
its subject the client's keyed stand-in, which the log also reads; the conversation or file
it concerns is in its sealed detail (`about=`), so "Read {target}" still names it."""

import uuid

from sqlalchemy import and_, select

from portal.audit.catalogue import declare, name_targets
from portal.crypto import context_for, open_text_safe, preload_keys
from portal.extensions import db
from portal.messaging.emergency import REASON_FOR_CLIENT
from portal.messaging.emergency_index import client_index
from portal.messaging.models import (
    Attachment,
    EmergencyGrant,
    Message,
    Thread,
    attachment_name_context,
)

# The therapist's inbox names each client and the subjects of their conversations.
INBOX_LISTED = "client.inbox_listed"
# A parent or guardian's conversation about a minor names the minor to the therapist, in the
# inbox and on the conversation's page. The conversation's own events (viewed, sent, ...)
# have its owner, the guardian, as their subject: the words below ("Read your conversation",
# "Wrote to you in") would be false on the minor's log, and the conversation is not in the
# minor's record (sealed under the guardian's key, left out of the minor's export). So the
# minor's log says only that a clinician saw their name beside such a conversation.
GUARDIAN_THREAD_LISTED = "client.guardian_thread_listed"
GUARDIAN_THREAD_VIEWED = "client.guardian_thread_viewed"

ACTIONS = (
    (INBOX_LISTED, "Saw your name and the subjects of your conversations in their inbox",
     False),
    (GUARDIAN_THREAD_LISTED, "Saw your name beside a conversation with your parent or "
                             "guardian in their inbox", False),
    (GUARDIAN_THREAD_VIEWED, "Opened a conversation with your parent or guardian about you",
     False),
    ("thread.viewed", "Read {target}", False),
    ("thread.created", "Started {target}", False),
    ("thread.closed", "Marked {target} as closed", False),
    ("thread.reopened", "Reopened {target}", False),
    ("message.sent", "Wrote to you in {target}", False),
    # Every notice queued about a conversation (new message, urgent, escalation: the kind is
    # the row's sealed detail): the system's, nobody opened anything. A crisis writes no
    # action of its own: its flag is a sealed detail of "message.sent", its "seen and acted
    # on" one of the clinician's "thread.viewed".
    ("message.notice_queued", None, False),
    ("attachment.downloaded", "Downloaded {target}", False),
    ("care.handed_over", "Moved your conversations to another therapist", False),
    ("thread.handed_over", None, False),  # care.handed_over says it once for all of them
    ("emergency.granted", "Opened emergency access to your conversations "
                          "(read-only, for up to an hour). The reason: {target}", True),
    ("emergency.ended", "Ended emergency access to your conversations", True),
    ("emergency.threads_listed", "Looked at the list of your conversations", True),
    ("emergency.thread_viewed", "Read {target}", True),
    ("emergency.attachment_downloaded", "Downloaded {target}", True),
)
# What an emergency event's words name, from its sealed detail (its target is the grant).
ABOUT = {"emergency.thread_viewed": "thread", "emergency.attachment_downloaded": "attachment"}


def declare_actions() -> None:
    for name, words, emergency in ACTIONS:
        declare(name, words, emergency=emergency, about=ABOUT.get(name))
    name_targets(("thread", "message"), _subjects, otherwise="one of your conversations")
    name_targets(("attachment",), _file_names, otherwise="a file you shared")
    name_targets(("emergency_grant",), _reason_categories,
                 otherwise=REASON_FOR_CLIENT["other"])


def _reason_categories(client_id: uuid.UUID, ids: dict[str, list[uuid.UUID]]) -> dict[str, str]:
    """The kind of reason for each of this client's emergency grants, in the client's words
    (the category only: the written reason is sealed and never shown to them). A grant is
    the client's when its blind index is theirs."""
    rows = db.session.execute(
        select(EmergencyGrant.id, EmergencyGrant.reason_category)
        .where(EmergencyGrant.client_index == client_index(client_id),
               EmergencyGrant.id.in_(ids.get("emergency_grant", []))))
    return {str(grant_id): REASON_FOR_CLIENT.get(category, REASON_FOR_CLIENT["other"])
            for grant_id, category in rows}


def _subjects(client_id: uuid.UUID, ids: dict[str, list[uuid.UUID]]) -> dict[str, str]:
    """"your conversation “subject”" by thread id and by message id (as strings), for this
    client's threads only."""
    thread_ids, message_ids = ids.get("thread", []), ids.get("message", [])
    out: dict[str, str] = {}
    preload_keys([client_id])
    rows = db.session.execute(
        select(Thread.id, Thread.subject_sealed, Message.id)
        .outerjoin(Message, and_(Message.thread_id == Thread.id, Message.id.in_(message_ids)))
        .where(Thread.client_id == client_id,
               Thread.id.in_(thread_ids) | Message.id.in_(message_ids)))
    for thread_id, sealed, message_id in rows:
        subject = open_text_safe(client_id, context_for(Thread.subject_sealed, thread_id),
                                 sealed)
        if not subject:
            continue
        out[str(thread_id)] = f"your conversation “{subject}”"
        if message_id is not None:
            out[str(message_id)] = out[str(thread_id)]
    return out


def _file_names(client_id: uuid.UUID, ids: dict[str, list[uuid.UUID]]) -> dict[str, str]:
    """"your file “name”" by attachment id (as a string), for this client's files only."""
    preload_keys([client_id])
    rows = db.session.execute(
        select(Attachment.id, Attachment.name_sealed)
        .join(Message, Message.id == Attachment.message_id)
        .join(Thread, Thread.id == Message.thread_id)
        .where(Thread.client_id == client_id, Attachment.id.in_(ids.get("attachment", []))))
    out = {}
    for attachment_id, sealed in rows:
        name = open_text_safe(client_id, attachment_name_context(attachment_id), sealed)
        if name:
            out[str(attachment_id)] = f"your file “{name}”"
    return out
