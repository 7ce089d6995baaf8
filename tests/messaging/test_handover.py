"""Care handover: a therapist leaving a client's care hands every conversation to someone
who can read it, or nothing changes."""

import uuid

import pytest
from sqlalchemy import select

from portal.accounts import service as accounts
from portal.accounts.models import Assignment, User
from portal.audit import AuditEvent
from portal.audit.access_log import access_log
from portal.errors import RuleError
from portal.extensions import db
from portal.messaging import care, handover, lists, sending
from portal.messaging.models import Thread
from tests.accounts.support import mail_text, outbox
from tests.messaging.conftest import assign, make_user

CRISIS = "Some days I feel suicidal and I can't go on like this"


@pytest.fixture
def world(app):
    """Carla is Colleen's client with two conversations (one closed, one crisis-flagged and
    unread); Kristen is a second therapist, Dana covers, Ada administers."""
    carla = make_user("client", "Carla Client")
    colleen = make_user("therapist", "Colleen Demo")
    kristen = make_user("therapist", "Kristen Young")
    dana = make_user("therapist", "Dana Cover")
    ada = make_user("admin", "Ada Admin")
    assign(carla, colleen)
    first, _ = sending.start_thread(carla, counterpart_id=colleen.id, subject="Scheduling",
                                    body="Can we move Thursday?")
    sending.set_closed(colleen, first.id, True)
    second, _ = sending.start_thread(carla, counterpart_id=colleen.id, subject="Tonight",
                                     body=CRISIS)
    return carla, colleen, kristen, dana, ada, first.id, second.id


def _threads(client) -> list[tuple]:
    rows = db.session.execute(select(Thread.id, Thread.therapist_id, Thread.handed_over_from_id,
                                     Thread.status, Thread.therapist_unread,
                                     Thread.crisis_sealed)
                              .where(Thread.client_id == client.id).order_by(Thread.created_at))
    found = [tuple(r) for r in rows]
    db.session.commit()
    return found


def _assigned(client) -> set:
    ids = set(db.session.scalars(select(Assignment.therapist_id)
                                 .where(Assignment.client_id == client.id)))
    db.session.commit()
    return ids


def test_stakes_count_open_closed_unread_and_unacknowledged_crisis(world):
    carla, colleen, kristen, *_ = world
    assert handover.stakes(carla, colleen) == handover.Stakes(
        open_conversations=1, closed_conversations=1, unread=2, crisis=1)
    assert handover.stakes(carla, kristen) == handover.Stakes()
    assert handover.therapist_stakes(colleen) == {carla.id: handover.stakes(carla, colleen)}
    assert handover.stakes(carla, colleen).conversations == 2


def test_hand_over_moves_every_conversation_keeps_its_state_and_assigns_the_target(world):
    carla, colleen, kristen, _, ada, first, second = world
    before = {row[0]: row[3:] for row in _threads(carla)}
    done = handover.hand_over(ada, carla, colleen.id, kristen.id)
    assert done == handover.Handover(moved=2, unassigned=True)
    rows = _threads(carla)
    assert [(r[0], r[1], r[2]) for r in rows] == [(first, kristen.id, colleen.id),
                                                  (second, kristen.id, colleen.id)]
    assert {r[0]: r[3:] for r in rows} == before  # status, unread, crisis flag unchanged
    assert _assigned(carla) == {kristen.id}
    assert care.orphaned_threads() == []
    events = db.session.execute(select(AuditEvent.action, AuditEvent.target_id)
                                .where(AuditEvent.subject_id == carla.id)
                                .order_by(AuditEvent.seq)).all()
    actions = [a for a, _ in events]
    # The unacknowledged crisis flag's urgent notice to the new therapist is an ordinary
    # "notice queued" event (its kind sealed), like every new-message notice.
    assert actions[-6:] == ["assignment.added", "thread.handed_over", "thread.handed_over",
                            "message.notice_queued", "assignment.removed", "care.handed_over"]
    assert ("care.handed_over", str(carla.id)) in events


