"""A parent or guardian's own conversations with a minor's therapist (issue #16).

The guardian's conversation is theirs (client_id = the guardian, sealed under their key) and
about one minor (about_client_id). The guardian sees it while their link to the minor is live
(unlinked, or the minor's 18th birthday: 404); the minor's own conversations are never the
guardian's; the minor's therapist sees it while assigned to the minor.
"""

import io
import zipfile
from datetime import date, timedelta

import pytest
from sqlalchemy import delete, select
from werkzeug.exceptions import NotFound

from portal.accounts.models import Assignment
from portal.audit import AuditEvent
from portal.errors import RuleError
from portal.extensions import db
from portal.guardians import links
from portal.mail import OutboxMessage
from portal.messaging import access, care, emergency, handover, lists, sending
from portal.messaging.audited import GUARDIAN_THREAD_LISTED, GUARDIAN_THREAD_VIEWED
from portal.messaging.models import Attachment, Thread
from portal.records import export
from tests.messaging import crisis_support
from tests.messaging.conftest import PDF, StatementCounter, assign, csrf_token
from tests.support.clock import freeze
from tests.support.outbox import outbox
from tests.support.people import make_admin, make_client, make_guardian, make_minor, make_user

CLOCK_DAY = date(2026, 3, 2)
BORN = date(2012, 5, 20)  # 13 on the clock's day


@pytest.fixture
def family(app, monkeypatch):
    """A minor (consent by the guardian) with a therapist, a linked guardian, and both the
    minor's own conversation and the guardian's conversation about the minor."""
    freeze(monkeypatch, CLOCK_DAY)
    guardian = make_guardian("Gale Rivera")
    minor = make_minor(BORN, guardian=guardian, name="Riley Rivera")
    therapist = make_user("therapist", "Colleen Xu")
    assign(minor, therapist)
    own, _ = sending.start_thread(minor, counterpart_id=therapist.id, subject="My week",
                                  body="Only for my therapist.", notify=False)
    theirs, _ = sending.start_thread(guardian, counterpart_id=therapist.id,
                                     about_client_id=minor.id, subject="Riley's sleep",
                                     body="A note from home.", notify=False)
    return {"guardian": guardian, "minor": minor, "therapist": therapist,
            "own": own.id, "theirs": theirs.id}


def _status(login, user, thread_id) -> int:
    return login(user).get(f"/messages/{thread_id}").status_code


def test_the_guardians_conversation_is_theirs_and_about_the_minor(family):
    thread = db.session.get(Thread, family["theirs"])
    assert thread.client_id == family["guardian"].id
    assert thread.about_client_id == family["minor"].id
    assert thread.therapist_id == family["therapist"].id


def test_access_matrix(family, login):
    guardian, minor, therapist = family["guardian"], family["minor"], family["therapist"]
    assert _status(login, guardian, family["theirs"]) == 200
    assert _status(login, guardian, family["own"]) == 404  # the minor's own: never
    assert _status(login, minor, family["theirs"]) == 404  # and the guardian's is not theirs
    assert _status(login, therapist, family["theirs"]) == 200
    assert _status(login, therapist, family["own"]) == 200
    stranger = make_user("therapist", "Kristen Young")
    assert _status(login, stranger, family["theirs"]) == 404
    admin = make_admin()
    assert _status(login, admin, family["theirs"]) == 404


def test_another_familys_guardian_sees_nothing(family, login):
    other = make_guardian("Pat Other")
    other_minor = make_minor(BORN, guardian=other, name="Sam Other")
    assign(other_minor, family["therapist"])
    assert _status(login, other, family["theirs"]) == 404
    assert _status(login, other, family["own"]) == 404
    page = login(other).get("/messages").get_data(as_text=True)
    assert "Riley&#39;s sleep" not in page and "Riley's sleep" not in page


