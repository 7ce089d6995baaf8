"""Issuing freezes an estimate; corrections supersede with history kept; nothing leaks at rest."""

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from portal.audit import AuditEvent
from portal.crypto import Context, open_bytes, open_text
from portal.errors import RuleError
from portal.estimates import (
    billing,
    clients,
    content,
    deadlines,
    delivery,
    drafting,
    follow_ups,
    issuing,
    status,
    totals,
)
from portal.estimates.models import (
    BilledAmount,
    DeliveryEvent,
    FrozenEstimateError,
    GoodFaithEstimate,
)
from portal.extensions import db
from portal.mail import OutboxMessage
from portal.practice import today as practice_today
from tests.estimates.conftest import complete_draft
from tests.support.outbox import outbox

TABLE = "good_faith_estimates"


def audit(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                   .order_by(AuditEvent.seq)))


def mails(template: str) -> list[OutboxMessage]:
    return outbox(template)


def mail_text(row: OutboxMessage) -> str:
    return open_text(row.user_id, Context("mail_outbox", "body_text_sealed", row.id),
                     row.body_text_sealed)


# ------------------------------------------------------------------------------- issuing


def test_issuing_numbers_seals_and_hashes_the_estimate(practice):
    estimate = practice.issued()
    today = practice_today()
    assert estimate.status == "issued"
    assert estimate.number == f"GFE-{today.year}-0001"
    assert estimate.issue_date == today
    pdf = content.open_pdf(estimate)
    assert pdf.startswith(b"%PDF")
    assert estimate.pdf_digest == content.pdf_digest(estimate.id, pdf)
    assert estimate.pdf_digest != hashlib.sha256(pdf).hexdigest()  # keyed, not plain
    document = content.open_document(estimate)
    assert document.gfe_number == estimate.number
    assert document.client_legal_name == "Zoë Nguyễn-Ōtsuka"
    assert totals.total_of(estimate) == document.total_cents == 4550_00
    assert (estimate.period_start, estimate.period_end) == (document.period_start,
                                                           document.period_end)
    assert estimate.recurring is True
    [event] = audit("estimate.issued")
    assert event.target_id == str(estimate.id) and event.subject_id == practice.client.id


def test_numbers_run_on_within_a_year(practice):
    first = practice.issued()
    second = practice.issued(client=practice.other_client, therapist=practice.other_therapist)
    year = practice_today().year
    assert (first.number, second.number) == (f"GFE-{year}-0001", f"GFE-{year}-0002")


def test_a_draft_with_problems_is_not_issued_and_every_problem_is_listed(practice):
    estimate = drafting.create_draft(practice.therapist, practice.client)
    with pytest.raises(issuing.NotReady) as raised:
        issuing.issue(practice.therapist, estimate.id)
    assert len(raised.value.problems) >= 10
    db.session.refresh(estimate)
    assert estimate.status == "draft" and estimate.number is None
    assert audit("estimate.issued") == []


def test_the_client_is_told_by_email_without_any_detail(practice):
    practice.issued()
    [row] = mails("estimate_issued")
    assert row.user_id == practice.client.id
    body = mail_text(row)
    assert "/estimates/" in body
    for secret in ("Zoë", "Nguyễn", "90837", "F41.1", "$", "psychotherapy", "GFE-"):
        assert secret not in body
    assert "therapy" not in row.subject.lower()


# ---------------------------------------------------------------------- the freeze guard


@pytest.mark.parametrize(("attribute", "value"), [
    ("recurring", False),
    ("number", "GFE-1999-0001"),
    ("pdf_digest", "0" * 64),
    ("pdf_sealed", b"\x01not a pdf"),
    ("document_sealed", b"\x01tampered"),
    ("period_end", None),
    ("client_id", None),
    ("supersedes_id", None),
])
def test_the_orm_refuses_to_change_an_issued_estimate(practice, attribute, value):
    estimate = practice.issued()
    if attribute == "client_id":
        value = practice.other_client.id
    if attribute == "supersedes_id":
        value = practice.issued(client=practice.other_client,
                                therapist=practice.other_therapist).id
    setattr(estimate, attribute, value)
    with pytest.raises(FrozenEstimateError):
        db.session.flush()
    db.session.rollback()


