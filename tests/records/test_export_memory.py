"""The record export runs in constant memory (#15): the worker's peak resident memory while
a client's ZIP streams is the same, within a few megabytes, for 100 and for 1,000 messages.

The peak is the kernel's high-water mark (VmHWM), reset before each export by writing 5 to
/proc/self/clear_refs (Linux): no tracing overhead, so the test takes seconds, not minutes.
`bench/export_bench.py` reports the Python heap's peak (tracemalloc) as well.
"""

import os
from datetime import timedelta
from pathlib import Path

import pytest

from portal.crypto import context_for, seal
from portal.db import new_id, utcnow
from portal.extensions import db
from portal.messaging import crisis_state
from portal.messaging.models import (
    Attachment,
    Message,
    Thread,
    attachment_name_context,
    body_context,
)
from portal.records import export
from tests.messaging.conftest import assign
from tests.support.people import make_user

CONVERSATIONS = 20
ATTACHMENTS = 10
ATTACHMENT_BYTES = 200_000
FLAT_BYTES = 12_000_000
BODY = ("Thank you for today. I tried the breathing exercise twice and it helped a little; "
        "the evenings are still hard. ") * 3


def _seed(messages: int):
    therapist = make_user("therapist", "Colleen Øvergaard")
    client = make_user("client", "Zoë Nguyễn-Ōtsuka")
    assign(client, therapist)
    start = utcnow() - timedelta(days=100)
    written = attached = 0
    for c in range(CONVERSATIONS):
        thread = Thread(id=new_id(), client_id=client.id, therapist_id=therapist.id,
                        created_by_id=client.id, created_at=start + timedelta(days=c),
                        last_message_at=start, message_count=0)
        thread.subject_sealed = seal(client.id, thread.subject_context(), f"Week {c + 1}")
        crisis_state.ensure(thread)
        db.session.add(thread)
        db.session.flush()
        for m in range(messages // CONVERSATIONS):
            sender = client if m % 2 == 0 else therapist
            message = Message(id=new_id(), thread_id=thread.id, sender_id=sender.id,
                              sender_role=sender.role,
                              created_at=start + timedelta(days=c, minutes=m))
            message.body_sealed = seal(client.id, body_context(message.id), f"{m}. {BODY}")
            message.crisis_sealed = crisis_state.seal_message_flag(client.id, message.id, False)
            db.session.add(message)
            written += 1
            if attached < ATTACHMENTS and written % (messages // ATTACHMENTS) == 0:
                item = Attachment(id=new_id(), message_id=message.id, kind="jpeg",
                                  size=ATTACHMENT_BYTES)
                item.name_sealed = seal(client.id, attachment_name_context(item.id),
                                        f"photo {attached}.jpg")
                item.content_sealed = seal(client.id,
                                           context_for(Attachment.content_sealed, item.id),
                                           b"\xff\xd8\xff" + os.urandom(ATTACHMENT_BYTES - 3))
                db.session.add(item)
                attached += 1
        db.session.commit()
    return client


def _high_water_mark() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _peak_while_streaming(app, client) -> tuple[int, int]:
    """Stream the ZIP, dropping each chunk as a server would; (peak RSS, bytes out)."""
    with app.test_request_context():
        chunks = export.stream(client, client)
        Path("/proc/self/clear_refs").write_text("5")
        size = sum(len(chunk) for chunk in chunks)
        peak = _high_water_mark()
    return peak, size


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux only")
@pytest.mark.parametrize("small, large", [(100, 1000)])
def test_memory_is_flat_from_100_to_1000_messages(app, small, large):
    peaks = {}
    for messages in (small, large):
        client = _seed(messages)
        _peak_while_streaming(app, client)  # warm: fonts, templates, statement caches
        db.session.remove()
        peaks[messages], size = _peak_while_streaming(app, client)
        assert size > ATTACHMENTS * ATTACHMENT_BYTES  # the files went out
        db.session.remove()
    grew = peaks[large] - peaks[small]
    assert grew < FLAT_BYTES, (
        f"peak RSS {peaks[small] / 1e6:.1f} MB at {small} messages, "
        f"{peaks[large] / 1e6:.1f} MB at {large}")