def test_unlinking_ends_the_guardians_access_not_the_therapists(family, login):
    row = links.live_link(family["guardian"].id, family["minor"].id)
    links.unlink(make_admin(), row)
    assert _status(login, family["guardian"], family["theirs"]) == 404
    assert _status(login, family["therapist"], family["theirs"]) == 200
    inbox = login(family["guardian"]).get("/messages").get_data(as_text=True)
    assert "sleep" not in inbox
    assert "not linked to a young person" in inbox
    with pytest.raises(NotFound):
        sending.reply(family["guardian"], family["theirs"], body="still here?", notify=False)


def test_access_ends_on_the_18th_birthday(family, login, monkeypatch):
    freeze(monkeypatch, date(2030, 5, 19))
    assert _status(login, family["guardian"], family["theirs"]) == 200
    freeze(monkeypatch, date(2030, 5, 20))
    assert _status(login, family["guardian"], family["theirs"]) == 404
    assert _status(login, family["guardian"], family["own"]) == 404
    assert _status(login, family["therapist"], family["theirs"]) == 200
    assert lists.unread_count(family["guardian"]) == 0


def test_unassigned_therapist_loses_the_guardians_conversation(family, login):
    other = make_user("therapist", "Kristen Young")
    handover.hand_over(make_admin(), family["minor"], family["therapist"].id, other.id)
    assert _status(login, family["therapist"], family["theirs"]) == 404
    # The guardian's conversation moved with the minor's own.
    assert db.session.get(Thread, family["theirs"]).therapist_id == other.id
    assert _status(login, other, family["theirs"]) == 200
    assert _status(login, family["guardian"], family["theirs"]) == 200


def test_an_open_guardian_conversation_counts_for_the_care_check(family):
    thread = db.session.get(Thread, family["own"])
    sending.set_closed(family["therapist"], thread.id, True)
    db.session.execute(delete(Assignment).where(Assignment.client_id == family["minor"].id))
    assert care.orphaned_threads({family["minor"].id}) == [family["theirs"]]
    db.session.rollback()
    assert care.orphaned_threads(None) == []  # while assigned, nothing is orphaned


def test_stakes_and_deactivation_count_guardian_threads_for_the_minor(family):
    stakes = handover.stakes(family["minor"], family["therapist"])
    assert stakes.open_conversations == 2
    assert handover.clients_with_conversations(family["therapist"]) == [family["minor"].id]


def test_inbox_and_dashboard_mark_the_conversation(family, login):
    inbox = login(family["guardian"]).get("/messages").get_data(as_text=True)
    assert "About Riley Rivera" in inbox
    assert "My week" not in inbox
    dashboard = login(family["therapist"]).get("/dashboard").get_data(as_text=True)
    assert "Parent or guardian of Riley Rivera" in dashboard
    page = login(family["therapist"]).get(f"/messages/{family['theirs']}").get_data(
        as_text=True)
    assert "Parent or guardian of Riley Rivera" in page
    mine = login(family["guardian"]).get(f"/messages/{family['theirs']}").get_data(
        as_text=True)
    assert "About Riley Rivera" in mine
    assert "A note from home." in mine


def test_dashboard_search_finds_it_by_the_minors_name(family, login):
    web = login(family["therapist"])
    page = web.post("/dashboard", data={"csrf_token": csrf_token(web, "/dashboard"),
                                        "q": "riley"}).get_data(as_text=True)
    assert "Parent or guardian of Riley Rivera" in page


def test_guardian_composes_to_the_minors_therapist(family, login):
    web = login(family["guardian"])
    page = web.get("/messages/new").get_data(as_text=True)
    value = f"{family['minor'].id}:{family['therapist'].id}"
    assert value in page and "about Riley Rivera" in page
    response = web.post("/messages/new", data={
        "csrf_token": csrf_token(web, "/messages/new"), "recipient": value,
        "subject": "School meeting", "body": "Can we talk on Friday?"})
    assert response.status_code == 302
    thread = db.session.scalar(select(Thread).where(Thread.client_id == family["guardian"].id)
                               .order_by(Thread.created_at.desc()).limit(1))
    assert thread.about_client_id == family["minor"].id
    assert thread.therapist_id == family["therapist"].id
    reply = web.post(f"/messages/{thread.id}/reply", data={
        "csrf_token": csrf_token(web, f"/messages/{thread.id}"), "body": "And one more."})
    assert reply.status_code == 302