def test_the_new_therapist_sees_it_first_with_a_marker_until_they_open_it(world, login):
    carla, colleen, kristen, _, ada, first, second = world
    assign(make_user("client", "Other Person"), kristen)
    other = make_user("client", "Olive Other")
    assign(other, kristen)
    sending.start_thread(other, counterpart_id=kristen.id, subject="Hello", body="Hi there")
    handover.hand_over(ada, carla, colleen.id, kristen.id)
    rows = lists.dashboard(db.session.get(User, kristen.id)).rows
    # The crisis-flagged one first, then the other handed-over one, then the rest.
    assert [r.id for r in rows[:2]] == [second, first]
    assert [r.handed_over_from for r in rows] == ["Colleen Demo", "Colleen Demo", None]
    browser = login(kristen)
    assert browser.get(f"/messages/{first}").status_code == 200
    rows = lists.dashboard(db.session.get(User, kristen.id)).rows
    assert {r.id: r.handed_over_from for r in rows}[first] is None
    assert {r.id: r.handed_over_from for r in rows}[second] == "Colleen Demo"


def test_the_client_reads_who_answers_now(world, login):
    carla, colleen, kristen, _, ada, _first, second = world
    handover.hand_over(ada, carla, colleen.id, kristen.id)
    html = login(carla).get(f"/messages/{second}").get_data(as_text=True)
    assert "Kristen Young answers this conversation now (since " in html
    # Still true once the new therapist has opened it (the date comes from the audit trail).
    login(kristen).get(f"/messages/{second}")
    html = login(carla).get(f"/messages/{second}").get_data(as_text=True)
    assert "Kristen Young answers this conversation now (since " in html
    sending.reply(carla, second, body="Thank you")  # and the client can write on


def test_the_new_therapist_and_the_client_are_emailed_without_phi(world):
    carla, colleen, kristen, _, ada, *_ = world
    handover.hand_over(ada, carla, colleen.id, kristen.id)
    to_kristen = outbox(handover.TO_THERAPIST, kristen)
    to_carla = outbox(handover.TO_CLIENT, carla)
    assert len(to_kristen) == 1 and len(to_carla) == 1
    text = mail_text(to_kristen[0])
    assert "handed over to you" in text and "Carla" not in text and "Tonight" not in text
    text = mail_text(to_carla[0])
    assert "From now on, Kristen Young will answer your messages" in text
    assert "Carla" not in text and "Colleen" not in text and "Tonight" not in text
    # An unacknowledged crisis flag: the new therapist gets the urgent notice too.
    assert len(outbox("urgent_message", kristen)) == 1


def test_no_urgent_notice_without_an_unacknowledged_flag(app):
    carla, colleen, kristen = (make_user("client"), make_user("therapist"),
                               make_user("therapist"))
    assign(carla, colleen)
    sending.start_thread(carla, counterpart_id=colleen.id, subject="Plain", body="Hello")
    handover.hand_over(make_user("admin"), carla, colleen.id, kristen.id)
    assert outbox("urgent_message", kristen) == []
    assert len(outbox(handover.TO_THERAPIST, kristen)) == 1


def test_a_target_already_caring_or_covering_is_fine(world):
    carla, colleen, kristen, dana, ada, *_ = world
    assign(carla, kristen)
    accounts.set_covering(ada, dana, True)
    handover.hand_over(ada, carla, colleen.id, kristen.id)
    assert _assigned(carla) == {kristen.id}
    assert audit_count("assignment.added", carla) == 0  # already assigned: nothing added
    handover.hand_over(ada, carla, kristen.id, dana.id)
    assert _assigned(carla) == {dana.id}
    assert audit_count("assignment.added", carla) == 1  # the covering clinician, newly
    assert care.orphaned_threads() == []


def audit_count(action: str, client) -> int:
    count = len(list(db.session.scalars(select(AuditEvent.id).where(
        AuditEvent.action == action, AuditEvent.subject_id == client.id))))
    db.session.commit()
    return count


def _refused(call, match: str) -> RuleError:
    with pytest.raises(RuleError, match=match) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("target", ["inactive", "client", "admin", "same", "missing", "none"])
def test_a_bad_target_is_refused_and_nothing_changes(world, target):
    carla, colleen, _kristen, _, ada, *_ = world
    choose = {"inactive": lambda: make_user("therapist", "Gone Away", active=False).id,
              "client": lambda: make_user("client").id, "admin": lambda: ada.id,
              "same": lambda: colleen.id, "missing": uuid.uuid4, "none": lambda: None}[target]
    chosen = choose()
    before, assigned, events = _threads(carla), _assigned(carla), audit_count(
        "assignment.added", carla)
    error = _refused(lambda: handover.hand_over(ada, carla, colleen.id, chosen),
                     "Choose|deactivated")
    assert error.field == "therapist"
    assert _threads(carla) == before and _assigned(carla) == assigned
    assert audit_count("assignment.added", carla) == events
    assert outbox(handover.TO_CLIENT) == []