def test_resealing_a_different_document_is_refused(practice):
    estimate = practice.issued()
    forged = content.open_document(estimate).to_dict() | {"client_legal_name": "Someone Else"}
    estimate.document_sealed = content.seal_json(estimate, forged)
    with pytest.raises(FrozenEstimateError):
        db.session.flush()
    db.session.rollback()


def test_an_issued_estimate_cannot_go_back_to_draft_or_be_deleted(practice):
    estimate = practice.issued()
    estimate.status = "draft"
    with pytest.raises(FrozenEstimateError):
        db.session.flush()
    db.session.rollback()
    db.session.delete(db.session.get(GoodFaithEstimate, estimate.id))
    with pytest.raises(FrozenEstimateError):
        db.session.flush()
    db.session.rollback()
    with pytest.raises(RuleError):
        drafting.discard_draft(practice.therapist, estimate)


def test_bulk_statements_cannot_change_content_or_delete(practice):
    estimate = practice.issued()
    with pytest.raises(FrozenEstimateError):
        db.session.execute(update(GoodFaithEstimate).where(GoodFaithEstimate.id == estimate.id)
                           .values(recurring=False))
    with pytest.raises(FrozenEstimateError):
        db.session.execute(delete(GoodFaithEstimate).where(GoodFaithEstimate.id == estimate.id))
    with pytest.raises(FrozenEstimateError):
        db.session.execute(update(GoodFaithEstimate.__table__).values(status="draft"))
    with pytest.raises(FrozenEstimateError):
        db.session.execute(delete(BilledAmount))
    db.session.rollback()


def test_delivery_columns_may_still_change(practice):
    estimate = practice.issued()
    estimate.acknowledged_at = estimate.issued_at
    estimate.billing_level = "warning"
    db.session.commit()
    assert db.session.get(GoodFaithEstimate, estimate.id).billing_level == "warning"


def test_key_rotation_reseals_issued_estimates_through_the_guard(practice):
    from portal.crypto.rotation import reencrypt

    estimate = practice.issued()
    before_blob, before_pdf = estimate.pdf_sealed, content.open_pdf(estimate)
    result = reencrypt(practice.client.id)
    assert result.unreadable == 0 and result.resealed >= 2
    db.session.expire_all()
    again = db.session.get(GoodFaithEstimate, estimate.id)
    assert again.pdf_sealed != before_blob
    assert content.open_pdf(again) == before_pdf
    assert content.open_document(again).client_legal_name == "Zoë Nguyễn-Ōtsuka"


def test_a_tampered_pdf_is_refused_not_served(practice):
    estimate = practice.issued()
    estimate_id = estimate.id
    db.session.rollback()  # let go of the session's transaction (SQLite takes a write lock)
    table = GoodFaithEstimate.__table__  # a raw write, as someone with database access might
    with db.engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == estimate_id).values(pdf_digest="f" * 64))
    db.session.expire_all()
    with pytest.raises(content.EstimateUnavailable):
        content.open_pdf(db.session.get(GoodFaithEstimate, estimate_id))


# ----------------------------------------------------------------- corrections, renewals


def test_a_correction_supersedes_and_keeps_the_history_linked_both_ways(practice):
    original = practice.issued()
    original_pdf = content.open_pdf(original)
    draft = follow_ups.start_correction(practice.therapist, original)
    assert follow_ups.start_correction(practice.therapist, original).id == draft.id  # one at once
    assert draft.supersedes_id == original.id and draft.status == "draft"
    assert db.session.get(GoodFaithEstimate, original.id).status == "issued"  # until issued
    changed = complete_draft(practice_today(), frequency="Every other week")
    drafting.save_draft(practice.therapist, draft, changed)
    corrected = issuing.issue(practice.therapist, draft.id)
    db.session.expire_all()
    original = db.session.get(GoodFaithEstimate, original.id)
    assert original.status == "superseded" and original.superseded_by_id == corrected.id
    assert corrected.supersedes_id == original.id and corrected.status == "issued"
    assert content.open_pdf(original) == original_pdf  # the old one is unchanged
    assert content.open_document(corrected).frequency == "Every other week"
    assert [e.number for e in clients.client_estimates(practice.client)] == [
        corrected.number, original.number]
    assert [status.display_status(e) for e in clients.client_estimates(practice.client)] == [
        "current", "superseded"]
    assert len(audit("estimate.superseded")) == 1


