"""Deadlines that cannot be erased: a recorded request or scheduling date (45 CFR
149.610(b)(1)(ii)) is read-only, a correction has a reason and keeps the history, and the
original deadline still shows as met or missed; a correction of an issued estimate (45 CFR
149.610(b)(1)(vii)) is due one business day before the next scheduled service."""

import re
from datetime import UTC, date, datetime

import pytest
import time_machine
from sqlalchemy import delete, select

from portal.audit import AuditEvent, catalogue
from portal.errors import RuleError
from portal.estimates import clients, corrections, drafting, follow_ups, issuing
from portal.estimates import panel as estimates_panel
from portal.estimates.drafts import Draft
from portal.estimates.models import (
    CORRECTION_REASONS,
    DeadlineCorrection,
    FrozenEstimateError,
    GoodFaithEstimate,
)
from portal.extensions import db
from tests.estimates.conftest import builder_payload, complete_draft, csrf, sign_in

WEDNESDAY = date(2026, 7, 1)  # Friday 3 July 2026 is the observed Independence Day holiday


def at(day: date, hour: int = 15):
    """An afternoon in the practice's time zone (UTC 15:00 is 11:00 in New York in July)."""
    return time_machine.travel(datetime(day.year, day.month, day.day, hour, tzinfo=UTC),
                               tick=False)


def stored(estimate_id) -> GoodFaithEstimate:
    db.session.expire_all()
    return db.session.get(GoodFaithEstimate, estimate_id)


def rows(estimate_id) -> list[DeadlineCorrection]:
    return list(db.session.scalars(
        select(DeadlineCorrection).where(DeadlineCorrection.estimate_id == estimate_id)
        .order_by(DeadlineCorrection.corrected_at, DeadlineCorrection.field)))


def actions(prefix: str) -> list[str]:
    return [a for a in db.session.scalars(select(AuditEvent.action)) if a.startswith(prefix)]


@pytest.fixture
def requested(practice):
    """Zoë asks for an estimate on Wednesday 1 July 2026: due Tuesday 7 July."""
    with at(WEDNESDAY):
        draft, _ = clients.request_estimate(practice.client)
    assert draft.due_date == date(2026, 7, 7)
    return draft


@pytest.fixture
def scheduled(practice):
    """A draft scheduled on Wednesday 1 July for Wednesday 8 July: due Thursday 2 July."""
    with at(WEDNESDAY):
        estimate = drafting.create_draft(practice.therapist, practice.client)
        drafting.save_draft(practice.therapist, estimate, Draft(client_legal_name="A"),
                            scheduled_on=WEDNESDAY, service_date=date(2026, 7, 8))
    assert estimate.due_date == date(2026, 7, 2)
    return estimate


# ------------------------------------------------------------------- read-only in the service


def test_saving_cannot_clear_a_recorded_request_date_45_cfr_149_610_b_1_ii(practice, requested):
    with at(date(2026, 7, 2)):
        drafting.save_draft(practice.therapist, requested, Draft(client_legal_name="A"),
                            requested_on=None)
    kept = stored(requested.id)
    assert kept.requested_on == WEDNESDAY and kept.due_date == date(2026, 7, 7)
    assert drafting.locked_dates(kept) == {"requested_on"}


def test_saving_cannot_move_a_scheduling_that_started_a_deadline_45_cfr_149_610_b_1_ii(
        practice, scheduled):
    with at(date(2026, 7, 2)):
        drafting.save_draft(practice.therapist, scheduled, Draft(client_legal_name="A"),
                            scheduled_on=date(2026, 7, 2), service_date=date(2026, 7, 30))
    kept = stored(scheduled.id)
    assert (kept.scheduled_on, kept.service_date, kept.due_date) == (
        WEDNESDAY, date(2026, 7, 8), date(2026, 7, 2))


def test_a_scheduling_too_close_to_need_an_estimate_stays_editable(practice):
    """Fewer than 3 business days ahead starts no deadline, so nothing is locked."""
    with at(WEDNESDAY):
        estimate = drafting.create_draft(practice.therapist, practice.client)
        drafting.save_draft(practice.therapist, estimate, Draft(client_legal_name="A"),
                            scheduled_on=WEDNESDAY, service_date=date(2026, 7, 2))
        assert estimate.due_date is None and drafting.locked_dates(estimate) == frozenset()
        drafting.save_draft(practice.therapist, estimate, Draft(client_legal_name="A"),
                            scheduled_on=WEDNESDAY, service_date=date(2026, 7, 20))
    assert stored(estimate.id).service_date == date(2026, 7, 20)


