"""Emergency access names nobody at rest (#17): the grant row keeps a keyed blind index of the
client's id and the id sealed, its audit events the client's keyed stand-in and a sealed
detail. Read raw, neither says which client it was, nor which of their conversations or
files; the client's "Who has seen my record" still lists every event in its true words."""

import re
import uuid

import pytest
from sqlalchemy import select, text, update
from werkzeug.exceptions import NotFound

from portal.audit.models import AuditEvent
from portal.audit.service import detail_of
from portal.crypto.blind_index import keyed_digest, pseudonym
from portal.crypto.rotation import shred
from portal.extensions import db as _db
from portal.messaging import access, emergency, sending
from portal.messaging.models import Attachment, EmergencyGrant, Message, Thread
from tests.messaging.conftest import PNG, csrf_token

REASON = "Her sister called: she has not been heard from since Friday, therapist away"


def _forms(value: uuid.UUID) -> list[bytes]:
    """Every way a UUID can sit in a row: text, hex (SQLite's CHAR(32)), either case, bytes."""
    return [str(value).encode(), value.hex.encode(), value.hex.upper().encode(),
            str(value).upper().encode(), value.bytes]


def _raw(value) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes | memoryview):
        return bytes(value)
    if isinstance(value, uuid.UUID):  # PostgreSQL hands back uuid objects
        return str(value).encode() + value.bytes
    return str(value).encode()


@pytest.fixture
def journey(app, db, people, login):
    """Client A has two conversations (one with a file); an administrator opens emergency
    access by the form, lists them, reads one, downloads the file and ends the access."""
    first, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                    subject="Private subject", body="Private words",
                                    files=[("scan.png", PNG)], notify=False)
    second, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                     subject="Another subject", body="More words",
                                     notify=False)
    attachment_id = db.session.scalars(select(Attachment.id)).one()
    message_ids = list(db.session.scalars(select(Message.id)))
    admin = login(people.admin)
    token = csrf_token(admin, "/emergency-access")
    response = admin.post("/emergency-access", data={
        "csrf_token": token, "client": str(people.client_a.id), "category": "safety",
        "reason": REASON, "confirm": "y"})
    assert response.status_code == 302
    grant_id = uuid.UUID(re.search(r"/emergency-access/([0-9a-f-]{36})",
                                   response.headers["Location"]).group(1))
    listed = admin.get(f"/emergency-access/{grant_id}")
    assert listed.status_code == 200 and "Private subject" in listed.get_data(as_text=True)
    assert admin.get(f"/messages/{first.id}").status_code == 200
    assert admin.get(f"/messages/attachments/{attachment_id}").data == PNG
    ended = admin.post(f"/emergency-access/{grant_id}/end",
                       data={"csrf_token": csrf_token(admin, "/emergency-access")})
    assert ended.status_code == 302
    db.session.rollback()
    return {"grant_id": grant_id, "threads": [first.id, second.id],
            "attachment": attachment_id, "messages": message_ids}


def _emergency_rows(conn):
    return conn.execute(text(
        "SELECT * FROM audit_events WHERE action LIKE 'emergency.%' ORDER BY seq")).all()


def test_raw_rows_name_neither_the_client_nor_their_conversations(app, db, people, journey):
    secrets = [people.client_a.id, *journey["threads"], journey["attachment"],
               *journey["messages"]]
    stand_in = pseudonym("emergency-index", people.client_a.id)
    index = keyed_digest("emergency-index", people.client_a.id.bytes)
    db.session.rollback()  # SQLite: the session lets go before a raw read
    with db.engine.connect() as conn:
        grants = conn.execute(text("SELECT * FROM emergency_access_grants")).all()
        events = _emergency_rows(conn)
    assert len(grants) == 1
    assert [e.action for e in events] == [
        "emergency.granted", "emergency.threads_listed", "emergency.thread_viewed",
        "emergency.attachment_downloaded", "emergency.ended"]
    for row in [*grants, *events]:
        for name, value in row._mapping.items():
            raw = _raw(value)
            for secret in secrets:
                for form in _forms(secret):
                    assert form not in raw, (name, secret)
            assert b"sister" not in raw
    # What they hold instead: a keyed index, a keyed stand-in, the grant as the target.
    for event in events:
        assert uuid.UUID(str(event.subject_id)) == stand_in
        assert (event.target_type, event.target_id) == ("emergency_grant",
                                                        str(journey["grant_id"]))
    assert bytes(grants[0].client_index) == index


