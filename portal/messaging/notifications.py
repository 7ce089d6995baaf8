"""Email the other participant "You have a new secure message": a sign-in link and nothing else.

At most one email per conversation per person per NOTIFY_THROTTLE_MINUTES. A message sent
inside that window gets a single follow-up notice, due when the window ends (a later one
replaces a notice still waiting with a new one due at the same time, so every client message
writes one outbox row, as a flagged message's urgent notice does); reading the
conversation first withdraws any notice still waiting, so nobody is emailed about a message
they have already read. Notices go through the outbox in the sender's transaction: an SMTP
outage delays a notice, never loses it.

A crisis-flagged message is different: its therapist is emailed at once (the URGENT template,
whose subject says only that it is urgent), whatever the throttle says, and that notice is
never withdrawn, not even when the thread is opened before it goes. With nothing else
waiting it is the thread's notice like any other (`*_notice_id`), so the thread row does not
say which kind it holds: only the sealed template does.

A conversation with the practice (a client with no therapist) does the same for each covering
clinician (`notify_practice`): every client message writes one notice per clinician, a notice
still waiting being replaced by one of its kind due at the same time, and one notice event.

Every notice queued about a conversation, ordinary, urgent or an escalation, writes the same
audit event, "message.notice_queued", whose sealed detail says which kind (`record_notice`):
no action name is written only about a crisis.
"""

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, or_, select

from portal.accounts.identity import email_of
from portal.accounts.service import covering_clinicians
from portal.audit import record
from portal.extensions import db
from portal.mail import OutboxMessage, enqueue
from portal.mail.service import (
    _AFTER_COMMIT_KEY,  # a deferred notice must wait for its time
    template_of,
)
from portal.messaging.models import Thread

TEMPLATE = "new_message"
URGENT = "urgent_message"


def _window() -> timedelta:
    return timedelta(minutes=current_app.config["NOTIFY_THROTTLE_MINUTES"])


def side_of(thread: Thread, user_id) -> str:
    """'client' or 'therapist': which side of the thread this user is on."""
    return "client" if user_id == thread.client_id else "therapist"


def sign_in_link() -> str:
    return current_app.config["PORTAL_BASE_URL"].rstrip("/") + "/sign-in"


def record_notice(thread: Thread, kind: str) -> None:
    """Audit a notice queued about this conversation (by the system: nobody opened anything).
    `kind` ("new", "urgent", "escalation") is sealed in the row, never readable at rest."""
    record("message.notice_queued", actor=None, target=("thread", thread.id),
           subject_id=thread.client_id, detail={"kind": kind})


def _waiting(notice_id) -> bool:
    """True while the outbox row exists and has not been sent."""
    row = db.session.execute(
        select(OutboxMessage.sent_at).where(OutboxMessage.id == notice_id)).first()
    return row is not None and row.sent_at is None


def notify(thread: Thread, recipient, *, now: datetime,
           urgent: bool = False) -> OutboxMessage | None:
    """Queue (or fold into a waiting notice) the new-message email for `recipient`.

    `urgent` (a crisis-flagged message) sends the urgent notice at once instead, past the
    throttle and past any waiting notice. Call inside the sending transaction, with the
    thread's row lock held.
    """
    if recipient is None or not recipient.active:
        return None
    side = side_of(thread, recipient.id)
    notice_attr, notified_attr = f"{side}_notice_id", f"{side}_notified_at"
    waiting = getattr(thread, notice_attr)
    if urgent:
        return _notify_urgently(thread, recipient, now=now, notified_attr=notified_attr,
                                waiting=waiting is not None and _waiting(waiting))
    address = email_of(recipient)
    if waiting is not None and _waiting(waiting):
        # A notice is still waiting to go; it covers this message too. It is replaced by a
        # new one of its kind due at the same time, so this send writes what a flagged one's
        # urgent notice writes (an outbox row and its audit event), whatever came before,
        # and nobody gets a second email. One the worker is sending right now is left alone.
        return _replace_waiting(thread, recipient, address, waiting, now=now,
                                notice_attr=notice_attr) if address else None
    if not address:
        return None
    last = getattr(thread, notified_attr)
    window = _window()
    due = now if last is None or now - last >= window else last + window
    row = enqueue(recipient, TEMPLATE, to_address=address, link=sign_in_link())
    if due > now:
        _defer(row, due)
    setattr(thread, notified_attr, due)
    setattr(thread, notice_attr, row.id)
    record_notice(thread, "new")
    return row