def test_a_superseded_estimate_cannot_be_corrected_again(practice):
    original = practice.issued()
    draft = follow_ups.start_correction(practice.therapist, original)
    issuing.issue(practice.therapist, draft.id)
    with pytest.raises(RuleError):
        follow_ups.start_correction(practice.therapist, db.session.get(GoodFaithEstimate,
                                                                     original.id))


def test_a_superseded_link_cannot_be_rewritten(practice):
    original = practice.issued()
    draft = follow_ups.start_correction(practice.therapist, original)
    issuing.issue(practice.therapist, draft.id)
    other = practice.issued()
    original = db.session.get(GoodFaithEstimate, original.id)
    original.superseded_by_id = other.id
    with pytest.raises(FrozenEstimateError):
        db.session.flush()
    db.session.rollback()


def test_a_renewal_moves_the_period_on(practice):
    original = practice.issued()
    renewal = follow_ups.start_renewal(practice.therapist, original)
    draft = content.open_draft(renewal)
    assert renewal.renews_id == original.id
    assert draft.period_start == original.period_end + timedelta(days=1)
    assert (draft.period_end - draft.period_start) == (original.period_end
                                                       - original.period_start)


def test_only_a_current_recurring_estimate_is_renewed(practice):
    recurring = practice.issued()
    one_off = practice.issued(sessions_min=1, sessions_max=1)
    superseded = practice.issued()
    issuing.issue(practice.therapist,
                  follow_ups.start_correction(practice.therapist, superseded).id)
    superseded = db.session.get(GoodFaithEstimate, superseded.id)
    assert superseded.status == "superseded" and superseded.recurring is True
    assert follow_ups.may_renew(recurring) is True
    for estimate in (one_off, superseded, practice.draft()):
        assert follow_ups.may_renew(estimate) is False
        with pytest.raises(RuleError):
            follow_ups.start_renewal(practice.therapist, estimate)
    assert db.session.scalars(select(GoodFaithEstimate).where(
        GoodFaithEstimate.renews_id.is_not(None))).all() == []


def test_expired_means_the_period_is_over(practice):
    estimate = practice.issued()
    assert status.display_status(estimate, estimate.period_end) == "current"
    assert status.display_status(estimate, estimate.period_end + timedelta(days=1)) == "expired"


# -------------------------------------------------------------------- delivery evidence


def test_the_first_view_is_recorded_and_audited_once(practice):
    estimate = practice.issued()
    assert delivery.record_view(practice.therapist, estimate) is False  # staff views are not
    assert delivery.record_view(practice.client, estimate) is True
    assert delivery.record_view(practice.client, estimate) is False
    db.session.expire_all()
    estimate = db.session.get(GoodFaithEstimate, estimate.id)
    assert estimate.first_viewed_at is not None
    [event] = audit("estimate.viewed")
    assert event.actor_id == practice.client.id and event.subject_id == practice.client.id
    assert event.target_type == TABLE and event.target_id == str(estimate.id)


def test_each_download_is_counted_and_audited(practice):
    estimate = practice.issued()
    for _ in range(3):
        delivery.record_download(practice.client, estimate)
    delivery.record_download(practice.therapist, estimate)
    db.session.expire_all()
    estimate = db.session.get(GoodFaithEstimate, estimate.id)
    assert estimate.download_count == 3 and estimate.last_downloaded_at is not None
    events = audit("estimate.downloaded")
    assert [e.actor_id for e in events] == [practice.client.id] * 3 + [practice.therapist.id]
    kinds = db.session.scalars(select(DeliveryEvent.kind)
                               .where(DeliveryEvent.estimate_id == estimate.id)).all()
    assert kinds == ["downloaded"] * 3


