"""Crisis flags: raising one, "seen and acted on", and the escalation timer.

A client's crisis-flagged message flags its conversation (`flag`): the first flagged message
since the last acknowledgement is the one the dashboard jumps to, and the escalation timer is
set CRISIS_ESCALATE_MINUTES ahead. A clinician's reply stops the timer; only "Mark seen and
acted on" (`acknowledge`) clears the flag, and it says who and when.

`escalate_due` is a `hooks.WorkerTask`: each round of the deliver-mail loop it finds the
flags whose time has come and nobody has acknowledged, claims each with a compare-and-set
UPDATE (the row's `crisis_escalate_at` must still be the value it read), moves the timer on by
CRISIS_REPEAT_MINUTES and, in the same transaction, queues the urgent notice to every covering
clinician and the conversation's therapist (to the administrators when nobody is covering).
Several loops on several machines may run it at once: only the one whose UPDATE changed the
row queues the notice, and the outbox claims each notice before sending, so nobody is emailed
twice. An SMTP outage only delays a notice: it stays in the outbox until it goes.
"""

import uuid
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from portal.accounts.identity import email_of
from portal.accounts.models import Role, User
from portal.accounts.service import covering_clinicians
from portal.audit import record
from portal.db import utcnow
from portal.errors import RuleError
from portal.extensions import db
from portal.mail import enqueue
from portal.messaging import access
from portal.messaging.models import Thread

TEMPLATE = "crisis_escalation"
ADMIN_TEMPLATE = "crisis_escalation_admin"  # nobody is covering
BATCH = 100


def _minutes(name: str) -> timedelta:
    return timedelta(minutes=current_app.config[name])


def flag(thread: Thread, message_id: uuid.UUID, now: datetime) -> None:
    """A client's message matched the crisis check (caller holds the thread's lock)."""
    if thread.crisis_flagged_at is None:
        thread.crisis_flagged_at = now
        thread.crisis_message_id = message_id
    thread.crisis_acknowledged_at = thread.crisis_acknowledged_by_id = None
    if thread.crisis_escalate_at is None:  # a timer already running is not pushed back
        thread.crisis_escalate_at = now + _minutes("CRISIS_ESCALATE_MINUTES")


def acknowledge(actor: User, thread_id: uuid.UUID) -> bool:
    """Mark a conversation's crisis flag "seen and acted on"; False if nothing was flagged.

    For a clinician who takes part in the conversation (404 otherwise); audited, ids only.
    """
    if actor.role != Role.THERAPIST:
        raise RuleError("Only clinicians mark a flag as seen and acted on.")
    try:
        thread = access.thread_for(actor, thread_id, write=True)  # takes the row lock
        if thread.crisis_flagged_at is None:
            db.session.rollback()
            return False
        now = utcnow()
        thread.crisis_acknowledged_at, thread.crisis_acknowledged_by_id = now, actor.id
        thread.crisis_flagged_at = thread.crisis_escalate_at = None
        record("message.crisis_acknowledged", actor=actor,
               target=("message", thread.crisis_message_id) if thread.crisis_message_id
               else ("thread", thread.id), subject_id=thread.client_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return True


def _link() -> str:
    return current_app.config["PORTAL_BASE_URL"].rstrip("/") + "/sign-in"


def recipients(thread: Thread) -> list[User]:
    """Who is told: the covering clinicians and the thread's therapist, or, with nobody
    covering, the therapist and the administrators (who are asked to phone a clinician)."""
    people = covering_clinicians()
    nobody_covering = not people
    therapist = db.session.get(User, thread.therapist_id)
    if therapist is not None and therapist.active:
        people.append(therapist)
    if nobody_covering:
        people.extend(db.session.scalars(
            select(User).where(User.role == Role.ADMIN, User.active).order_by(User.created_at)))
    return list({person.id: person for person in people}.values())


def _claim(thread_id: uuid.UUID, seen: datetime, now: datetime) -> bool:
    """Compare-and-set: move the timer on only if nobody else did since we read it."""
    result = db.session.execute(
        update(Thread)
        .where(Thread.id == thread_id, Thread.crisis_escalate_at == seen,
               Thread.crisis_acknowledged_at.is_(None))
        .values(crisis_escalate_at=now + _minutes("CRISIS_REPEAT_MINUTES"),
                crisis_escalations=Thread.crisis_escalations + 1)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def escalate_due(now: datetime | None = None) -> int:
    """Escalate every unacknowledged flag whose time has come; return how many (commits)."""
    now = now or utcnow()
    db.session.commit()  # start from a fresh transaction: what others committed counts
    due = db.session.execute(
        select(Thread.id, Thread.crisis_escalate_at)
        .where(Thread.crisis_escalate_at.is_not(None), Thread.crisis_escalate_at <= now,
               Thread.crisis_acknowledged_at.is_(None))
        .order_by(Thread.crisis_escalate_at).limit(BATCH)).all()
    db.session.commit()
    done = 0
    for thread_id, seen in due:
        try:
            if not _claim(thread_id, seen, now):
                db.session.rollback()
                continue  # another loop has it, or it was acknowledged meanwhile
            thread = db.session.get(Thread, thread_id, populate_existing=True)
            for person in recipients(thread):
                address = email_of(person)
                if address:
                    enqueue(person, ADMIN_TEMPLATE if person.role == Role.ADMIN else TEMPLATE,
                            to_address=address, link=_link())
            record("message.crisis_escalated", actor=None,
                   target=("message", thread.crisis_message_id) if thread.crisis_message_id
                   else ("thread", thread.id), subject_id=thread.client_id, severity="high")
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        done += 1
    return done
