"""A copy of the outbox does not tell a crisis escalation or an emergency-access notice from any
other mail (issue 17): the template and the subject are sealed, and every sealed value has the
same length whatever the template; the mail still goes out, whole, over real SMTP."""

import pytest
from sqlalchemy import select, text

from portal.crypto import DecryptionError, context_for, open_text, seal
from portal.extensions import db
from portal.mail import SUBJECTS, OutboxMessage, deliver_pending, enqueue, subject_of, template_of
from portal.mail.service import (
    BODY_BLOCK,
    NAME_BLOCK,
    body_text_of,
    render,
    wait_for_background,
)
from portal.mail.templates import TEMPLATES
from tests.support.outbox import outbox
from tests.support.people import make_user, unique_email

LINK = "https://portal.example.org/sign-in"
TELLING = ("crisis_escalation", "crisis_escalation_admin", "urgent_message",
           "emergency_access_notice", "emergency_access_client", "emergency_access_therapist")
ORDINARY = ("new_message", "estimate_issued", "password_changed")
SEALED = ("template_sealed", "subject_sealed", "recipient_sealed", "body_text_sealed",
          "body_html_sealed")


def _context(template: str) -> dict:
    spec = TEMPLATES[template]
    values = {"link": LINK, "hours_valid": 72, "minutes_valid": 30, "minutes": 15,
              "staff_name": "Jordan Lee", "when": "3 December 2026, 10:15 AM"}
    return {name: values[name] for name in spec.accepts}


def _queue(templates) -> dict[str, OutboxMessage]:
    rows = {}
    for template in templates:
        # One address length for all: the recipient's sealed length is the address's bucket.
        person = make_user("client", "Pat Example", email=unique_email("sealed"))
        rows[template] = enqueue(person, template, to_address=person.email_address,
                                 **_context(template))
    db.session.commit()
    return rows


def _raw_rows() -> list[dict]:
    with db.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(text("SELECT * FROM mail_outbox"))]


def test_no_template_name_or_subject_is_readable_at_rest(app):
    _queue(TELLING + ORDINARY)
    rows = _raw_rows()
    assert len(rows) == len(TELLING + ORDINARY)
    assert "template" not in rows[0] and "subject" not in rows[0]
    words = [*TELLING, *ORDINARY, "crisis", "emergency", "Urgent", "urgent",
             *(TEMPLATES[t].subject for t in TELLING + ORDINARY)]
    for row in rows:
        for value in row.values():
            blob = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
            for word in words:
                assert word.encode() not in blob, word


def test_every_sealed_value_has_the_same_length_whatever_the_template(app):
    rows = _queue(TELLING + ORDINARY)
    lengths = {name: {len(getattr(row, name)) for row in rows.values()} for name in SEALED}
    assert all(len(found) == 1 for found in lengths.values()), lengths
    # Every template's bodies fit one block, its name and subject one name block: none is a
    # size apart from the others.
    for template, spec in TEMPLATES.items():
        plain, html = render(template, **_context(template))
        assert len(plain.encode()) <= BODY_BLOCK and len(html.encode()) <= BODY_BLOCK, template
        assert len(template) <= NAME_BLOCK and len(spec.subject.encode()) <= NAME_BLOCK


def test_the_sealed_template_and_subject_open_for_the_worker(app):
    rows = _queue(("crisis_escalation", "new_message"))
    for template, row in rows.items():
        assert template_of(row) == template and row.template == template
        assert subject_of(row) == SUBJECTS[template] == row.subject
        opened = open_text(row.user_id, context_for(OutboxMessage.template_sealed, row.id),
                           row.template_sealed)
        assert opened == template.ljust(NAME_BLOCK, "\0")  # framed to the name block
    # Bound to the row and the column: the template's blob does not open as the subject.
    crisis = rows["crisis_escalation"]
    with pytest.raises(DecryptionError):
        open_text(crisis.user_id, context_for(OutboxMessage.subject_sealed, crisis.id),
                  crisis.template_sealed)
    assert [row.id for row in outbox("crisis_escalation")] == [crisis.id]


def test_the_outbox_cannot_be_filtered_by_a_template_in_sql(app):
    with pytest.raises(TypeError, match="sealed"):
        select(OutboxMessage).where(OutboxMessage.template == "crisis_escalation")


@pytest.mark.parametrize("after_commit", [False, True], ids=["worker", "after commit"])
def test_padded_mail_is_delivered_whole_over_smtp(app, smtp_server, after_commit):
    app.config["MAIL_SEND_AFTER_COMMIT"] = after_commit
    rows = _queue(("crisis_escalation", "emergency_access_notice"))
    if after_commit:
        assert wait_for_background()
    else:
        assert deliver_pending().sent == 2
    received = {e.message["Subject"]: e for e in smtp_server.envelopes}
    assert set(received) == {SUBJECTS["crisis_escalation"], SUBJECTS["emergency_access_notice"]}
    for template, row in rows.items():
        envelope = received[SUBJECTS[template]]
        plain, _ = render(template, **_context(template))
        assert b"\0" not in envelope.content
        assert envelope.text.splitlines() == plain.splitlines()
        assert LINK in envelope.html
        assert body_text_of(row) == plain  # the NULs of the frame are not part of the body
        db.session.refresh(row)
        assert row.sent_at is not None


def test_a_body_queued_before_framing_still_opens_whole(app):
    (row,) = _queue(("new_message",)).values()
    plain = body_text_of(row)
    # A row as the outbox wrote it before bodies were framed.
    row.body_text_sealed = seal(row.user_id, context_for(OutboxMessage.body_text_sealed, row.id),
                                plain)
    db.session.commit()
    assert body_text_of(row) == plain
