"""Billed versus estimate on the web: the $400 rule per provider, the warning for staff only."""

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from portal.errors import RuleError
from portal.estimates import billing as bills
from portal.estimates.models import BilledAmount, GoodFaithEstimate
from portal.extensions import db
from portal.practice import start_of
from portal.practice import today as practice_today
from tests.estimates.conftest import csrf, sign_in

COLLEEN_ESTIMATE = 4200_00  # provider 0 of the standard estimate
KRISTEN_ESTIMATE = 350_00  # provider 1
DISPUTE_NOTICE = "You can ask for a review of a bill"


@pytest.fixture
def billing(app, practice):
    """An estimate issued 30 days ago for a period that began then (so bills of the last 30
    days are for what it covers), a therapist client and a client client, both signed in."""
    issued_on = practice_today() - timedelta(days=30)
    with time_machine.travel(start_of(issued_on) + timedelta(hours=12), tick=False):
        estimate = practice.issued(period_start=issued_on)
    staff = sign_in(app.test_client(), practice.therapist)
    person = sign_in(app.test_client(), practice.client)
    return estimate, staff, csrf(staff), person


def bill(staff, token, estimate, provider: int, amount: str, day=None):
    day = day or practice_today()
    return staff.post(f"/estimates/{estimate.id}/bills", data={
        "csrf_token": token, "provider": str(provider), "amount": amount,
        "bill_date": day.isoformat()})


def level(estimate) -> str:
    db.session.expire_all()
    return db.session.get(GoodFaithEstimate, estimate.id).billing_level


@pytest.mark.parametrize(("amount", "expected", "client_sees"), [
    ("4,599.99", "warning", False),     # $399.99 over
    ("$4,600.00", "dispute_eligible", True),   # $400.00 over
    ("4,499.99", "ok", False),          # $299.99 over
    ("4500", "warning", False),         # $300.00 over
])
def test_the_400_dollar_rule_at_the_edge(billing, amount, expected, client_sees):
    estimate, staff, token, person = billing
    assert bill(staff, token, estimate, 0, amount).status_code == 302
    assert level(estimate) == expected
    client_page = person.get(f"/estimates/{estimate.id}").get_data(as_text=True)
    assert (DISPUTE_NOTICE in client_page) is client_sees
    assert "close to" not in client_page.lower()  # the warning is never shown to the client
    assert "warning" not in client_page.lower().replace("notice--warning", "")
    staff_page = staff.get(f"/estimates/{estimate.id}").get_data(as_text=True)
    if expected == "warning":
        assert "Close to the $400 level" in staff_page
    if expected == "dispute_eligible":
        assert "client may dispute until" in staff_page


def test_the_notice_gives_the_120_day_deadline_from_the_bill(billing):
    estimate, staff, token, person = billing
    bill_day = practice_today() - timedelta(days=10)
    bill(staff, token, estimate, 0, "4,600.00", bill_day)
    page = person.get(f"/estimates/{estimate.id}").get_data(as_text=True)
    deadline = bill_day + timedelta(days=120)
    assert f"{deadline:%B} {deadline.day}, {deadline.year}" in page
    assert "www.cms.gov/nosurprises" in page and "1-800-985-3059" in page
    assert "will not affect the care you receive" in page
    assert "$400.00 more than this estimate" in page


def test_the_rule_is_per_provider_not_per_estimate(billing):
    estimate, staff, token, person = billing
    bill(staff, token, estimate, 0, "4,500.00")   # $300 over
    bill(staff, token, estimate, 1, "650.00")     # $300 over: $600 over in all
    assert level(estimate) == "warning"
    assert DISPUTE_NOTICE not in person.get(f"/estimates/{estimate.id}").get_data(as_text=True)


def test_bills_for_one_provider_add_up(billing):
    estimate, staff, token, person = billing
    bill(staff, token, estimate, 1, "500.00")     # $150 over
    assert level(estimate) == "ok"
    bill(staff, token, estimate, 1, "249.99")     # $399.99 over
    assert level(estimate) == "warning"
    bill(staff, token, estimate, 1, "0.01")       # $400.00 over
    assert level(estimate) == "dispute_eligible"
    page = person.get(f"/estimates/{estimate.id}").get_data(as_text=True)
    assert "care from Kristen Example, LCSW" in page


