"""The builder as a browser uses it: drafts saved incomplete, bad input inline, checked, issued."""

import re
import uuid

import pytest
from sqlalchemy import select

from portal.estimates import content, drafting, totals
from portal.estimates.drafts import Draft
from portal.estimates.models import GoodFaithEstimate
from portal.extensions import db
from portal.practice import today as practice_today
from tests.estimates.conftest import builder_payload, complete_draft, csrf, sign_in


@pytest.fixture
def staff(client, practice):
    """The therapist, signed in, with a fresh draft for their client."""
    sign_in(client, practice.therapist)
    token = csrf(client)
    response = client.post("/estimates/new", data={"csrf_token": token,
                                                   "client": str(practice.client.id)})
    assert response.status_code == 302
    draft_id = uuid.UUID(re.search(r"/estimates/([0-9a-f-]{36})/edit",
                                   response.headers["Location"]).group(1))
    return client, token, draft_id


def stored(draft_id) -> GoodFaithEstimate:
    db.session.expire_all()
    return db.session.get(GoodFaithEstimate, draft_id)


def test_a_new_draft_starts_with_the_clients_name(staff, practice):
    client, _, draft_id = staff
    page = client.get(f"/estimates/{draft_id}/edit").get_data(as_text=True)
    assert "Zoë Nguyễn-Ōtsuka" in page
    assert stored(draft_id).status == "draft"


def test_an_incomplete_draft_is_saved(staff):
    client, token, draft_id = staff
    payload = builder_payload(Draft(client_legal_name="Zoë Nguyễn-Ōtsuka",
                                    primary_service="Individual psychotherapy"), token=token)
    response = client.post(f"/estimates/{draft_id}/edit", data=payload)
    assert response.status_code == 302
    draft = content.open_draft(stored(draft_id))
    assert draft.primary_service == "Individual psychotherapy"
    assert draft.period_start is None and draft.lines == ()
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Draft saved" in page


def test_a_complete_draft_round_trips_through_the_form(staff):
    client, token, draft_id = staff
    draft = complete_draft(practice_today())
    assert client.post(f"/estimates/{draft_id}/edit",
                       data=builder_payload(draft, token=token)).status_code == 302
    saved = content.open_draft(stored(draft_id))
    assert saved.providers == draft.providers
    assert saved.lines == draft.lines
    assert totals.total_of(stored(draft_id)) == 4550_00
    # ...and the form it shows posts back the same draft
    page = client.get(f"/estimates/{draft_id}/edit").get_data(as_text=True)
    assert 'value="4,000.00"' not in page and 'value="160.00"' in page


@pytest.mark.parametrize(("field", "value", "message"), [
    ("lines-0-unit_charge", "-160", "cannot be negative"),
    ("lines-0-unit_charge", "12,34.5", "Enter an amount in dollars"),
    ("lines-0-unit_charge", "160.005", "two digits"),
    ("lines-0-unit_charge", "$100,000.01", "larger than"),
    ("lines-0-unit_charge", "1e9", "Enter an amount in dollars"),
    ("lines-0-quantity", "0", "at least 1"),
    ("lines-0-quantity", "2.5", "whole number"),
    ("lines-0-quantity", "-3", "negative"),
    ("sessions_max", "99999", "at most 999"),
    ("sessions_min", "ten", "whole number"),
    ("client_dob", "2026-02-30", "does not exist"),
    ("client_dob", "tomorrow", "like 2026-03-01"),
    ("client_dob", "2999-01-01", "out of range"),
    ("period_start", "0001-01-01", "out of range"),
    ("lines-0-provider", "7", "Choose a provider from the list"),
    ("lines-0-provider", "<script>", "Choose a provider from the list"),
    ("providers-0-state", "ZZ", "Not a valid choice"),
    ("client_legal_name", "x" * 201, "200"),
    ("service_date", "2026-01-01", "both the scheduling date"),
])
def test_malformed_values_are_refused_inline_and_nothing_is_saved(staff, field, value, message):
    client, token, draft_id = staff
    before = stored(draft_id).document_sealed
    payload = builder_payload(complete_draft(practice_today()), token=token)
    payload[field] = value
    response = client.post(f"/estimates/{draft_id}/edit", data=payload)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page
    assert 'aria-invalid="true"' in page
    assert "the draft has not been saved yet" in page
    assert stored(draft_id).document_sealed == before


