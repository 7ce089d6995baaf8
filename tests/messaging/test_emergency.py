"""Emergency access: an administrator with two-step sign-in, a written reason, an hour,
read-only, high-severity audit events, the other administrators told, the client shown."""

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select
from werkzeug.exceptions import NotFound

from portal.audit.models import AuditEvent
from portal.audit.service import detail_of
from portal.crypto import Context, open_text
from portal.crypto.blind_index import keyed_digest, pseudonym
from portal.db import utcnow
from portal.errors import RuleError
from portal.messaging import access, emergency, reading, sending
from portal.messaging.models import Attachment, EmergencyGrant, Thread
from tests.messaging.conftest import PNG, csrf_token, make_user
from tests.support.outbox import outbox

REASON = "Her sister called: she has not been heard from since Friday, therapist away"


@pytest.fixture
def conversation(db, people):
    thread, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                     subject="Private subject", body="Private words",
                                     files=[("scan.png", PNG)], notify=False)
    attachment = db.session.scalars(select(Attachment)).one()
    return thread.id, attachment.id


def _grant_by_form(client, people, reason=REASON, confirm="y"):
    token = csrf_token(client, "/emergency-access")
    data = {"csrf_token": token, "client": str(people.client_a.id), "category": "safety",
            "reason": reason}
    if confirm:
        data["confirm"] = confirm
    return client.post("/emergency-access", data=data)


def test_admin_reads_nothing_without_a_grant(app, db, people, conversation, login):
    thread_id, attachment_id = conversation
    admin = login(people.admin)
    assert admin.get(f"/messages/{thread_id}").status_code == 404
    assert admin.get(f"/messages/attachments/{attachment_id}").status_code == 404


def test_the_reason_and_the_confirmation_are_required(app, db, people, login):
    admin = login(people.admin)
    response = _grant_by_form(admin, people, reason="because")
    assert response.status_code == 422
    assert "at least 20 characters" in response.get_data(as_text=True)
    assert _grant_by_form(admin, people, confirm=None).status_code == 422
    assert not db.session.scalars(select(EmergencyGrant)).all()


def test_admin_without_two_step_sign_in_cannot_grant(app, db, people):
    plain_admin = make_user("admin", "No Twostep", mfa_on=False)
    with pytest.raises(RuleError, match="two-step"):
        emergency.grant(plain_admin, client_id=people.client_a.id, reason=REASON)