def _is_urgent(notice_id) -> bool:
    """Whether an outbox row is an urgent notice (its template is sealed: opened here)."""
    row = db.session.get(OutboxMessage, notice_id)
    return row is not None and template_of(row) == URGENT


def _remove_unsent(notice_id, now: datetime) -> bool:
    """Delete a notice that has not gone and that no worker is sending right now."""
    removed = db.session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.id == notice_id, OutboxMessage.sent_at.is_(None),
            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until <= now)))
    return bool(removed.rowcount)


def _replace_waiting(thread: Thread, recipient, address: str, waiting, *, now: datetime,
                     notice_attr: str) -> OutboxMessage | None:
    """Replace the waiting notice by one of the same kind (an urgent one stays urgent: it is
    never dropped) due at the same time (a retry's backoff too)."""
    urgent = _is_urgent(waiting)
    due = db.session.scalar(select(OutboxMessage.next_attempt_at)
                            .where(OutboxMessage.id == waiting))
    if due is None or not _remove_unsent(waiting, now):
        return None
    row = enqueue(recipient, URGENT if urgent else TEMPLATE, to_address=address,
                  link=sign_in_link())
    if due > now:
        _defer(row, due)
    setattr(thread, notice_attr, row.id)
    record_notice(thread, "urgent" if urgent else "new")
    return row


def _notify_urgently(thread: Thread, recipient, *, now: datetime, notified_attr: str,
                     waiting: bool) -> OutboxMessage | None:
    """Queue the urgent notice to go now. With no notice waiting it becomes the thread's
    notice, as an ordinary one would (so the row does not say which kind it holds), but
    opening the thread never withdraws it (`withdraw` opens its sealed template); it starts a
    new throttle window. A follow-up already waiting stays the thread's notice (its due time
    is what the window records)."""
    address = email_of(recipient)
    if not address:
        return None
    row = enqueue(recipient, URGENT, to_address=address, link=sign_in_link())
    if not waiting:
        setattr(thread, notified_attr, now)
        setattr(thread, notified_attr.replace("_notified_at", "_notice_id"), row.id)
    record_notice(thread, "urgent")
    return row


def notify_practice(thread: Thread, *, now: datetime, urgent: bool = False) -> int:
    """Tell every covering clinician about a client's message to the practice; return how many.

    Urgent: each is emailed at once, past the throttle. Otherwise one notice each per throttle
    window (a later message inside the window gets one follow-up each, due when it ends).
    Either way every message writes one notice row per covering clinician and one
    "message.notice_queued" event (#17), so an ordinary message writes the rows a flagged
    one's urgent notices write: a clinician's notice still waiting is replaced by one of
    its kind due at the same time, as `notify` does. Which of a clinician's waiting notices
    is replaced does not matter (each says only that there is a message; one about a
    conversation of their own is left to `notify`): no clinician has more than one notice
    due per window (one who started covering inside it gets the follow-up the others get).
    Several people share the conversation's clinician side, so these
    notices are not withdrawn by one of them reading it. Call inside the sending
    transaction, with the thread's row lock held.
    """
    people = [(person, address) for person in covering_clinicians()
              if (address := email_of(person))]
    last = thread.therapist_notified_at
    if urgent:
        for person, address in people:
            _queue_practice(person, address, URGENT, due=now, now=now)
        if last is None or last <= now:  # follow-ups already waiting keep their time
            thread.therapist_notified_at = now
    else:
        window = _window()
        due = now  # nothing in this window yet; else the window's end (its follow-ups')
        if last is not None and now - last < window:
            due = last if last > now else last + window
        waiting = _practice_waiting([person.id for person, _ in people], since=last)
        latest = None
        for person, address in people:
            old = waiting.get(person.id)
            if old is not None and _remove_unsent(old.id, now):
                # Still waiting: it covers this message too. Replaced by one of its kind due
                # at the same time, so nobody gets a second email inside the window.
                _queue_practice(person, address, old.template, due=old.next_attempt_at,
                                now=now)
            else:
                _queue_practice(person, address, TEMPLATE, due=due, now=now)
                latest = due
        if latest is not None and (last is None or latest > last):
            thread.therapist_notified_at = latest
    if people:
        record_notice(thread, "urgent" if urgent else "new")
    return len(people)


