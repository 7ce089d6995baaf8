"""Crisis flags: raising one, "seen and acted on", and the escalation timer.

A client's crisis-flagged message flags its conversation (`flagged`): the first flagged
message since the last acknowledgement is the one the dashboard jumps to, and the escalation
timer is set CRISIS_ESCALATE_MINUTES ahead. A clinician's reply stops the timer; only "Mark
seen and acted on" (`acknowledge`) clears the flag, and it says who and when. All of it lives
in the thread's sealed crisis state (`crisis_state.py`): no column says which conversations
are flagged, nor when a timer fires.

`escalate_due` is a `hooks.WorkerTask`. With no readable timer column it opens the state of
every thread (keyset batches of SCAN_BATCH, each batch's keys loaded with one SELECT; states
opened before are kept in memory, see crisis_state.py), keeps
those whose timer has come and nobody has acknowledged, and claims each with a compare-and-set
on the sealed blob itself (`UPDATE ... WHERE id = :id AND crisis_sealed = :seen`: every seal is
randomized, so any rewrite since the scan read it, a message, an acknowledgement or another
loop's claim, changes it). Only the loop whose UPDATE changed the row moves the timer on by
CRISIS_REPEAT_MINUTES and, in the same transaction, queues the urgent notice to every covering
clinician and the conversation's therapist (to the administrators when nobody is covering).
The outbox claims each notice before sending, so nobody is emailed twice, and an SMTP outage
only delays a notice. A claim that loses to a new message is simply found again next scan.

Cost: one scan reads every thread's sealed state. Measured with bench/crisis_bench.py on
2,000 clients (about 6,000 threads): about 55 ms of CPU when the states were opened before
(crisis_state remembers them), about 300 ms the first time (6,000 opens and 2,000 data keys
unwrapped), against about 1 ms for the old indexed query. So the deliver-mail loop runs it at
most once per SCAN_EVERY_SECONDS (60) per process (`scheduled`): an escalation is due after
30 minutes, and may go up to a minute late. Tests call `escalate_due(now=...)` directly.
"""

import time
import uuid
from dataclasses import replace
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
from portal.messaging import access, crisis_state, notifications
from portal.messaging.crisis_state import CrisisState
from portal.messaging.models import Thread

TEMPLATE = "crisis_escalation"
ADMIN_TEMPLATE = "crisis_escalation_admin"  # nobody is covering
SCAN_BATCH = 500
SCAN_EVERY_SECONDS = 60
SCAN_STATE = "crisis_escalation_scan"  # app.extensions: when `scheduled` last scanned


def _minutes(name: str) -> timedelta:
    return timedelta(minutes=current_app.config[name])


def flagged(state: CrisisState, message_id: uuid.UUID, now: datetime) -> CrisisState:
    """The state after a client's message matched the crisis check (caller holds the lock)."""
    if not state.unacknowledged():
        state = replace(state, flagged_at=now, message_id=message_id)
    state = replace(state, acknowledged_at=None, acknowledged_by=None)
    if state.escalate_at is None:  # a timer already running is not pushed back
        state = replace(state, escalate_at=now + _minutes("CRISIS_ESCALATE_MINUTES"))
    return state


def acknowledge(actor: User, thread_id: uuid.UUID) -> bool:
    """Mark a conversation's crisis flag "seen and acted on"; False if nothing was flagged.

    For a clinician who takes part in the conversation (404 otherwise). Audited as the
    clinician's ordinary look at the conversation ("thread.viewed", which every view writes,
    with the acknowledgement as its sealed detail): no action name says a flag existed.
    """
    if actor.role != Role.THERAPIST:
        raise RuleError("Only clinicians mark a flag as seen and acted on.")
    try:
        thread = access.thread_for(actor, thread_id, write=True)  # takes the row lock
        state = crisis_state.state_of(thread)
        if not state.unacknowledged():
            db.session.rollback()
            return False
        crisis_state.write(thread, replace(state, acknowledged_at=utcnow(),
                                           acknowledged_by=actor.id, flagged_at=None,
                                           escalate_at=None))
        record("thread.viewed", actor=actor, target=("thread", thread.id),
               subject_id=thread.client_id, detail=crisis_state.viewed_detail(acknowledged=True))
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


def _claim(thread_id: uuid.UUID, client_id: uuid.UUID, seen: bytes, state: CrisisState,
           now: datetime) -> bool:
    """Compare-and-set on the sealed blob: move the timer on only if nobody rewrote the
    state since we read it (a seal is randomized, so every rewrite changes the blob)."""
    moved = replace(state, escalate_at=now + _minutes("CRISIS_REPEAT_MINUTES"),
                    escalations=state.escalations + 1)
    result = db.session.execute(
        update(Thread).where(Thread.id == thread_id, Thread.crisis_sealed == seen)
        .values(crisis_sealed=crisis_state.seal_state(client_id, thread_id, moved))
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def due_threads(now: datetime) -> list[tuple[uuid.UUID, uuid.UUID, bytes, CrisisState]]:
    """(id, client id, blob, state) of every thread whose escalation is due: opens every
    thread's state, SCAN_BATCH rows at a time in id order (one read transaction each)."""
    due = []
    after = None
    while True:
        stmt = (select(*crisis_state.sealed_columns())
                .order_by(Thread.id).limit(SCAN_BATCH))
        if after is not None:
            stmt = stmt.where(Thread.id > after)
        rows = db.session.execute(stmt).all()
        states = crisis_state.open_states(rows)  # one key query for the owners not cached
        db.session.commit()  # hold no transaction (on SQLite: no write lock) meanwhile
        for row in rows:
            state = states[crisis_state.hex_of(row.id)]
            if state.due(now):
                due.append((crisis_state.uuid_of(row.id), crisis_state.uuid_of(row.client_id),
                            row.crisis_sealed, state))
        if not rows:
            break
        if len(rows) < SCAN_BATCH:
            break
        after = crisis_state.uuid_of(rows[-1].id)
    due.sort(key=lambda found: found[3].escalate_at)
    return due


def escalate_due(now: datetime | None = None) -> int:
    """Escalate every unacknowledged flag whose time has come; return how many (commits)."""
    now = now or utcnow()
    db.session.commit()  # start from a fresh transaction: what others committed counts
    done = 0
    for thread_id, client_id, seen, state in due_threads(now):
        try:
            if not _claim(thread_id, client_id, seen, state, now):
                db.session.rollback()
                continue  # another loop has it, or it was acknowledged or written meanwhile
            thread = db.session.get(Thread, thread_id, populate_existing=True)
            for person in recipients(thread):
                address = email_of(person)
                if address:
                    enqueue(person, ADMIN_TEMPLATE if person.role == Role.ADMIN else TEMPLATE,
                            to_address=address, link=_link())
            # The same event every new-message notice writes; the kind is its sealed detail.
            notifications.record_notice(thread, "escalation")
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        done += 1
    return done


def scheduled() -> int:
    """The deliver-mail loop's task: `escalate_due`, at most once per SCAN_EVERY_SECONDS in
    this process (a scan opens every thread's crisis state; see the module's docstring)."""
    scans = current_app.extensions.setdefault(SCAN_STATE, {})  # one app per process
    last = scans.get("at")
    if last is not None and time.monotonic() - last < SCAN_EVERY_SECONDS:
        return 0
    scans["at"] = time.monotonic()
    return escalate_due()
