"""What the crypto layer reports reaches the audit trail, with ids only."""

import uuid

from sqlalchemy import select

from portal.accounts.identity import set_identity
from portal.accounts.models import User
from portal.audit import AuditEvent, verify
from portal.crypto import UNREADABLE, Context, open_text_safe
from portal.crypto.rotation import shred


def _events(db, action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_an_unreadable_value_met_in_a_request_is_audited_after_it(app, db):
    owner, row_id = uuid.uuid4(), uuid.uuid4()
    with app.test_request_context("/"):
        shown = open_text_safe(owner, Context("messages", "body_sealed", row_id), b"\x01junk")
        assert shown == UNREADABLE
        assert _events(db, "crypto.decrypt_failure") == []  # not yet: the page is rendering
    (event,) = _events(db, "crypto.decrypt_failure")  # written as the request tore down
    assert (event.target_type, event.target_id) == ("messages", str(row_id))
    assert event.subject_id == owner
    assert (event.outcome, event.severity) == ("failure", "high")
    assert verify().ok


def test_a_request_that_never_commits_still_keeps_the_audit_event(app, db):
    with app.test_request_context("/"):
        open_text_safe(uuid.uuid4(), Context("estimates", "body_sealed", uuid.uuid4()), b"")
        db.session.add(User(role="client"))  # left uncommitted by the view: discarded
    assert len(_events(db, "crypto.decrypt_failure")) == 1
    assert db.session.scalar(select(User.id)) is None


def test_outside_a_request_it_joins_the_current_transaction(db):
    open_text_safe(uuid.uuid4(), Context("messages", "body_sealed", uuid.uuid4()), b"\x09")
    db.session.commit()
    assert len(_events(db, "crypto.decrypt_failure")) == 1


def test_crypto_shredding_is_audited(db):
    client = User(role="client")
    set_identity(client, name="Pat Example", email="pat@example.org")
    db.session.add(client)
    db.session.commit()
    shred(client.id)
    (event,) = _events(db, "crypto.shred")
    assert event.subject_id == client.id and event.target_id == str(client.id)
    assert event.severity == "high"
    assert verify().ok
