"""The crisis check: the reviewed phrase list, whole-word matching, and the server's flag."""

import json

import pytest
from sqlalchemy import select

from portal.audit.models import AuditEvent
from portal.messaging import crisis, sending
from portal.messaging.models import Thread
from tests.messaging import crisis_support

# Shared with the browser test (tests/e2e/test_messaging_journey.py), which checks that
# static/js/compose.js answers the same for each.
CRISIS_TEXTS = [
    "I want to die",
    "Some days I WANT TO DIE!!!",
    "i don\u2019t want to be here anymore",
    "I don't want to be here anymore.",
    "I've been thinking about suicide a lot",
    "Feeling suicidal tonight",
    "I keep thinking about self-harm",
    "I started cutting myself again",
    "I might kill\nmyself",
    "They'd be better off without me",
    "I can\u2019t go on like this",
    "thinking of taking an overdose",
    "".join(chr(ord(ch) + 0xFEE0) if ch != " " else ch for ch in "I want to die"),  # full width
]
CALM_TEXTS = [
    "This traffic is killing me",
    "I'd die for a coffee right now",
    "My skill myself is improving",  # "skill myself" is not "kill myself"
    "Can we move Thursday's session?",
    "The plot was a real killer",
    "I harmed my chances at the interview",
    "",
]


@pytest.mark.parametrize("text", CRISIS_TEXTS)
def test_crisis_language_is_recognised(text):
    assert crisis.matches(text)


@pytest.mark.parametrize("text", CALM_TEXTS)
def test_everyday_language_is_not_flagged(text):
    assert not crisis.matches(text)


def test_the_phrase_list_is_small_reviewed_and_already_folded():
    data = json.loads(crisis.PHRASES_FILE.read_text(encoding="utf-8"))
    assert data["reviewed"]
    assert 10 <= len(data["phrases"]) <= 80
    for phrase in data["phrases"]:
        assert crisis.normalize(phrase).strip() == phrase, phrase


def test_subject_is_checked_too():
    assert crisis.matches("I want to die", "hello")
    assert crisis.matches(None, "thinking about suicide")
    assert not crisis.matches(None, "")


def test_server_flags_a_clients_message_and_never_blocks_it(app, db, people):
    thread, message = sending.start_thread(
        people.client_a, counterpart_id=people.therapist_x.id, subject="Tonight",
        body="Honestly I want to die", notify=False)
    assert message.sent_flagged and crisis_support.flagged(message.id)
    row = db.session.get(Thread, thread.id)
    assert crisis_support.state(thread.id).flagged and row.message_count == 1
    # No event of its own: the flag is a sealed detail of the ordinary send event.
    sent = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "message.sent")).one()
    assert sent.target_id == str(message.id) and sent.severity == "info"
    assert crisis_support.detail(sent) == {"crisis": True}
    assert not db.session.scalars(select(AuditEvent).where(
        AuditEvent.action.like("%crisis%"))).all()

    reply = sending.reply(people.therapist_x, thread.id,
                          body="If you think about suicide, call 988.", notify=False)
    assert not reply.sent_flagged  # the therapist's own words are not flagged
    assert not crisis_support.flagged(reply.id)
    db.session.expire_all()
    # A reply stops the escalation timer, but only "seen and acted on" clears the flag
    # (tests/messaging/test_crisis_ack.py).
    state = crisis_support.state(thread.id)
    assert state.flagged and state.escalate_at is None
    assert state.message_id == message.id
    assert crisis_support.flagged(message.id)  # the message stays marked


def test_client_sees_the_numbers_again_after_sending_crisis_language(app, db, people, login):
    thread, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                     subject="Tonight", body="I want to die", notify=False)
    html = login(people.client_a).get(f"/messages/{thread.id}").get_data(as_text=True)
    assert 'class="safety-notice"' in html and "tel:988" in html and "tel:911" in html


def test_therapist_sees_the_flag_on_the_dashboard_and_the_message(app, db, people, login):
    thread, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                     subject="Tonight", body="I want to die", notify=False)
    therapist = login(people.therapist_x)
    assert "Crisis language" in therapist.get("/dashboard").get_data(as_text=True)
    html = therapist.get(f"/messages/{thread.id}").get_data(as_text=True)
    assert "message--flagged" in html


# --- tappable crisis links: the panel beside the text box and the after-send follow-up -------

CRISIS_HREFS = ('href="tel:988"', 'href="sms:988"', 'href="tel:911"',
                'href="tel:+12153603308"', 'href="tel:+18664887386"',
                'href="sms:678678?&amp;body=START"', 'href="tel:+18775658860"')


def _assert_links(html: str) -> None:
    for href in CRISIS_HREFS:
        assert href in html, href


def test_client_compose_page_offers_every_crisis_link(app, db, people, login):
    html = login(people.client_a).get("/messages/new").get_data(as_text=True)
    _assert_links(html)
    assert "Trans Lifeline" in html and "The Trevor Project" in html


def test_client_thread_offers_every_crisis_link_right_above_the_reply_box(
        app, db, people, login):
    thread, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                     subject="Hello", body="Thursday works", notify=False)
    html = login(people.client_a).get(f"/messages/{thread.id}").get_data(as_text=True)
    _assert_links(html)
    reply = html.index('id="reply-h"')
    assert reply < html.index('href="tel:+18775658860"') < html.index("<textarea")
    assert "crisis-follow-up" not in html  # nothing was flagged


def test_therapist_thread_has_no_client_crisis_panel(app, db, people, login):
    thread, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                     subject="Hello", body="Thursday works", notify=False)
    html = login(people.therapist_x).get(f"/messages/{thread.id}").get_data(as_text=True)
    assert 'href="sms:988"' not in html and "crisis-follow-up" not in html


def test_follow_up_after_a_flagged_send_shows_the_links_once(app, db, people, login):
    from tests.messaging.conftest import csrf_token

    thread, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                     subject="Hello", body="one", notify=False)
    client = login(people.client_a)
    token = csrf_token(client, f"/messages/{thread.id}")
    sent = client.post(f"/messages/{thread.id}/reply",
                       data={"csrf_token": token, "body": "I don't want to be here anymore"})
    assert sent.status_code == 302
    html = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert "Your message was sent." in html
    follow_up = html[html.index('class="safety-notice crisis-follow-up"'):]
    follow_up = follow_up[:follow_up.index("</aside>")]
    _assert_links(follow_up)
    assert "&lt;a" not in html  # no escaped markup from a flash
    again = client.get(f"/messages/{thread.id}").get_data(as_text=True)
    assert "crisis-follow-up" not in again  # shown once, right after sending


def test_follow_up_is_not_shown_after_an_ordinary_send(app, db, people, login):
    from tests.messaging.conftest import csrf_token

    thread, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                     subject="Hello", body="one", notify=False)
    client = login(people.client_a)
    token = csrf_token(client, f"/messages/{thread.id}")
    sent = client.post(f"/messages/{thread.id}/reply",
                       data={"csrf_token": token, "body": "See you Thursday"})
    html = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert "Your message was sent." in html and "crisis-follow-up" not in html