def test_the_check_lists_every_problem_at_once(staff):
    client, token, draft_id = staff
    draft = complete_draft(practice_today(), client_legal_name="سارة",
                           frequency="")
    payload = builder_payload(draft, token=token, action="check", **{
        "providers-0-npi": "1234567890", "providers-1-tin": "123-45-6789",
        "lines-2-cpt_code": "9084", "lines-1-diagnosis": "F41.1, banana"})
    response = client.post(f"/estimates/{draft_id}/edit", data=payload)
    assert response.headers["Location"].endswith(f"/estimates/{draft_id}/review")
    page = client.get(f"/estimates/{draft_id}/review").get_data(as_text=True)
    for expected in ("fails its check digit", "Social Security number",
                     "should be 5 characters", "not a valid ICD-10 code",
                     "how often sessions are expected", "PDF cannot print"):
        assert expected in page, expected
    summary = page.split('id="problems"')[1].split("</div>")[0]
    assert "123-45-6789" not in summary  # the message never repeats an SSN
    assert "Issue estimate" not in page
    assert "6 things to fix" in page
    inline = client.get(f"/estimates/{draft_id}/edit?check=1").get_data(as_text=True)
    assert 'id="providers-0-npi-error"' in inline
    assert 'id="lines-2-cpt_code-error"' in inline
    refused = client.post(f"/estimates/{draft_id}/issue", data={"csrf_token": token})
    assert refused.headers["Location"].endswith(f"/estimates/{draft_id}/review")
    assert stored(draft_id).status == "draft"


def test_more_rows_come_by_a_round_trip(staff):
    client, token, draft_id = staff
    payload = builder_payload(complete_draft(practice_today()), token=token,
                              action="add_lines")
    response = client.post(f"/estimates/{draft_id}/edit", data=payload)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert len(set(re.findall(r'id="lines-(\d+)-cpt_code"', page))) == 3 + 3
    payload["action"] = "add_provider"
    response = client.post(f"/estimates/{draft_id}/edit", data=payload)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert len(set(re.findall(r'id="providers-(\d+)-npi"', page))) == 3


def test_row_counts_in_the_address_are_bounded(staff):
    client, _, draft_id = staff
    page = client.get(f"/estimates/{draft_id}/edit?lines=999999&providers=-4")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert len(set(re.findall(r'id="lines-(\d+)-cpt_code"', body))) == 4
    assert len(set(re.findall(r'id="providers-(\d+)-npi"', body))) == 2


def test_a_checked_draft_is_issued_from_the_review_page(staff, practice):
    client, token, draft_id = staff
    today = practice_today()
    payload = builder_payload(complete_draft(today), token=token, action="check",
                              requested_on=today)
    client.post(f"/estimates/{draft_id}/edit", data=payload)
    review = client.get(f"/estimates/{draft_id}/review").get_data(as_text=True)
    assert "Ready to issue" in review and "Issue estimate" in review
    assert "(given when issued)" in review
    response = client.post(f"/estimates/{draft_id}/issue", data={"csrf_token": token})
    assert response.headers["Location"].endswith(f"/estimates/{draft_id}")
    issued = stored(draft_id)
    assert issued.status == "issued" and issued.due_date is not None
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert issued.number in page and "issued in time" in page
    # The draft's pages are gone for good: an issued estimate has no builder.
    assert client.get(f"/estimates/{draft_id}/edit").status_code == 404
    assert client.get(f"/estimates/{draft_id}/review").status_code == 404


def test_a_draft_can_be_deleted_but_only_a_draft(staff, practice):
    client, token, draft_id = staff
    assert client.post(f"/estimates/{draft_id}/discard",
                       data={"csrf_token": token}).status_code == 302
    assert stored(draft_id) is None
    issued = practice.issued()
    assert client.post(f"/estimates/{issued.id}/discard",
                       data={"csrf_token": token}).status_code == 404
    assert stored(issued.id) is not None


