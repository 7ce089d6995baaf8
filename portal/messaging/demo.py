"""Demo conversations for `portal seed-demo` (development only)."""

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select

from portal.db import utcnow
from portal.extensions import db
from portal.messaging import access, crisis_state
from portal.messaging.models import Message, Thread
from portal.messaging.reading import view_thread
from portal.messaging.sending import reply, start_thread

BREATHING = (b"Breathing practice\n\n"
             b"4-7-8: breathe in through your nose for 4, hold for 7, out through your mouth "
             b"for 8. Four rounds, twice a day.\n\nBox breathing: in 4, hold 4, out 4, hold 4.\n")

# (client, therapist, subject, [(who, hours ago, text, files)], read by)
CONVERSATIONS = (
    ("alex@example.org", "colleen@coeo.example", "Moving Thursday's session", [
        ("client", 50, "Hi Colleen,\n\nSomething came up at work on Thursday. Could we move "
                       "our session to Friday morning, or is next week better?\n\nThanks, Alex",
         ()),
        ("therapist", 30, "Hi Alex,\n\nFriday at 10 works well. I have moved it, so there is "
                          "nothing else you need to do.\n\nSee you then,\nColleen", ()),
        ("client", 3, "Thank you, that's perfect.", ()),
    ], ("client",)),
    ("zoe@example.org", "kristen@coeo.example", "Worksheet from Tuesday", [
        ("therapist", 80, "Hi Zoë,\n\nHere is the breathing worksheet we talked about. Try "
                          "one of them before bed this week and notice what changes.\n\n"
                          "Kristen", (("breathing-practice.txt", BREATHING),)),
        ("client", 60, "Thanks! I tried the 4-7-8 one last night and fell asleep faster than "
                       "usual.", ()),
        ("therapist", 40, "That is lovely to hear. Keep going with it and we can talk about "
                          "it on Tuesday.", ()),
    ], ("client", "therapist")),
    ("zoe@example.org", "colleen@coeo.example", "A question about a family session", [
        ("client", 26, "Hello Colleen, could my partner join one of our sessions next month? "
                       "We have been talking about it and we would both like to.", ()),
    ], ()),
    ("sam@example.org", "kristen@coeo.example", "A rough week", [
        ("client", 5, "This week has been really hard, and honestly some days I don't want to "
                      "be here anymore. I'm safe right now. I just wanted you to know before "
                      "Monday.", ()),
    ], ()),
)


def seed(by_email: dict) -> None:
    """Create the demo conversations between the demo clients and therapists."""
    now = utcnow()
    for client_email, therapist_email, subject, messages, read_by in CONVERSATIONS:
        client, therapist = by_email[client_email], by_email[therapist_email]
        people = {"client": client, "therapist": therapist}
        first_who, _, first_text, first_files = messages[0]
        sender = people[first_who]
        other = therapist if first_who == "client" else client
        thread, _ = start_thread(sender, counterpart_id=other.id, subject=subject,
                                 body=first_text, files=first_files, notify=False)
        for who, _, text, files in messages[1:]:
            reply(people[who], thread.id, body=text, files=files, notify=False)
        for who in read_by:
            reader = people[who]
            view_thread(reader, access.thread_access(reader, thread.id))
        _set_times(thread.id, [now - timedelta(hours=hours) for _, hours, _, _ in messages])


def _set_times(thread_id, times) -> None:
    """Spread the messages over the past days, as if written then."""
    thread = db.session.get(Thread, thread_id)
    found = list(db.session.scalars(select(Message).where(Message.thread_id == thread_id)
                                    .order_by(Message.created_at)))
    awaiting = None
    for message, at in zip(found, times, strict=True):
        message.created_at = at
        if message.read_at is not None:
            message.read_at = at + timedelta(minutes=25)
        awaiting = (awaiting or at) if message.sender_id == thread.client_id else None
    thread.created_at, thread.last_message_at = times[0], times[-1]
    thread.awaiting_since = awaiting
    state = crisis_state.state_of(thread)
    if state.flagged:
        flagged_at = next((m.created_at for m in found if crisis_state.message_flagged(
            thread.client_id, m.id, m.crisis_sealed)), times[-1])
        crisis_state.write(thread, replace(state, flagged_at=flagged_at))
    db.session.commit()