# ------------------------------------------------------------------------- the builder (web)


@pytest.fixture
def colleen(app, practice):
    """Colleen signed in on Thursday 2 July 2026 (the tests run on that day unless they say)."""
    with at(date(2026, 7, 2)):
        client = sign_in(app.test_client(), practice.therapist)
        yield client, csrf(client)


def test_the_builder_shows_a_recorded_date_read_only_with_a_correct_action(colleen, requested):
    client, _ = colleen
    with at(date(2026, 7, 2)):
        page = client.get(f"/estimates/{requested.id}/edit").get_data(as_text=True)
    assert 'name="requested_on"' not in page
    assert "Jul 1, 2026" in page and "Correct this date" in page
    assert f"/estimates/{requested.id}/correct-date?date=requested_on" in page
    assert 'name="scheduled_on"' in page  # not recorded yet: still typed
    assert "Delete this draft" not in page


def test_posting_the_builder_cannot_clear_or_change_recorded_dates_tamper(colleen, practice,
                                                                          requested):
    """A hand-made POST with the read-only dates cleared or moved changes none of them
    (45 CFR 149.610(b)(1)(ii)): the deadline and the client's notice stay."""
    client, token = colleen
    with at(date(2026, 7, 2)):
        for value in (None, date(2026, 7, 2)):
            response = client.post(f"/estimates/{requested.id}/edit", data=builder_payload(
                complete_draft(date(2026, 7, 2)), token=token, requested_on=value))
            assert response.status_code == 302
            kept = stored(requested.id)
            assert kept.requested_on == WEDNESDAY and kept.due_date == date(2026, 7, 7)
        page = sign_in(client, practice.client).get("/estimates/").get_data(as_text=True)
    assert "You asked for an estimate on July 1, 2026" in page
    assert rows(requested.id) == []


def test_posting_the_builder_cannot_move_a_recorded_scheduling_tamper(colleen, scheduled):
    client, token = colleen
    with at(date(2026, 7, 2)):
        response = client.post(f"/estimates/{scheduled.id}/edit", data=builder_payload(
            complete_draft(WEDNESDAY), token=token, scheduled_on=WEDNESDAY,
            service_date=date(2026, 9, 1)))
    assert response.status_code == 302
    assert stored(scheduled.id).service_date == date(2026, 7, 8)


# ---------------------------------------------------------------------------- corrections


def test_a_correction_keeps_the_history_and_recomputes_the_due_date(practice, requested):
    """45 CFR 149.610(b)(1)(ii): the client meant Thursday 2 July, so 3 business days later is
    Wednesday 8 July; the row keeps the old date and due date, the note is sealed, the audit
    carries the reason as a fixed word."""
    with at(date(2026, 7, 2)):
        corrections.correct_date(practice.therapist, requested, field="requested_on",
                                 new_value=date(2026, 7, 2), reason="client_corrected",
                                 note="Zoë rang: she asked on Thursday")
    kept = stored(requested.id)
    assert kept.requested_on == date(2026, 7, 2) and kept.due_date == date(2026, 7, 8)
    [row] = rows(requested.id)
    assert (row.field, row.old_value, row.new_value) == ("requested_on", WEDNESDAY,
                                                         date(2026, 7, 2))
    assert (row.old_due_date, row.new_due_date, row.reason) == (
        date(2026, 7, 7), date(2026, 7, 8), "client_corrected")
    assert row.corrected_by_id == practice.therapist.id
    assert b"Thursday" not in bytes(row.note_sealed)
    assert actions("estimate.deadline_corrected") == [
        "estimate.deadline_corrected.client_corrected"]
    event = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "estimate.deadline_corrected.client_corrected"))
    assert event.subject_id == practice.client.id and event.target_id == str(requested.id)
    with at(date(2026, 7, 2)):
        history = corrections.history(kept)
    assert history.original_due == date(2026, 7, 7) and history.kept == "open"
    assert history.corrections[0].note == "Zoë rang: she asked on Thursday"