def test_acknowledging_is_optional_timestamped_and_once(practice):
    estimate = practice.issued()
    assert delivery.acknowledge(practice.client, estimate) is True
    assert delivery.acknowledge(practice.client, estimate) is False
    assert len(audit("estimate.acknowledged")) == 1
    with pytest.raises(RuleError):
        delivery.acknowledge(practice.therapist, estimate)


# ----------------------------------------------------------------------------- requests


def test_a_request_starts_the_clock_and_tells_the_therapists_without_detail(practice):
    from portal.accounts.models import Assignment

    db.session.add(Assignment(client_id=practice.client.id,
                              therapist_id=practice.other_therapist.id))
    db.session.commit()
    estimate, new = clients.request_estimate(practice.client)
    today = practice_today()
    assert new and estimate.status == "draft" and estimate.requested_on == today
    assert estimate.due_date == deadlines.add_business_days(today, 3)
    rows = mails("estimate_requested")
    assert {r.user_id for r in rows} == {practice.therapist.id, practice.other_therapist.id}
    for row in rows:
        body = mail_text(row)
        assert f"/estimates/{estimate.id}/edit" in body
        assert "Zoë" not in body and "Nguyễn" not in body
    again, new_again = clients.request_estimate(practice.client)
    assert again.id == estimate.id and not new_again
    assert len(mails("estimate_requested")) == 2
    [event] = audit("estimate.requested")
    assert event.subject_id == practice.client.id


def test_a_request_joins_a_draft_already_under_way(practice):
    draft = practice.draft()
    estimate, new = clients.request_estimate(practice.client)
    assert new and estimate.id == draft.id and estimate.requested_on is not None


# ------------------------------------------------------------------------ nothing at rest

MARKER_NAME = "Qxzvmarker Nguyễn"
MARKER_CODE = "T7Q.ZZ9K"
MARKER_TEXT = "Wqvxmarker counselling"


