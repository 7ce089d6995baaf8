"""A crisis flag stays until a clinician marks it "seen and acted on": who and when, audited,
shown in the thread and on the dashboard, with a jump link to the flagged message."""

from datetime import timedelta

from sqlalchemy import select

from portal.audit.models import AuditEvent
from portal.db import utcnow
from portal.messaging import escalation, sending
from portal.messaging.crisis_state import CrisisState
from tests.messaging import crisis_support
from tests.messaging.conftest import csrf_token

CRISIS = "Some days I don't want to be here anymore"


def _flagged(people, body=CRISIS):
    return sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                subject="Tonight", body=body, notify=False)


def _row(db, thread_id) -> CrisisState:
    db.session.expire_all()
    return crisis_support.state(thread_id)


def test_a_flagged_message_sets_the_flag_its_message_and_the_timer(app, db, people):
    before = utcnow()
    thread, message = _flagged(people)
    row = _row(db, thread.id)
    assert row.flagged_at is not None and row.message_id == message.id
    assert row.acknowledged_at is None and row.acknowledged_by is None
    minutes = app.config["CRISIS_ESCALATE_MINUTES"]
    assert minutes == 30
    assert (before + timedelta(minutes=minutes) <= row.escalate_at
            <= utcnow() + timedelta(minutes=minutes))


def test_a_later_flagged_message_keeps_the_first_as_the_jump_target(app, db, people):
    thread, first = _flagged(people)
    timer = _row(db, thread.id).escalate_at
    sending.reply(people.client_a, thread.id, body="I want to die", notify=False)
    row = _row(db, thread.id)
    assert row.message_id == first.id
    assert row.escalate_at == timer  # a running timer is not pushed back


def test_a_reply_stops_the_timer_but_the_flag_stays(app, db, people):
    thread, message = _flagged(people)
    sending.reply(people.therapist_x, thread.id, body="I'm here. Calling you now.",
                  notify=False)
    row = _row(db, thread.id)
    assert row.escalate_at is None
    assert row.flagged_at is not None and row.message_id == message.id


def test_acknowledging_clears_the_flag_and_says_who_and_when(app, db, people):
    thread, _ = _flagged(people)
    assert escalation.acknowledge(people.therapist_x, thread.id) is True
    row = _row(db, thread.id)
    assert row.flagged_at is None and row.escalate_at is None
    assert row.acknowledged_by == people.therapist_x.id
    assert row.acknowledged_at is not None
    # Audited as the clinician's ordinary look at the conversation, the acknowledgement its
    # sealed detail (every view has the same detail, false): no action names a crisis.
    event = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "thread.viewed")).one()
    assert event.actor_id == people.therapist_x.id
    assert event.target_type == "thread" and event.target_id == str(thread.id)
    assert event.subject_id == people.client_a.id
    assert crisis_support.detail(event) == {"crisis_acknowledged": True}
    assert escalation.acknowledge(people.therapist_x, thread.id) is False  # nothing left


def test_a_new_flag_after_acknowledgement_starts_again(app, db, people):
    thread, _ = _flagged(people)
    escalation.acknowledge(people.therapist_x, thread.id)
    again = sending.reply(people.client_a, thread.id, body="I want to die", notify=False)
    row = _row(db, thread.id)
    assert row.message_id == again.id and row.escalate_at is not None
    assert row.acknowledged_at is None and row.acknowledged_by is None


def test_the_thread_page_jumps_to_the_flag_and_marks_it_seen(app, db, people, login):
    thread, message = _flagged(people)
    therapist = login(people.therapist_x)
    html = therapist.get(f"/messages/{thread.id}").get_data(as_text=True)
    assert f'href="#m-{message.id}"' in html and f'id="m-{message.id}"' in html
    assert "Mark seen and acted on" in html
    token = csrf_token(therapist, f"/messages/{thread.id}")
    done = therapist.post(f"/messages/{thread.id}/crisis-seen", data={"csrf_token": token})
    assert done.status_code == 302
    html = therapist.get(done.headers["Location"]).get_data(as_text=True)
    assert "Seen and acted on by Colleen Xu" in html
    assert "Mark seen and acted on" not in html
    dashboard = therapist.get("/dashboard").get_data(as_text=True)
    assert "Seen and acted on by Colleen Xu" in dashboard
    assert "Crisis language" not in dashboard


def test_the_dashboard_links_straight_to_the_flagged_message(app, db, people, login):
    thread, message = _flagged(people)
    html = login(people.therapist_x).get("/dashboard").get_data(as_text=True)
    assert f'/messages/{thread.id}#m-{message.id}' in html
    assert "Crisis language" in html


def test_the_client_never_sees_the_flag_or_the_button(app, db, people, login):
    thread, _ = _flagged(people)
    html = login(people.client_a).get(f"/messages/{thread.id}").get_data(as_text=True)
    assert "Mark seen and acted on" not in html and "Crisis language" not in html


def test_marking_needs_a_clinician_who_reads_the_thread(app, db, people, login):
    thread, _ = _flagged(people)
    other = login(people.therapist_y)  # client A's other therapist: not this thread's
    token = csrf_token(other)
    assert other.post(f"/messages/{thread.id}/crisis-seen",
                      data={"csrf_token": token}).status_code == 404
    client = login(people.client_a)
    token = csrf_token(client)
    assert client.post(f"/messages/{thread.id}/crisis-seen",
                       data={"csrf_token": token}).status_code in (403, 404)
    therapist = login(people.therapist_x)
    assert therapist.post(f"/messages/{thread.id}/crisis-seen").status_code == 400  # no CSRF
    assert _row(db, thread.id).flagged_at is not None


def test_the_jump_link_reaches_a_flagged_message_older_than_the_newest_page(
        app, db, people, login):
    """The flagged message is the first of 60: the newest page (50) does not hold it, so the
    callout links to the page that ends with it, and that page shows it."""
    thread, flagged = _flagged(people)
    for number in range(59):
        sending.reply(people.client_a if number % 2 else people.therapist_x, thread.id,
                      body=f"Message {number}", notify=False)
    therapist = login(people.therapist_x)
    newest = therapist.get(f"/messages/{thread.id}").get_data(as_text=True)
    assert f'id="m-{flagged.id}"' not in newest
    link = f'/messages/{thread.id}?at={flagged.id}#m-{flagged.id}'
    assert f'class="crisis-callout__jump" href="{link}"' in newest
    page = therapist.get(link.split("#")[0])
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and f'id="m-{flagged.id}"' in html
    assert "Back to the newest messages" in html
    assert f'class="crisis-callout__jump" href="#m-{flagged.id}"' in html


def test_a_flagged_message_on_the_newest_page_is_linked_in_place(app, db, people, login):
    thread, flagged = _flagged(people)
    html = login(people.therapist_x).get(f"/messages/{thread.id}").get_data(as_text=True)
    assert f'class="crisis-callout__jump" href="#m-{flagged.id}"' in html


def test_a_page_ending_at_someone_elses_message_is_a_404(app, db, people, login):
    thread, _ = _flagged(people)
    _, stranger = sending.start_thread(people.client_b, counterpart_id=people.therapist_y.id,
                                       subject="Hello", body="Hi", notify=False)
    therapist = login(people.therapist_x)
    assert therapist.get(f"/messages/{thread.id}?at={stranger.id}").status_code == 404
    assert therapist.get(f"/messages/{thread.id}?at=not-an-id").status_code == 404