def test_a_correction_row_is_never_changed_or_deleted(practice, requested):
    with at(date(2026, 7, 2)):
        [row] = corrections.correct_date(practice.therapist, requested, field="requested_on",
                                         new_value=date(2026, 7, 2), reason="typed_wrong_date")
    row.new_value = date(2026, 7, 1)
    with pytest.raises(FrozenEstimateError):
        db.session.flush()
    db.session.rollback()
    db.session.delete(db.session.get(DeadlineCorrection, row.id))
    with pytest.raises(FrozenEstimateError):
        db.session.flush()
    db.session.rollback()
    with pytest.raises(FrozenEstimateError, match="never deleted"):
        db.session.execute(delete(DeadlineCorrection))
    db.session.rollback()


def test_withdrawing_a_request_clears_it_and_the_client_reads_so(app, practice, requested):
    with at(date(2026, 7, 2)):
        corrections.correct_date(practice.therapist, requested, field="requested_on",
                                 new_value=None, reason="withdrawn")
        kept = stored(requested.id)
        assert kept.requested_on is None and kept.due_date is None
        assert corrections.history(kept).kept == "withdrawn"
        page = sign_in(app.test_client(), practice.client).get("/estimates/")
    body = page.get_data(as_text=True)
    assert "You asked for an estimate on" not in body
    assert "Your request for an estimate of July 1, 2026 was marked as withdrawn" in body
    assert "Ask for an estimate</button>" in body


def test_withdrawing_a_scheduling_clears_both_of_its_dates(practice, scheduled):
    with at(WEDNESDAY):
        made = corrections.correct_date(practice.therapist, scheduled, field="service_date",
                                        new_value=None, reason="withdrawn")
    assert sorted(r.field for r in made) == ["scheduled_on", "service_date"]
    kept = stored(scheduled.id)
    assert (kept.scheduled_on, kept.service_date, kept.due_date) == (None, None, None)


@pytest.mark.parametrize(("field", "value", "reason", "message"), [
    ("requested_on", None, "typed_wrong_date", "Enter the corrected date"),
    ("requested_on", date(2026, 7, 2), "withdrawn", "A withdrawn date is cleared"),
    ("requested_on", WEDNESDAY, "typed_wrong_date", "already recorded"),
    ("requested_on", date(2026, 7, 9), "typed_wrong_date", "cannot be in the future"),
    ("requested_on", date(2026, 7, 2), "because", "Choose why"),
    ("scheduled_on", WEDNESDAY, "rescheduled", "nothing to correct"),
])
def test_a_correction_the_rules_refuse_changes_nothing(practice, requested, field, value,
                                                        reason, message):
    with at(date(2026, 7, 2)), pytest.raises(RuleError, match=message):
        corrections.correct_date(practice.therapist, requested, field=field, new_value=value,
                                 reason=reason)
    db.session.rollback()
    assert rows(requested.id) == [] and stored(requested.id).requested_on == WEDNESDAY


def test_the_correction_form_answers_422_inline_and_404_and_400(app, colleen, practice,
                                                                 requested):
    client, token = colleen
    url = f"/estimates/{requested.id}/correct-date?date=requested_on"
    with at(date(2026, 7, 2)):
        page = client.get(url)
        assert page.status_code == 200
        body = page.get_data(as_text=True)
        assert all(f'value="{key}"' in body for key in CORRECTION_REASONS)
        missing = client.post(url, data={"csrf_token": token, "new_date": "",
                                         "reason": "typed_wrong_date"})
        assert missing.status_code == 422
        assert "Enter the corrected date" in missing.get_data(as_text=True)
        bad = client.post(url, data={"csrf_token": token, "new_date": "2026-02-31",
                                     "reason": "typed_wrong_date"})
        assert bad.status_code == 422 and "That date does not exist" in bad.get_data(
            as_text=True)
        assert client.post(url, data={"new_date": "2026-07-02",
                                      "reason": "typed_wrong_date"}).status_code == 400
        assert client.get(f"/estimates/{requested.id}/correct-date?date=scheduled_on"
                          ).status_code == 404
        assert client.get(f"/estimates/{requested.id}/correct-date?date=nonsense"
                          ).status_code == 404
        other = sign_in(app.test_client(), practice.other_therapist)
        assert other.get(url).status_code == 404
        done = client.post(url, data={"csrf_token": token, "new_date": "2026-07-02",
                                      "reason": "typed_wrong_date", "note": "typo"})
        assert done.status_code == 302 and done.headers["Location"].endswith(
            f"/estimates/{requested.id}/edit#deadline")
        builder = client.get(f"/estimates/{requested.id}/edit").get_data(as_text=True)
    assert "Deadline history" in builder and "Original deadline: <strong>Jul 7, 2026" in builder
    assert "The date was entered wrongly" in builder and "typo" in builder
    assert stored(requested.id).due_date == date(2026, 7, 8)