def test_voiding_a_mistyped_bill_takes_the_notice_away(billing):
    estimate, staff, token, person = billing
    bill(staff, token, estimate, 0, "46,000.00")
    assert level(estimate) == "dispute_eligible"
    [entry] = db.session.scalars(select(BilledAmount)).all()
    response = staff.post(f"/estimates/{estimate.id}/bills/{entry.id}/void",
                          data={"csrf_token": token})
    assert response.status_code == 302
    assert level(estimate) == "ok"
    assert DISPUTE_NOTICE not in person.get(f"/estimates/{estimate.id}").get_data(as_text=True)
    assert db.session.get(BilledAmount, entry.id).voided_at is not None  # kept, voided


def test_the_levels_follow_the_configuration(app, billing):
    estimate, staff, token, _ = billing
    app.config["GFE_WARNING_THRESHOLD_CENTS"] = 100_00
    app.config["GFE_DISPUTE_THRESHOLD_CENTS"] = 40_000
    bill(staff, token, estimate, 0, "4,350.00")   # $150 over
    assert level(estimate) == "warning"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("amount", "-10", "cannot be negative"),
    ("amount", "ten dollars", "Enter an amount in dollars"),
    ("amount", "", "Enter the amount billed"),
    ("amount", "$200,000", "larger than"),
    ("bill_date", "", "Enter the date on the bill"),
    ("bill_date", "2026-13-01", "does not exist"),
    ("provider", "2", "Not a valid choice"),
    ("provider", "-1", "Not a valid choice"),
    ("provider", "", "Choose the provider who billed"),
])
def test_a_bad_bill_is_refused_inline(billing, field, value, message):
    estimate, staff, token, _ = billing
    data = {"csrf_token": token, "provider": "0", "amount": "100.00",
            "bill_date": practice_today().isoformat(), field: value}
    response = staff.post(f"/estimates/{estimate.id}/bills", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert db.session.scalars(select(BilledAmount)).all() == []


def test_a_bill_cannot_be_dated_in_the_future(billing):
    estimate, staff, token, _ = billing
    response = bill(staff, token, estimate, 0, "100", practice_today()
                    + timedelta(days=1))
    assert response.status_code == 422
    assert "cannot be in the future" in response.get_data(as_text=True)


def test_bills_are_not_taken_on_drafts_or_by_clients(billing, practice):
    estimate, staff, token, person = billing
    draft = practice.draft()
    assert bill(staff, token, draft, 0, "100").status_code == 404
    person_token = csrf(person)
    assert person.post(f"/estimates/{estimate.id}/bills", data={
        "csrf_token": person_token, "provider": "0", "amount": "100",
        "bill_date": practice_today().isoformat()}).status_code == 404
    assert db.session.scalars(select(BilledAmount)).all() == []


def test_a_bill_the_service_refuses_is_refused_inline_at_its_field(billing, monkeypatch):
    estimate, staff, token, _ = billing
    real = bills.record_bill

    def beyond_the_list(actor, estimate, **values):
        return real(actor, estimate, **(values | {"provider_position": 5}))

    monkeypatch.setattr(bills, "record_bill", beyond_the_list)
    response = bill(staff, token, estimate, 0, "100.00")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Choose a provider listed on the estimate." in page
    assert 'id="provider-error"' in page  # next to the provider field
    assert db.session.scalars(select(BilledAmount)).all() == []


def test_a_refusal_without_a_field_is_shown_on_the_bill_form(billing, monkeypatch):
    estimate, staff, token, _ = billing

    def refuse(actor, estimate, **values):
        raise RuleError("Not today.")

    monkeypatch.setattr(bills, "record_bill", refuse)
    response = bill(staff, token, estimate, 0, "100.00")
    assert response.status_code == 422
    assert "Not today." in response.get_data(as_text=True)
    assert db.session.scalars(select(BilledAmount)).all() == []