class _Waiting:
    def __init__(self, row, template: str):
        self.id, self.next_attempt_at, self.template = row.id, row.next_attempt_at, template


def _practice_waiting(person_ids: list, *, since: datetime | None) -> dict:
    """Each clinician's notice still waiting from this window: unsent, not being sent, due at
    or after the thread's last notice time (a practice notice's due time is set exactly, see
    `_queue_practice`), new-message or urgent (opened: the template is sealed), and not the
    waiting notice of a conversation of their own (that one is `notify`'s, by its id). An
    ordinary one is chosen before an urgent one; either is replaced by its own kind."""
    if since is None or not person_ids:
        return {}
    own = select(Thread.id).where(Thread.therapist_id == OutboxMessage.user_id,
                                  Thread.therapist_notice_id == OutboxMessage.id)
    rows = db.session.execute(
        select(OutboxMessage.id, OutboxMessage.user_id, OutboxMessage.template_sealed,
               OutboxMessage.next_attempt_at)
        .where(OutboxMessage.user_id.in_(person_ids), OutboxMessage.sent_at.is_(None),
               OutboxMessage.next_attempt_at >= since, ~own.exists())
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)).all()
    found: dict = {}
    for row in rows:
        template = template_of(row)
        if template not in (TEMPLATE, URGENT):
            continue
        chosen = found.get(row.user_id)
        if chosen is None or (chosen.template == URGENT and template == TEMPLATE):
            found[row.user_id] = _Waiting(row, template)
    return found


def _queue_practice(person, address: str, template: str, *, due: datetime,
                    now: datetime) -> OutboxMessage:
    """One practice notice, due exactly at `due` if that is later than now (held back by the
    worker), else exactly at `now`, the message's time: the thread's notice time, which is
    how a later message finds it waiting (`_practice_waiting`)."""
    row = enqueue(person, template, to_address=address, link=sign_in_link())
    if due > now:
        _defer(row, due)
    else:
        row.next_attempt_at = now  # the thread's time: a replacement due earlier goes now
    return row


def _defer(row: OutboxMessage, due: datetime) -> None:
    """Hold a queued notice until `due`: the worker sends it then, not the after-commit hook."""
    row.next_attempt_at = due
    db.session.info.get(_AFTER_COMMIT_KEY, {}).pop(row.id, None)


def withdraw(thread: Thread, reader_id, *, now: datetime) -> bool:
    """Withdraw the reader's notice if it has not gone yet (they have read the thread)."""
    side = side_of(thread, reader_id)
    notice_attr, notified_attr = f"{side}_notice_id", f"{side}_notified_at"
    notice_id = getattr(thread, notice_attr)
    if notice_id is None:
        return False
    if _is_urgent(notice_id):  # an urgent notice is never withdrawn, not even once read
        setattr(thread, notice_attr, None)
        return False
    result = db.session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.id == notice_id, OutboxMessage.sent_at.is_(None),
            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until <= now)))
    setattr(thread, notice_attr, None)
    withdrawn = bool(result.rowcount)
    notified = getattr(thread, notified_attr)
    if withdrawn and notified is not None and notified > now:
        # It was a follow-up due later: the last real notice was one window before it.
        setattr(thread, notified_attr, notified - _window())
    return withdrawn