def test_a_button_without_its_token_changes_nothing(staff):
    client, _, draft_id = staff
    assert client.post(f"/estimates/{draft_id}/discard").status_code == 400
    assert stored(draft_id) is not None


def test_new_estimate_offers_only_the_therapists_clients(client, practice):
    sign_in(client, practice.therapist)
    token = csrf(client)
    page = client.get("/estimates/new").get_data(as_text=True)
    assert str(practice.client.id) in page and str(practice.other_client.id) not in page
    response = client.post("/estimates/new", data={"csrf_token": token,
                                                   "client": str(practice.other_client.id)})
    assert response.status_code == 422 and "Not a valid choice" in response.get_data(
        as_text=True)
    assert db.session.scalar(select(GoodFaithEstimate).where(
        GoodFaithEstimate.client_id == practice.other_client.id)) is None


def test_a_correction_opens_a_prefilled_draft(client, practice):
    issued = practice.issued()
    sign_in(client, practice.therapist)
    token = csrf(client)
    response = client.post(f"/estimates/{issued.id}/correct", data={"csrf_token": token})
    draft_id = uuid.UUID(re.search(r"/estimates/([0-9a-f-]{36})/edit",
                                   response.headers["Location"]).group(1))
    page = client.get(f"/estimates/{draft_id}/edit").get_data(as_text=True)
    assert f"This draft corrects estimate {issued.number}" in page
    assert 'value="1234567893"' in page


def test_browser_line_endings_and_control_characters_are_cleaned(staff):
    client, token, draft_id = staff
    payload = builder_payload(complete_draft(practice_today()), token=token,
                              action="check")
    payload["client_address"] = "12 Walnut Street\r\nTrappe, PA 19426\r\n"
    payload["client_legal_name"] = "Zoë\tNguyễn-Ōtsuka\x07"
    payload["separately_scheduled"] = "None\ranticipated"
    client.post(f"/estimates/{draft_id}/edit", data=payload)
    draft = content.open_draft(stored(draft_id))
    assert draft.client_address == "12 Walnut Street\nTrappe, PA 19426\n"
    assert draft.client_legal_name == "Zoë Nguyễn-Ōtsuka"
    assert draft.separately_scheduled == "None\nanticipated"
    assert drafting.review(stored(draft_id)).ready


@pytest.mark.parametrize(("fields", "message"), [
    ({"scheduled_on": "+1", "service_date": "+20"}, "scheduling date cannot be in the future"),
    ({"scheduled_on": "-400", "service_date": "+20"}, "more than a year ago"),
    ({"scheduled_on": "0", "service_date": "+2000"}, "that far in the future"),
    ({"scheduled_on": "0", "service_date": "-1"}, "before the day it was scheduled"),
    ({"requested_on": "+3"}, "request date cannot be in the future"),
])
def test_deadline_dates_stay_near_today(staff, fields, message):
    from datetime import timedelta

    client, token, draft_id = staff
    today = practice_today()
    payload = builder_payload(complete_draft(today), token=token)
    payload.update({name: (today + timedelta(days=int(offset))).isoformat()
                    for name, offset in fields.items()})
    response = client.post(f"/estimates/{draft_id}/edit", data=payload)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_an_implausible_total_is_a_problem_not_an_overflow(staff):
    from dataclasses import replace

    client, token, draft_id = staff
    draft = complete_draft(practice_today())
    big = tuple(replace(line, quantity=999, unit_cents=99_999_00) for line in draft.lines)
    payload = builder_payload(replace(draft, lines=big), token=token, action="check")
    assert client.post(f"/estimates/{draft_id}/edit", data=payload).status_code == 302
    assert totals.total_of(stored(draft_id)) == 3 * 999 * 99_999_00  # beyond 32-bit integers
    page = client.get(f"/estimates/{draft_id}/review").get_data(as_text=True)
    assert "please check the quantities and charges" in page