def _raw_database_bytes(app) -> bytes:
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("sqlite"):
        db.session.remove()
        db.engine.dispose()  # nothing held in memory; WAL stays as written
        path = Path(url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    chunks = []
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            for row in conn.execute(table.select()):
                chunks.append(repr(tuple(row)).encode())
    return b"\n".join(chunks)


def test_names_diagnoses_and_lines_are_not_stored_in_plaintext(app, practice):
    from dataclasses import replace

    from portal.estimates.drafts import DraftLine

    # 26 sessions, as the draft says it prices (there is no evaluation line here).
    lines = (replace(complete_draft().lines[1], quantity=26, diagnosis_codes=(MARKER_CODE,),
                     description=MARKER_TEXT), DraftLine(1, "90847", "Family", 2, 175_00,
                                                         (MARKER_CODE,)))
    estimate = practice.issued(client_legal_name=MARKER_NAME, lines=lines,
                               client_address="77 Qxzvstreet Road")
    draft = practice.draft(client_legal_name=MARKER_NAME + " draft")
    estimate_id, draft_id, number = estimate.id, draft.id, estimate.number
    raw = _raw_database_bytes(app)
    assert number.encode() in raw  # the plain columns are there: this reads the real data
    for marker in (MARKER_NAME, "Qxzvmarker", MARKER_CODE, "Wqvxmarker", "Qxzvstreet"):
        for encoding in ("utf-8", "utf-16-le"):
            assert marker.encode(encoding) not in raw, marker
    # ...and yet everything opens for the application.
    estimate = db.session.get(GoodFaithEstimate, estimate_id)
    document = content.open_document(estimate)
    assert document.client_legal_name == MARKER_NAME
    assert document.line_items[0].diagnosis_codes == (MARKER_CODE,)
    assert content.open_draft(db.session.get(GoodFaithEstimate, draft_id)).client_legal_name \
        == MARKER_NAME + " draft"


def test_sealed_blobs_only_open_in_their_own_row_and_column(practice):
    from portal.crypto import DecryptionError

    one, two = practice.issued(), practice.issued()
    with pytest.raises(DecryptionError):
        open_bytes(one.client_id, Context(TABLE, "pdf", two.id), one.pdf_sealed)
    with pytest.raises(DecryptionError):
        open_bytes(one.client_id, Context(TABLE, "document", one.id), one.pdf_sealed)
    assert json.loads(open_text(one.client_id, Context(TABLE, "document", one.id),
                                one.document_sealed))["gfe_number"] == one.number


def test_every_sealed_column_is_registered_for_rotation():
    from portal.crypto import sealed_fields

    labels = {f.label for f in sealed_fields()}
    assert {"good_faith_estimates.document", "good_faith_estimates.pdf"} <= labels


def test_a_number_taken_in_a_race_is_retried_with_the_next(practice, monkeypatch):
    first = practice.issued()
    draft = practice.draft()
    real = issuing._next_sequence
    calls = []

    def racing(year):
        calls.append(year)
        return first.sequence if len(calls) == 1 else real(year)  # someone else took it

    monkeypatch.setattr(issuing, "_next_sequence", racing)
    second = issuing.issue(practice.therapist, draft.id)
    assert len(calls) == 2
    assert second.sequence == first.sequence + 1 and second.status == "issued"
    assert len(audit("estimate.issued")) == 2


@pytest.mark.parametrize(("mark", "column", "kind"), [
    (delivery.record_view, "first_viewed_at", "viewed"),
    (delivery.acknowledge, "acknowledged_at", "acknowledged"),
])
def test_a_once_only_mark_leaves_one_delivery_event_at_its_timestamp(practice, mark, column,
                                                                     kind):
    estimate = practice.issued()
    assert mark(practice.client, estimate) is True
    assert mark(practice.client, estimate) is False
    db.session.expire_all()
    stored = db.session.get(GoodFaithEstimate, estimate.id)
    [event] = db.session.scalars(select(DeliveryEvent).where(
        DeliveryEvent.estimate_id == estimate.id, DeliveryEvent.kind == kind)).all()
    assert event.user_id == practice.client.id and event.at == getattr(stored, column)
    other = ({"viewed", "acknowledged"} - {kind}).pop()
    assert db.session.scalars(select(DeliveryEvent).where(
        DeliveryEvent.kind == other)).all() == []


def test_losing_a_once_only_mark_keeps_the_callers_own_work(practice):
    estimate = practice.issued()
    assert delivery.acknowledge(practice.client, estimate) is True
    estimate.billing_level = "warning"  # the caller's change, not yet committed
    assert delivery.acknowledge(practice.client, estimate) is False
    assert estimate.billing_level == "warning"
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(GoodFaithEstimate, estimate.id).billing_level == "warning"
    assert len(audit("estimate.acknowledged")) == 1


# ---------------------------------------------------------------------------------- billing


def test_the_service_voids_bills_only_on_an_issued_estimate(practice):
    draft = practice.draft()
    entry = BilledAmount(estimate_id=draft.id, provider_position=0,
                         **totals.sealed_bill(draft.client_id, 100, practice_today()),
                         recorded_by_id=practice.therapist.id)
    db.session.add(entry)
    db.session.commit()
    with pytest.raises(RuleError) as refused:
        billing.void_bill(practice.therapist, draft, entry.id)
    assert "issued" in refused.value.message
    db.session.commit()  # whatever the refusal left behind would be kept now
    db.session.expire_all()
    assert db.session.get(BilledAmount, entry.id).voided_at is None
    assert audit("estimate.bill.voided") == []


def test_a_refused_bill_names_the_field_it_is_about(practice):
    estimate = practice.issued()
    with pytest.raises(RuleError) as refused:
        billing.record_bill(practice.therapist, estimate, provider_position=2,
                            amount_cents=100, bill_date=practice_today())
    assert refused.value.field == "provider"
    with pytest.raises(RuleError) as refused:
        billing.record_bill(practice.therapist, estimate, provider_position=0,
                            amount_cents=-1, bill_date=practice_today())
    assert refused.value.field == "amount"
    assert db.session.scalars(select(BilledAmount)).all() == []
