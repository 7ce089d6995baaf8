"""Reading sealed crisis flags back in tests: a thread's opened state, a message's flag, and
an audit row's sealed detail (the flag columns are sealed, so tests open them as pages do)."""

import uuid

from portal.audit.service import detail_of
from portal.extensions import db
from portal.messaging import crisis_state
from portal.messaging.crisis_state import CrisisState
from portal.messaging.models import Message, Thread


def state(thread_id: uuid.UUID) -> CrisisState:
    """The thread's crisis state as it is in the database now."""
    thread = db.session.get(Thread, thread_id, populate_existing=True)
    return crisis_state.open_state(thread.client_id, thread.id, thread.crisis_sealed)


def flagged(message_id: uuid.UUID) -> bool:
    """Whether the stored message is crisis-flagged (its sealed flag opened)."""
    message = db.session.get(Message, message_id, populate_existing=True)
    owner = db.session.get(Thread, message.thread_id).client_id
    return crisis_state.message_flagged(owner, message.id, message.crisis_sealed)


def detail(event) -> dict:
    return detail_of(event)