def test_grant_opens_an_hour_of_read_only_access(app, db, people, conversation, login):
    thread_id, attachment_id = conversation
    other_admin = make_user("admin", "Other Admin")
    admin = login(people.admin)
    response = _grant_by_form(admin, people)
    assert response.status_code == 302
    grant = db.session.scalars(select(EmergencyGrant)).one()
    assert grant.expires_at - grant.created_at == timedelta(minutes=60)

    page = admin.get(f"/messages/{thread_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Private words" in html and "Emergency access, read-only." in html
    assert "Send reply" not in html and "Mark as closed" not in html
    download = admin.get(f"/messages/attachments/{attachment_id}")
    assert download.status_code == 200 and download.data == PNG
    token = csrf_token(admin)
    assert admin.post(f"/messages/{thread_id}/reply",
                      data={"csrf_token": token, "body": "hello"}).status_code == 404
    assert admin.post(f"/messages/{thread_id}/close",
                      data={"csrf_token": token}).status_code == 404
    db.session.expire_all()
    assert db.session.get(Thread, thread_id).therapist_unread == 1  # read state untouched

    events = {e.action: e for e in db.session.scalars(select(AuditEvent).where(
        AuditEvent.action.like("emergency.%")))}
    assert set(events) >= {"emergency.granted", "emergency.thread_viewed",
                           "emergency.attachment_downloaded"}
    for event in events.values():  # named by the grant and a keyed stand-in, never the ids
        assert event.severity == "high"
        assert event.subject_id == pseudonym("emergency-index", people.client_a.id)
        assert event.subject_id != people.client_a.id
        assert (event.target_type, event.target_id) == ("emergency_grant", str(grant.id))
        assert event.actor_id == people.admin.id
        assert detail_of(event)["client"] == str(people.client_a.id)
    assert detail_of(events["emergency.thread_viewed"])["thread"] == str(thread_id)
    assert detail_of(events["emergency.attachment_downloaded"])["attachment"] == str(
        attachment_id)
    assert grant.client_index == keyed_digest("emergency-index", people.client_a.id.bytes)

    # The other administrator is told, with nothing about the client or the reason.
    notices = outbox("emergency_access_notice")
    assert [n.user_id for n in notices] == [other_admin.id]
    text = open_text(other_admin.id, Context("mail_outbox", "body_text_sealed", notices[0].id),
                     notices[0].body_text_sealed)
    for secret in ("Alex", "Rivera", "sister", "Friday", str(people.client_a.id)):
        assert secret not in text


def test_the_reason_is_sealed_and_never_in_the_audit_trail(app, db, people):
    grant = emergency.grant(people.admin, client_id=people.client_a.id, reason=REASON)
    assert REASON.encode() not in grant.reason_sealed
    # Sealed under the administrator's key (the row holds no client id to seal it under).
    assert open_text(people.admin.id, Context("emergency_access_grants", "reason", grant.id),
                     grant.reason_sealed) == REASON
    assert open_text(people.admin.id, Context("emergency_access_grants", "client", grant.id),
                     grant.client_sealed) == str(people.client_a.id)
    for event in db.session.scalars(select(AuditEvent)):
        for value in vars(event).values():
            assert "sister" not in str(value)


def test_access_ends_after_an_hour_or_when_ended(app, db, people, conversation):
    thread_id, _ = conversation
    grant = emergency.grant(people.admin, client_id=people.client_a.id, reason=REASON)
    assert access.thread_for(people.admin, thread_id)
    with (time_machine.travel(utcnow() + timedelta(minutes=61), tick=False),
          pytest.raises(NotFound)):
        access.thread_for(people.admin, thread_id)
    emergency.end(people.admin, grant.id)
    with pytest.raises(NotFound):
        access.thread_for(people.admin, thread_id)
    assert "emergency.ended" in set(db.session.scalars(select(AuditEvent.action)))


def test_a_grant_covers_one_client_and_one_admin_only(app, db, people, conversation):
    other, _ = sending.start_thread(people.client_b, counterpart_id=people.therapist_y.id,
                                    subject="Other", body="other", notify=False)
    emergency.grant(people.admin, client_id=people.client_a.id, reason=REASON)
    second_admin = make_user("admin", "Second Admin")
    with pytest.raises(NotFound):
        access.thread_for(people.admin, other.id)
    with pytest.raises(NotFound):
        access.thread_for(second_admin, conversation[0])
    with pytest.raises(NotFound):
        access.thread_for(people.admin, conversation[0], write=True)


def test_the_client_sees_emergency_access_in_their_access_log(app, db, people, conversation,
                                                             login):
    thread_id, _ = conversation
    emergency.grant(people.admin, client_id=people.client_a.id, reason=REASON)
    reading.view_thread(people.admin, access.thread_access(people.admin, thread_id))
    html = login(people.client_a).get("/account/access-log").get_data(as_text=True)
    assert "Morgan Avery" in html and "Practice administrator" in html
    assert "Emergency access" in html
    assert "Opened emergency access to your conversations" in html
    assert "Read your conversation “Private subject”" in html
    assert "sister" not in html


def test_access_log_lists_staff_views_and_downloads_only_for_this_client(app, db, people,
                                                                         conversation, login):
    thread_id, attachment_id = conversation
    therapist = login(people.therapist_x)
    therapist.get(f"/messages/{thread_id}")
    therapist.get(f"/messages/{thread_id}")
    therapist.get(f"/messages/attachments/{attachment_id}")
    html = login(people.client_a).get("/account/access-log").get_data(as_text=True)
    assert "Colleen Xu" in html and "Therapist" in html
    assert "Read your conversation “Private subject”" in html
    assert "(2 times)" in html
    assert "Downloaded your file “scan.png”" in html
    other = login(people.client_b).get("/account/access-log").get_data(as_text=True)
    assert "Colleen Xu" not in other and "Private subject" not in other
    assert "Nobody at the practice has opened your record yet" in other