def test_guardian_cannot_write_about_someone_else(family, login):
    stranger = make_client("Not Theirs")
    assign(stranger, family["therapist"])
    web = login(family["guardian"])
    response = web.post("/messages/new", data={
        "csrf_token": csrf_token(web, "/messages/new"),
        "recipient": f"{stranger.id}:{family['therapist'].id}",
        "subject": "Hello", "body": "Hi"})
    assert response.status_code == 422
    with pytest.raises(RuleError):
        sending.start_thread(family["guardian"], counterpart_id=family["therapist"].id,
                             about_client_id=stranger.id, subject="x", body="y")


def test_a_minor_with_no_therapist_is_said_so(app, login, monkeypatch):
    freeze(monkeypatch, CLOCK_DAY)
    guardian = make_guardian("Gale Rivera")
    make_minor(BORN, guardian=guardian, name="Riley Rivera")
    web = login(guardian)
    page = web.get("/messages/new").get_data(as_text=True)
    assert "Riley Rivera has no therapist here yet" in page
    assert "Send message" not in page
    inbox = web.get("/messages").get_data(as_text=True)
    assert "Riley Rivera has no therapist here yet" in inbox
    assert "New message" not in inbox


def test_crisis_check_applies_to_guardian_messages(family):
    message = sending.reply(family["guardian"], family["theirs"],
                            body="I am worried about suicide.", notify=False)
    assert message.sent_flagged and crisis_support.flagged(message.id)
    assert crisis_support.state(family["theirs"]).flagged


def test_the_therapists_view_is_audited(family, login):
    login(family["therapist"]).get(f"/messages/{family['theirs']}")
    events = db.session.execute(select(AuditEvent.action, AuditEvent.subject_id).where(
        AuditEvent.actor_id == family["therapist"].id)).all()
    assert ("thread.viewed", family["guardian"].id) in events
    assert (GUARDIAN_THREAD_VIEWED, family["minor"].id) in events
    login(family["guardian"]).get(f"/messages/{family['theirs']}")
    assert not db.session.scalar(select(AuditEvent.id).where(
        AuditEvent.actor_id == family["guardian"].id,
        AuditEvent.action == GUARDIAN_THREAD_VIEWED))


def test_dashboard_looks_name_the_minor_once(family, login):
    login(family["therapist"]).get("/dashboard")
    looks = db.session.execute(select(AuditEvent.action, AuditEvent.subject_id).where(
        AuditEvent.actor_id == family["therapist"].id,
        AuditEvent.action.in_(["client.inbox_listed", GUARDIAN_THREAD_LISTED]))).all()
    assert looks == [("client.inbox_listed", family["minor"].id)]


def test_the_minors_export_leaves_the_guardians_conversation_out(family):
    minor = family["minor"]
    data = b"".join(export.stream(minor, minor))
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    text = b"".join(zipfile.ZipFile(io.BytesIO(data)).read(n) for n in names)
    assert b"My week" in text
    assert b"sleep" not in text and b"A note from home." not in text


def test_the_therapists_pdf_of_a_guardian_conversation_works(family, login):
    response = login(family["therapist"]).get(
        f"/record/conversations/{family['theirs']}/pdf")
    assert response.status_code == 200
    assert response.data.startswith(b"%PDF")
    assert login(family["guardian"]).get(
        f"/record/conversations/{family['theirs']}/pdf").status_code == 404


