"""A corrupted or misplaced ciphertext spoils one item, never the page."""

import pytest
from sqlalchemy import select, update

from portal.audit import AuditEvent
from portal.crypto import UNREADABLE
from portal.extensions import db
from portal.messaging import sending
from portal.messaging.models import Attachment, Message, Thread
from tests.messaging.conftest import PDF, assign, make_user, sign_in

pytestmark = pytest.mark.slow
UNREADABLE_HTML = "This item could not be decrypted."


def flip_last_byte(blob: bytes) -> bytes:
    """Change one bit of the authentication tag at the end of a sealed value."""
    return blob[:-1] + bytes([blob[-1] ^ 0x01])


@pytest.fixture
def conversation(app, isolated_requests):
    """A client, their therapist and a thread of three messages (the second with a file)."""
    client, therapist = make_user("client", "Alex Rivera"), make_user("therapist", "Colleen Xu")
    assign(client, therapist)
    thread, _ = sending.start_thread(client, counterpart_id=therapist.id, subject="Sleep",
                                     body="first: the week went well", notify=False)
    sending.reply(therapist, thread.id, body="second: glad to hear it",
                  files=[("plan.pdf", PDF)], notify=False)
    sending.reply(client, thread.id, body="third: see you Thursday", notify=False)
    messages = list(db.session.scalars(select(Message).where(Message.thread_id == thread.id)
                                       .order_by(Message.created_at)))
    return client, therapist, thread, messages


def corrupt(model, column: str, row_id) -> None:
    blob = db.session.scalar(select(getattr(model, column)).where(model.id == row_id))
    db.session.execute(update(model).where(model.id == row_id)
                       .values({column: flip_last_byte(bytes(blob))}))
    db.session.commit()


def failures() -> list[tuple[str, str]]:
    return [(e.target_type, e.target_id) for e in db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "crypto.decrypt_failure"))]


def test_a_corrupted_message_shows_as_undecryptable_and_the_page_renders(app, conversation):
    client, therapist, thread, messages = conversation
    corrupt(Message, "body_sealed", messages[1].id)

    for person in (client, therapist):
        browser = app.test_client()
        sign_in(browser, person)
        response = browser.get(f"/messages/{thread.id}")
        page = response.get_data(as_text=True)
        assert response.status_code == 200
        assert page.count(UNREADABLE_HTML) == 1
        assert "first: the week went well" in page and "third: see you Thursday" in page
        assert "second: glad to hear it" not in page
        assert "plan.pdf" in page  # the message's file is a separate item and still opens
    assert failures() == [("messages", str(messages[1].id))] * 2  # audited, ids only


def test_a_ciphertext_moved_to_another_row_does_not_open_there(app, conversation):
    client, _, thread, messages = conversation
    first = db.session.scalar(select(Message.body_sealed).where(Message.id == messages[0].id))
    db.session.execute(update(Message).where(Message.id == messages[2].id)
                       .values(body_sealed=first))
    db.session.commit()
    browser = app.test_client()
    sign_in(browser, client)
    page = browser.get(f"/messages/{thread.id}").get_data(as_text=True)
    assert page.count(UNREADABLE_HTML) == 1
    assert page.count("first: the week went well") == 1


def test_a_corrupted_subject_or_file_spoils_only_that_item(app, conversation):
    client, therapist, thread, _ = conversation
    other, _ = sending.start_thread(client, counterpart_id=therapist.id, subject="Work stress",
                                    body="another conversation", notify=False)
    corrupt(Thread, "subject_sealed", thread.id)
    attachment_id = db.session.scalar(select(Attachment.id))
    corrupt(Attachment, "content_sealed", attachment_id)

    browser = app.test_client()
    sign_in(browser, client)
    inbox = browser.get("/messages")
    page = inbox.get_data(as_text=True)
    assert inbox.status_code == 200
    assert "Work stress" in page and page.count(UNREADABLE) == 1
    thread_page = browser.get(f"/messages/{thread.id}")
    assert thread_page.status_code == 200
    assert "second: glad to hear it" in thread_page.get_data(as_text=True)
    download = browser.get(f"/messages/attachments/{attachment_id}")
    assert download.status_code == 422
    assert "This item could not be decrypted" in download.get_data(as_text=True)
    assert browser.get(f"/messages/{other.id}").status_code == 200
    assert ("message_attachments", str(attachment_id)) in failures()
