"""Emergency access tells people: the client, each of their active therapists and the other
administrators are emailed (one design, no name, no reason, no subject), the client's access
log shows the kind of reason (never the written one), and the administrator's pages say
exactly who was told, also when nobody else could be."""

import pytest
from sqlalchemy import select

from portal.audit.models import AuditEvent
from portal.mail import SUBJECTS, OutboxMessage, deliver_pending
from portal.messaging import emergency, sending
from portal.messaging.models import EmergencyGrant
from tests.messaging.conftest import csrf_token, make_user
from tests.support.outbox import outbox

REASON = "Her sister called: she has not been heard from since Friday, therapist away"
SUBJECT = "Moving next week's session"
TEMPLATES = ("emergency_access_client", "emergency_access_therapist",
             "emergency_access_notice")


@pytest.fixture
def conversation(db, people):
    """Client A has a conversation with a subject that must not reach any mail."""
    sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                         subject=SUBJECT, body="Private words", notify=False)


def _grant_by_form(client, people, category="safety", reason=REASON):
    token = csrf_token(client, "/emergency-access")
    return client.post("/emergency-access", data={
        "csrf_token": token, "client": str(people.client_a.id), "category": category,
        "reason": reason, "confirm": "y"})


def _by_recipient(envelopes) -> dict[str, object]:
    return {rcpt: envelope for envelope in envelopes for rcpt in envelope.rcpt_tos}


def test_a_grant_emails_the_client_their_therapists_and_the_other_admins_without_phi(
        app, db, people, conversation, smtp_server, login):
    other_admin = make_user("admin", "Other Admin")
    response = _grant_by_form(login(people.admin), people)
    assert response.status_code == 302
    report = deliver_pending()
    assert report.sent == 4 and report.failed == 0

    got = _by_recipient(smtp_server.envelopes)
    assert set(got) == {people.client_a.email_address, people.therapist_x.email_address,
                        people.therapist_y.email_address, other_admin.email_address}
    client_mail = got[people.client_a.email_address]
    assert client_mail.message["Subject"] == SUBJECTS["emergency_access_client"]
    assert "emergency procedure" in client_mail.text
    assert "/account/access-log" in client_mail.text  # where to see it
    for address in (people.therapist_x.email_address, people.therapist_y.email_address):
        assert got[address].message["Subject"] == SUBJECTS["emergency_access_therapist"]
        assert "emergency procedure" in got[address].text
    admin_mail = got[other_admin.email_address]
    assert admin_mail.message["Subject"] == SUBJECTS["emergency_access_notice"]

    # No PHI anywhere: not the client's name, not the reason, not a conversation's subject.
    for envelope in got.values():
        raw = envelope.content.decode("utf-8", "replace")
        for body in (envelope.text, envelope.html, envelope.message["Subject"], raw):
            for secret in ("Alex", "Rivera", "sister", "Friday", SUBJECT, "Private words",
                           str(people.client_a.id)):
                assert secret not in body, (envelope.rcpt_tos, secret)
    # Nobody is told twice, and the acting administrator is not told at all.
    assert people.admin.email_address not in got
    assert len(smtp_server.envelopes) == 4


def test_the_administrator_is_told_exactly_who_was_emailed(app, db, people, login):
    make_user("admin", "Other Admin")
    admin = login(people.admin)
    response = _grant_by_form(admin, people)
    html = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert ("We emailed Alex Rivera, their therapists Colleen Xu and Kristen Young and "
            "1 other administrator.") in html
    assert "only administrator, so" not in html


def test_with_a_single_administrator_the_pages_say_nobody_else_was_told(app, db, people,
                                                                         login):
    admin = login(people.admin)
    page = admin.get("/emergency-access").get_data(as_text=True)
    assert ("You are the practice\u2019s only administrator, so no other administrator is "
            "told.") in page
    assert "other administrators are emailed" not in page
    assert "administrators are told" not in page

    response = _grant_by_form(admin, people)
    html = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "other administrators have been told" not in html
    assert ("You are the practice&#39;s only administrator, so no other administrator was "
            "told.") in html
    assert {row.template for row in db.session.scalars(select(OutboxMessage))} == {
        "emergency_access_client", "emergency_access_therapist"}


def test_with_other_administrators_the_page_says_they_are_emailed(app, db, people, login):
    make_user("admin", "Other Admin")
    make_user("admin", "Third Admin")
    page = login(people.admin).get("/emergency-access").get_data(as_text=True)
    assert "The practice\u2019s other 2 administrators are emailed straight away." in page
    assert "practice\u2019s only administrator" not in page


def test_a_client_without_a_therapist_and_a_deactivated_therapist_are_said_honestly(
        app, db, people):
    loner = make_user("client", "Sam Lone")
    grant = emergency.grant(people.admin, client_id=loner.id, reason=REASON, category="legal")
    assert grant.told.therapists == () and grant.told.client and grant.told.admins == 0
    said = grant.told.sentence("Sam Lone")
    assert said.startswith("We emailed Sam Lone.")
    assert "No therapist was told: the client has no active therapist assigned." in said

    people.therapist_y.active = False
    db.session.commit()
    second = emergency.grant(people.admin, client_id=people.client_a.id, reason=REASON)
    assert second.told.therapists == ("Colleen Xu",)
    recipients = {row.user_id for row in outbox("emergency_access_therapist")}
    assert recipients == {people.therapist_x.id}


def test_a_paused_client_is_not_emailed_and_the_page_says_so(app, db, people):
    people.client_a.active = False
    db.session.commit()
    grant = emergency.grant(people.admin, client_id=people.client_a.id, reason=REASON)
    assert not grant.told.client
    assert "Alex Rivera was not emailed" in grant.told.sentence("Alex Rivera")
    assert not outbox("emergency_access_client")


def test_the_category_is_required_and_must_be_one_of_the_list(app, db, people, login):
    admin = login(people.admin)
    assert _grant_by_form(admin, people, category="").status_code == 422
    assert _grant_by_form(admin, people, category="because").status_code == 422
    assert not db.session.scalars(select(EmergencyGrant)).all()
    assert not db.session.scalars(select(OutboxMessage)).all()
    with pytest.raises(emergency.RuleError, match="kind of reason"):
        emergency.grant(people.admin, client_id=people.client_a.id, reason=REASON,
                        category="curiosity")


@pytest.mark.parametrize("category", sorted(emergency.REASON_CATEGORIES))
def test_the_access_log_shows_the_category_in_the_clients_words_never_the_reason(
        app, db, people, login, category):
    _grant_by_form(login(people.admin), people, category=category)
    grant = db.session.scalars(select(EmergencyGrant)).one()
    assert grant.reason_category == category
    html = login(people.client_a).get("/account/access-log").get_data(as_text=True)
    words = emergency.REASON_FOR_CLIENT[category]
    assert f"The reason: {words}".replace("'", "&#39;") in html
    assert "sister" not in html and "Friday" not in html
    # The audit trail keeps ids only: the category lives on the grant, not in the event.
    event = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "emergency.granted")).one()
    assert "sister" not in str(vars(event))


def test_the_administrators_list_of_grants_names_the_category(app, db, people, login):
    emergency.grant(people.admin, client_id=people.client_a.id, reason=REASON,
                    category="unreachable_therapist")
    html = login(people.admin).get("/emergency-access").get_data(as_text=True)
    assert "Their therapist cannot be reached" in html
