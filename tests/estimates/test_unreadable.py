"""Content that will not open: the calm page, never a 500, nothing changed, audited once."""

import pytest
from sqlalchemy import select

from portal.audit import AuditEvent
from portal.estimates import billing, content
from portal.estimates.models import BilledAmount, GoodFaithEstimate
from portal.extensions import db
from portal.practice import today as practice_today
from tests.estimates.conftest import csrf, sign_in
from tests.support.outbox import outbox

UNAVAILABLE = "could not be decrypted"


def corrupt_document(estimate_id) -> None:
    """Flip one bit of the sealed document's tag, as a raw write outside the portal would."""
    db.session.rollback()  # let go of the session's transaction (SQLite takes a write lock)
    table = GoodFaithEstimate.__table__
    with db.engine.begin() as conn:
        blob = bytes(conn.execute(select(table.c.document_sealed)
                                  .where(table.c.id == estimate_id)).scalar_one())
        conn.execute(table.update().where(table.c.id == estimate_id)
                     .values(document_sealed=blob[:-1] + bytes([blob[-1] ^ 0x01])))
    db.session.expire_all()


def failures(estimate_id) -> list[AuditEvent]:
    """The decrypt-failure audit events about one estimate."""
    return list(db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "crypto.decrypt_failure",
        AuditEvent.target_id == str(estimate_id))))


@pytest.fixture
def staff(app, practice):
    """The therapist, signed in, and a CSRF token for their session."""
    client = sign_in(app.test_client(), practice.therapist)
    return client, csrf(client)


# ---------------------------------------------------------------------------------- drafts


def test_a_draft_that_will_not_open_is_unavailable_and_audited(practice):
    draft = practice.draft()
    corrupt_document(draft.id)
    with pytest.raises(content.EstimateUnavailable):
        content.open_draft(db.session.get(GoodFaithEstimate, draft.id))
    [event] = failures(draft.id)
    assert event.subject_id == practice.client.id and event.outcome == "failure"


@pytest.mark.parametrize("page", ["edit", "review", "edit?check=1"])
def test_the_builder_pages_of_an_unreadable_draft_are_calm_and_audited_once(staff, practice,
                                                                            page):
    client, _ = staff
    draft = practice.draft()
    corrupt_document(draft.id)
    response = client.get(f"/estimates/{draft.id}/{page}")
    assert response.status_code == 200
    assert UNAVAILABLE in response.get_data(as_text=True)
    assert len(failures(draft.id)) == 1


def test_issuing_an_unreadable_draft_changes_nothing_and_is_audited(staff, practice):
    client, token = staff
    draft = practice.draft()
    corrupt_document(draft.id)
    before = db.session.get(GoodFaithEstimate, draft.id).document_sealed
    response = client.post(f"/estimates/{draft.id}/issue", data={"csrf_token": token})
    assert response.status_code == 422
    assert UNAVAILABLE in response.get_data(as_text=True)
    db.session.commit()  # whatever the request left in the session would be kept now
    db.session.expire_all()
    stored = db.session.get(GoodFaithEstimate, draft.id)
    assert stored.status == "draft" and stored.number is None and stored.pdf_sealed is None
    assert stored.document_sealed == before
    assert outbox("estimate_issued") == []
    assert len(failures(draft.id)) == 1


# ----------------------------------------------------------------------- issued estimates


def test_voiding_a_bill_on_an_unreadable_estimate_shows_the_calm_page(staff, practice):
    client, token = staff
    estimate = practice.issued(period_start=practice_today())  # a bill today is for its care
    billing.record_bill(practice.therapist, estimate, provider_position=0, amount_cents=100,
                        bill_date=practice_today())
    bill_id = db.session.scalar(select(BilledAmount.id))
    corrupt_document(estimate.id)
    response = client.post(f"/estimates/{estimate.id}/bills/{bill_id}/void",
                           data={"csrf_token": token})
    assert response.status_code == 422
    assert UNAVAILABLE in response.get_data(as_text=True)
    db.session.commit()  # whatever the request left in the session would be kept now
    db.session.expire_all()
    bill = db.session.get(BilledAmount, bill_id)
    assert bill.voided_at is None and bill.voided_by_id is None
    assert db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "estimate.bill.voided")).all() == []
    assert len(failures(estimate.id)) == 1


def test_recording_a_bill_the_service_cannot_open_shows_the_calm_page(staff, practice,
                                                                      monkeypatch):
    client, token = staff
    estimate = practice.issued()

    def unavailable(actor, estimate, **values):
        raise content.EstimateUnavailable("This estimate could not be opened.")

    monkeypatch.setattr(billing, "record_bill", unavailable)
    response = client.post(f"/estimates/{estimate.id}/bills", data={
        "csrf_token": token, "provider": "0", "amount": "100.00",
        "bill_date": practice_today().isoformat()})
    assert response.status_code == 422
    assert UNAVAILABLE in response.get_data(as_text=True)
    assert db.session.scalars(select(BilledAmount)).all() == []