@pytest.mark.slow
def test_guardian_pages_do_not_grow_with_the_data(app, login, monkeypatch):
    from portal.accounts import sessions
    monkeypatch.setattr(sessions, "TOUCH_EVERY", timedelta(hours=1))
    freeze(monkeypatch, CLOCK_DAY)
    counts = {}
    for size in (5, 50):
        guardian = make_guardian(f"Guardian {size}")
        minor = make_minor(BORN, guardian=guardian, name=f"Minor {size}")
        therapist = make_user("therapist", f"Therapist {size}")
        assign(minor, therapist)
        first = None
        for number in range(size):
            thread, _ = sending.start_thread(guardian, counterpart_id=therapist.id,
                                             about_client_id=minor.id,
                                             subject=f"Topic {number}", body="hi", notify=False)
            first = first or thread.id
        for number in range(size):
            sending.reply(therapist if number % 2 else guardian, first, body=f"m {number}",
                          notify=False)
        pages = {"inbox": (guardian, "/messages"),
                 "thread (guardian)": (guardian, f"/messages/{first}"),
                 "thread (therapist)": (therapist, f"/messages/{first}"),
                 "dashboard": (therapist, "/dashboard"), "new message": (guardian, "/messages/new")}
        counts[size] = {}
        for name, (user, path) in pages.items():
            web = login(user)
            assert web.get(path).status_code == 200
            with StatementCounter(db.engine) as counter:
                assert web.get(path).status_code == 200
            counts[size][name] = counter.count
    assert counts[5] == counts[50], counts


def _notices(user) -> list:
    return [row.template for row in outbox(None, OutboxMessage.user_id == user.id)]


def test_notices_go_both_ways_as_for_clients(family):
    sending.reply(family["guardian"], family["theirs"], body="Are you there?")
    assert "new_message" in _notices(family["therapist"])
    sending.reply(family["therapist"], family["theirs"], body="Yes, I am.")
    assert _notices(family["guardian"]) == ["new_message"]
    row = db.session.scalar(select(OutboxMessage).where(
        OutboxMessage.user_id == family["guardian"].id))
    assert "Riley" not in row.subject and "sleep" not in row.subject  # the fixed notice only


def test_emergency_access_to_the_minor_leaves_the_guardians_conversation_out(family, login):
    admin = make_admin()
    grant = emergency.grant(admin, client_id=family["minor"].id,
                            reason="A welfare check the police asked for tonight.")
    _, rows = emergency.client_threads(admin, grant.id)
    assert [r.id for r in rows] == [family["own"]]
    with pytest.raises(NotFound):
        access.thread_access(admin, family["theirs"])


def test_guardian_attachments_follow_the_link(family, login):
    message = sending.reply(family["guardian"], family["theirs"], body="The letter.",
                            files=[("letter.pdf", PDF)], notify=False)
    attachment = db.session.scalar(select(Attachment.id).where(
        Attachment.message_id == message.id))
    assert login(family["therapist"]).get(
        f"/messages/attachments/{attachment}").status_code == 200
    assert login(family["guardian"]).get(
        f"/messages/attachments/{attachment}").status_code == 200
    links.unlink(make_admin(), links.live_link(family["guardian"].id, family["minor"].id))
    assert login(family["guardian"]).get(
        f"/messages/attachments/{attachment}").status_code == 404


def test_the_therapist_is_reminded_when_the_minor_consented_themselves(app, login,
                                                                       monkeypatch):
    freeze(monkeypatch, CLOCK_DAY)
    guardian = make_guardian("Gale Rivera")
    minor = make_minor(date(2011, 1, 5), consent_by="minor", guardian=guardian,
                       name="Jesse Rivera")  # 15
    therapist = make_user("therapist", "Colleen Xu")
    assign(minor, therapist)
    thread, _ = sending.start_thread(guardian, counterpart_id=therapist.id,
                                     about_client_id=minor.id, subject="A question",
                                     body="How is Jesse doing?", notify=False)
    note = "Jesse Rivera consented to their own care, so they decide what of it is shared"
    assert note in login(therapist).get(f"/messages/{thread.id}").get_data(as_text=True)
    assert note not in login(guardian).get(f"/messages/{thread.id}").get_data(as_text=True)


def test_consent_by_the_guardian_says_nothing_of_the_kind(family, login):
    page = login(family["therapist"]).get(f"/messages/{family['theirs']}").get_data(
        as_text=True)
    assert "consented to their own care" not in page