def test_the_sealed_detail_says_what_each_event_concerns(app, db, people, journey):
    events = {e.action: e for e in db.session.scalars(
        select(AuditEvent).where(AuditEvent.action.like("emergency.%")))}
    client = str(people.client_a.id)
    assert detail_of(events["emergency.granted"]) == {"client": client}
    assert detail_of(events["emergency.threads_listed"]) == {"client": client}
    assert detail_of(events["emergency.thread_viewed"]) == {
        "client": client, "thread": str(journey["threads"][0])}
    assert detail_of(events["emergency.attachment_downloaded"]) == {
        "client": client, "attachment": str(journey["attachment"]),
        "thread": str(journey["threads"][0])}
    assert detail_of(events["emergency.ended"]) == {"client": client}


def test_the_clients_access_log_still_lists_every_emergency_event_in_its_words(
        app, db, people, journey, login):
    html = login(people.client_a).get("/account/access-log").get_data(as_text=True)
    for words in ("Opened emergency access to your conversations (read-only, for up to an "
                  "hour). The reason: concern for your safety",
                  "Looked at the list of your conversations",
                  "Read your conversation “Private subject”",
                  "Downloaded your file “scan.png”",
                  "Ended emergency access to your conversations"):
        assert words in html, words
    assert html.count("badge--crisis") >= 5  # each marked as done under emergency access
    assert "Morgan Avery" in html and "sister" not in html
    # Nobody else's log shows it: the stand-in is this client's alone.
    other = login(people.client_b).get("/account/access-log").get_data(as_text=True)
    assert "Opened emergency access" not in other and "Private subject" not in other


def test_a_grant_whose_sealed_client_does_not_match_its_index_opens_nothing(
        app, db, people, journey):
    """Someone who can write to the database copies another grant's index onto this one:
    the grant's page refuses (the sealed client is checked against the index)."""
    other = emergency.grant(people.admin, client_id=people.client_b.id, reason=REASON)
    other_index = bytes(other.client_index)
    live = emergency.grant(people.admin, client_id=people.client_a.id, reason=REASON)
    _db.session.execute(update(EmergencyGrant).where(EmergencyGrant.id == live.id)
                        .values(client_index=other_index))
    _db.session.commit()
    with pytest.raises(NotFound):
        emergency.client_threads(people.admin, live.id)
    row = _db.session.get(EmergencyGrant, live.id)
    assert emergency.client_of(row) is None
    failures = list(_db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "crypto.decrypt_failure")))
    assert failures  # reported, as a seal that will not open is
    # and the conversations of client A are not reached through it
    with pytest.raises(NotFound):
        access.thread_for(people.admin, journey["threads"][0])


def test_a_live_grant_is_found_by_the_index_for_its_client_only(app, db, people, journey):
    first, second = journey["threads"]
    other, _ = sending.start_thread(people.client_b, counterpart_id=people.therapist_y.id,
                                    subject="Other", body="other words", notify=False)
    emergency.grant(people.admin, client_id=people.client_a.id, reason=REASON)
    assert access.thread_access(people.admin, first).emergency
    assert access.thread_access(people.admin, second).emergency
    message_id = _db.session.scalar(select(Message.id).where(Message.thread_id == second))
    assert access.message_for(people.admin, message_id).thread_id == second
    attachment, found = access.attachment_for(people.admin, journey["attachment"])
    assert found.emergency and attachment.id == journey["attachment"]
    with pytest.raises(NotFound):
        access.thread_for(people.admin, other.id)
    assert _db.session.get(Thread, other.id).client_id == people.client_b.id


def test_when_the_detail_cannot_be_opened_the_log_still_lists_the_events(app, db, people,
                                                                         journey, login):
    """The detail is sealed under the administrator's key: with that key shredded, the log
    still lists every emergency event, naming what it concerned in general words."""
    shred(people.admin.id)
    html = login(people.client_a).get("/account/access-log").get_data(as_text=True)
    for words in ("The reason: concern for your safety",  # the grant's category is plain
                  "Looked at the list of your conversations",
                  "Read one of your conversations", "Downloaded a file you shared",
                  "Ended emergency access to your conversations"):
        assert words in html, words
    assert "Private subject" not in html and "scan.png" not in html