def test_a_plain_unassignment_of_a_therapist_with_conversations_is_refused(world):
    carla, colleen, _, _, ada, *_ = world
    _refused(lambda: accounts.unassign(ada, carla, colleen.id), "would have nobody")
    assert _assigned(carla) == {colleen.id}


def test_without_conversations_a_handover_is_a_plain_unassignment(app):
    carla, colleen, kristen = (make_user("client"), make_user("therapist"),
                               make_user("therapist"))
    assign(carla, colleen)
    done = handover.hand_over(make_user("admin"), carla, colleen.id, None)
    assert done == handover.Handover(moved=0, unassigned=True)
    assert _assigned(carla) == set()
    assert kristen.id not in _assigned(carla)
    assert outbox(handover.TO_CLIENT) == []


def test_the_clients_access_log_words_the_handover(world):
    carla, colleen, kristen, _, ada, *_ = world
    handover.hand_over(ada, carla, colleen.id, kristen.id)
    said = [entry.what for entry in access_log(db.session.get(User, carla.id))]
    assert "Moved your conversations to another therapist" in said
    assert "Worked with your record" not in said


def test_candidates_put_carers_first_then_covering_then_the_rest(world):
    carla, colleen, _kristen, dana, ada, *_ = world
    zoe = make_user("therapist", "Zoe Assigned")
    assign(carla, zoe)
    make_user("therapist", "Gone Away", active=False)
    accounts.set_covering(ada, dana, True)
    found = handover.candidates(carla, colleen.id)
    assert [(c.name, c.group) for c in found] == [
        ("Zoe Assigned", "caring"), ("Dana Cover", "covering"), ("Kristen Young", "other")]


def test_deactivating_a_therapist_hands_each_client_over_then_deactivates(world):
    carla, colleen, kristen, dana, ada, *_ = world
    bea = make_user("client", "Bea Client")
    assign(bea, colleen)
    sending.start_thread(colleen, counterpart_id=bea.id, subject="Hi", body="Welcome")
    missing = _refused(lambda: handover.deactivate_therapist(ada, colleen, {carla.id: kristen.id}),
                       "Choose who takes over the conversations of 1 client")
    assert missing.client_ids == [bea.id]
    assert db.session.get(User, colleen.id).active
    assert _assigned(carla) == {colleen.id}  # nothing changed
    db.session.commit()
    done = handover.deactivate_therapist(ada, colleen, {carla.id: kristen.id, bea.id: dana.id})
    assert {k: v.moved for k, v in done.items()} == {carla.id: 2, bea.id: 1}
    db.session.expire_all()
    assert not db.session.get(User, colleen.id).active
    assert _assigned(carla) == {kristen.id} and _assigned(bea) == {dana.id}
    assert care.orphaned_threads() == []


def test_a_refused_target_in_a_therapist_deactivation_changes_nothing(world):
    carla, colleen, _, _, ada, *_ = world
    gone = make_user("therapist", active=False)
    _refused(lambda: handover.deactivate_therapist(ada, colleen, {carla.id: gone.id}),
             "deactivated")
    db.session.expire_all()
    assert db.session.get(User, colleen.id).active
    assert {r[1] for r in _threads(carla)} == {colleen.id}


def test_deactivating_a_client_needs_a_reason_and_records_its_category_only(app):
    ada, carla = make_user("admin"), make_user("client")
    _refused(lambda: accounts.set_active(ada, carla, False), "Choose why")
    _refused(lambda: accounts.set_active(ada, carla, False, reason="she moved to Ohio"),
             "Choose why")
    db.session.rollback()
    assert db.session.get(User, carla.id).active
    accounts.set_active(ada, carla, False, reason="care_ended")
    assert not db.session.get(User, carla.id).active
    actions = list(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.target_id == str(carla.id)).order_by(AuditEvent.seq)))
    assert actions[-2:] == ["account.deactivated", "account.deactivation_reason.care_ended"]
