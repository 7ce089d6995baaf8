"""The record export says which messages the crisis check flagged, opened from their sealed
flags (the column is sealed at rest since #17): true for the client's flagged message, false
for the others, and a flag that will not open exports as false, reported, never a crash."""

import json

import pytest
from sqlalchemy import func, select, update

from portal.audit import AuditEvent
from portal.extensions import db
from portal.messaging import sending
from portal.messaging.models import Message
from portal.records import export_data
from tests.messaging.conftest import assign
from tests.records.test_export import _download, _read, _signed_in, _zip
from tests.support.people import make_user


@pytest.fixture(autouse=True)
def _isolated(isolated_requests):
    """Requests run in their own app context, as in production."""


def _conversation():
    client, therapist = make_user("client", "Pat Example"), make_user("therapist", "Dr T")
    assign(client, therapist)
    thread, flagged = sending.start_thread(client, counterpart_id=therapist.id,
                                           subject="Tonight", body="I want to die",
                                           notify=False)
    reply = sending.reply(therapist, thread.id, body="Calling you now.", notify=False)
    ordinary = sending.reply(client, thread.id, body="Thank you.", notify=False)
    db.session.commit()
    return client, thread, flagged, reply, ordinary


def test_the_export_opens_each_messages_flag(app):
    client, thread, flagged, reply, ordinary = _conversation()
    items = {m.id: m for m in export_data.messages_of(client.id, thread.id)}
    assert items[flagged.id].crisis_flag is True
    assert items[reply.id].crisis_flag is False
    assert items[ordinary.id].crisis_flag is False


def test_a_flag_that_will_not_open_exports_as_false_reported_once(app):
    client, thread, flagged, *_ = _conversation()
    # Another message's flag copied onto this one: its associated data names the other row.
    other_blob = db.session.scalar(select(Message.crisis_sealed).where(
        Message.thread_id == thread.id, Message.id != flagged.id).limit(1))
    db.session.execute(update(Message).where(Message.id == flagged.id)
                       .values(crisis_sealed=other_blob))
    db.session.commit()
    archive = _zip(_download(_signed_in(app, client)))
    data = json.loads(_read(archive, "/record.json"))
    exported = {m["id"]: m for c in data["conversations"] for m in c["messages"]}
    assert exported[str(flagged.id)]["crisis_flag"] is False
    assert exported[str(flagged.id)]["body"] == "I want to die"  # the rest exports
    failures = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "crypto.decrypt_failure"))
    assert failures == 1  # once, not once per pass over the messages