def test_a_draft_with_a_recorded_deadline_is_not_deleted(colleen, requested):
    client, token = colleen
    response = client.post(f"/estimates/{requested.id}/discard", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("#deadline")
    assert stored(requested.id) is not None
    with pytest.raises(RuleError, match="records a deadline"):
        drafting.discard_draft(None, stored(requested.id))


@pytest.mark.parametrize(("issued_on", "word"), [(date(2026, 7, 7), "(met)"),
                                                 (date(2026, 7, 8), "(missed)")])
def test_the_staff_page_shows_the_original_deadline_met_or_missed(app, practice, requested,
                                                                   fast_pdf, issued_on, word):
    """The request of 1 July was due 7 July (45 CFR 149.610(b)(1)(ii)); moving the request to
    2 July makes it due 8 July, but the original deadline is what was kept or missed."""
    with at(date(2026, 7, 2)):
        corrections.correct_date(practice.therapist, requested, field="requested_on",
                                 new_value=date(2026, 7, 2), reason="client_corrected")
    with at(issued_on):
        drafting.save_draft(practice.therapist, requested, complete_draft(date(2026, 7, 6)))
        issuing.issue(practice.therapist, requested.id)
        page = sign_in(app.test_client(), practice.therapist).get(f"/estimates/{requested.id}")
    body = page.get_data(as_text=True)
    assert re.search(r"Original deadline</dt><dd>Jul 7, 2026 (<span[^>]*>)?" + re.escape(word),
                     body)
    assert "The client gave a different date" in body
    assert "(issued in time)" in body  # against the corrected deadline of 8 July


def test_every_correction_reason_is_declared_for_the_access_log(app):
    declared = catalogue.declared()
    for reason in CORRECTION_REASONS:
        assert declared[f"estimate.deadline_corrected.{reason}"].words
    assert declared["estimate.next_service.recorded"].words
    assert set(corrections.REASON_LABELS) == set(CORRECTION_REASONS)


# ------------------------------------------- correcting an issued estimate: (b)(1)(vii)


def test_a_correction_is_due_a_business_day_before_the_next_service_45_cfr_149_610_b_1_vii(
        practice, fast_pdf):
    with at(date(2026, 6, 29)):
        issued = practice.issued()
        # Monday 6 July: the business day before is Thursday 2 July (3 July is a holiday).
        correction = follow_ups.start_correction(practice.therapist, issued,
                                                 next_service=date(2026, 7, 6))
    assert correction.supersedes_id == issued.id
    assert correction.service_date == date(2026, 7, 6)
    assert correction.due_date == date(2026, 7, 2)
    assert drafting.locked_dates(correction) == {"scheduled_on", "service_date"}
    assert corrections.correctable(correction) == {"service_date"}


def test_a_correction_without_a_booked_session_says_when_it_is_due(app, practice, fast_pdf):
    """45 CFR 149.610(b)(1)(vii): with no next service booked the draft has no date, the
    builder says it is due before the next session is booked and asks for the date."""
    with at(date(2026, 6, 29)):
        issued = practice.issued()
        correction = follow_ups.start_correction(practice.therapist, issued)
        assert correction.due_date is None
        client = sign_in(app.test_client(), practice.therapist)
        token = csrf(client)
        builder = client.get(f"/estimates/{correction.id}/edit").get_data(as_text=True)
        assert "due before the next session is booked" in builder
        assert 'name="service_date"' not in builder
        url = f"/estimates/{correction.id}/next-service"
        assert client.post(url, data={"csrf_token": token, "next_service": "2026-06-01"}
                           ).status_code == 422
        assert client.post(url, data={"csrf_token": token, "next_service": ""}
                           ).status_code == 422
        assert client.post(url, data={"csrf_token": token, "next_service": "2026-07-06"}
                           ).status_code == 302
        assert stored(correction.id).due_date == date(2026, 7, 2)
        assert client.get(url).status_code == 404  # recorded: a change is a correction now
        # The builder cannot move it either; a correction can.
        client.post(f"/estimates/{correction.id}/edit", data=builder_payload(
            complete_draft(date(2026, 6, 29)), token=token, scheduled_on=date(2026, 6, 29),
            service_date=date(2026, 8, 3)))
        assert stored(correction.id).service_date == date(2026, 7, 6)
        corrections.correct_date(practice.therapist, stored(correction.id),
                                 field="service_date", new_value=date(2026, 7, 13),
                                 reason="rescheduled")
    assert stored(correction.id).due_date == date(2026, 7, 10)
    assert actions("estimate.next_service.recorded") == ["estimate.next_service.recorded"]


def test_starting_a_correction_from_the_staff_page_takes_the_next_session(app, practice,
                                                                          fast_pdf):
    with at(date(2026, 6, 29)):
        issued = practice.issued()
        client = sign_in(app.test_client(), practice.therapist)
        token = csrf(client)
        page = client.get(f"/estimates/{issued.id}").get_data(as_text=True)
        assert 'name="next_service"' not in page  # its service date is not ahead
        bad = client.post(f"/estimates/{issued.id}/correct",
                          data={"csrf_token": token, "next_service": "2026-13-01"})
        assert bad.status_code == 302 and bad.headers["Location"].endswith(
            f"/estimates/{issued.id}")
        assert follow_ups.open_follow_up(issued, kind="correction") is None
        response = client.post(f"/estimates/{issued.id}/correct",
                               data={"csrf_token": token, "next_service": "2026-07-06"})
    draft = follow_ups.open_follow_up(issued, kind="correction")
    assert response.headers["Location"].endswith(f"/estimates/{draft.id}/edit")
    assert draft.due_date == date(2026, 7, 2)


# -------------------------------------------------------------------------- the dashboard


def panel(user):
    return estimates_panel.dashboard_panel(user)["estimates_panel"]


def test_a_request_shows_on_the_dashboard_the_day_it_arrives_45_cfr_149_610_b_1_ii(
        app, practice, requested):
    from flask import render_template

    with at(WEDNESDAY):
        view = panel(practice.therapist)
        assert [e.id for e in view["requested"]] == [requested.id]
        assert view["due_today"] == [] and view["overdue"] == []
        with app.test_request_context("/"):
            html = render_template("estimates/_dashboard_panel.html",
                                   estimates_panel=view)
    assert "Requested on Jul 1, 2026, due Jul 7, 2026" in html
    assert "Nothing is due" not in html
    with at(date(2026, 7, 7)):
        view = panel(practice.therapist)
        assert view["requested"] == [] and [e.id for e in view["due_today"]] == [requested.id]
    assert panel(practice.other_therapist)["requested"] == []


def test_a_correction_shows_on_the_dashboard_with_its_due_date_45_cfr_149_610_b_1_vii(
        app, practice, fast_pdf):
    from flask import render_template

    with at(date(2026, 6, 29)):
        issued = practice.issued()
        unbooked = follow_ups.start_correction(practice.therapist, issued)
        view = panel(practice.therapist)
        assert [e.id for e in view["corrections"]] == [unbooked.id]
        with app.test_request_context("/"):
            html = render_template("estimates/_dashboard_panel.html", estimates_panel=view)
        assert f"Correction of {issued.number}, due before the next session is booked" in html
        corrections.record_next_service(practice.therapist, unbooked, date(2026, 7, 6))
    with at(date(2026, 7, 2)):
        view = panel(practice.therapist)
        assert [e.id for e in view["due_today"]] == [unbooked.id]
        with app.test_request_context("/"):
            html = render_template("estimates/_dashboard_panel.html", estimates_panel=view)
    assert f"due today · correction of {issued.number}" in html


def test_a_correction_takes_the_issued_estimates_service_date_when_still_ahead(practice,
                                                                               fast_pdf):
    """45 CFR 149.610(b)(1)(vii): the issued estimate's scheduled service, still ahead, is the
    next scheduled service; the staff page's button carries it."""
    from portal.estimates import content

    with at(date(2026, 6, 29)):
        estimate = drafting.create_draft(practice.therapist, practice.client)
        drafting.save_draft(practice.therapist, estimate, complete_draft(date(2026, 6, 29)),
                            scheduled_on=date(2026, 6, 29), service_date=date(2026, 7, 20))
        issued = issuing.issue(practice.therapist, estimate.id)
        assert content.open_document(issued) is not None
        correction = follow_ups.start_correction(practice.therapist, issued)
    assert correction.service_date == date(2026, 7, 20)
    assert correction.due_date == date(2026, 7, 17)
