"""The dispute window and the bills: 120 days from the first bill, what a passed window says,
and which bill dates an estimate takes (issue #14).

45 CFR 149.620(c): a client starts patient-provider dispute resolution within 120 calendar
days of the initial bill with the items; a later bill does not start the window again.
Every test runs on a frozen clock (the practice's today comes from portal.practice).
"""

from datetime import UTC, date, datetime

import pytest
import time_machine
from sqlalchemy import select

from portal.audit.models import AuditEvent
from portal.errors import RuleError
from portal.estimates import billing, content, totals
from portal.estimates.document import DISCLAIMERS
from portal.estimates.models import BilledAmount, GoodFaithEstimate
from portal.extensions import db
from tests.estimates.conftest import csrf, sign_in

OPEN_TITLE = "You can ask for a review of a bill"
PASSED_TITLE = "A bill was higher than this estimate"
OVER = "4,600.00"  # provider 0 of the standard estimate is $4,200: $400 over


def at(day: date):
    """Freeze the clock on an afternoon at the practice (UTC 17:00 is 12:00 or 13:00 there)."""
    return time_machine.travel(datetime(day.year, day.month, day.day, 17, tzinfo=UTC),
                               tick=False)


def issued_on(practice, day: date, period_start: date | None = None) -> GoodFaithEstimate:
    """An estimate issued on `day`, for a period starting then (or on `period_start`)."""
    with at(day):
        return practice.issued(period_start=period_start or day)


def record(practice, estimate, day: date, amount: str = OVER, provider: int = 0):
    """Post a bill as the therapist, on `day`'s clock, dated `day`; return the response."""
    with at(day):
        staff = sign_in(practice.app.test_client(), practice.therapist)
        return staff.post(f"/estimates/{estimate.id}/bills", data={
            "csrf_token": csrf(staff), "provider": str(provider), "amount": amount,
            "bill_date": day.isoformat()})


def pages(practice, estimate, day: date) -> tuple[str, str]:
    """The client's and the therapist's page of the estimate, on `day`'s clock."""
    with at(day):
        person = sign_in(practice.app.test_client(), practice.client)
        staff = sign_in(practice.app.test_client(), practice.therapist)
        client_page = person.get(f"/estimates/{estimate.id}")
        staff_page = staff.get(f"/estimates/{estimate.id}")
        assert client_page.status_code == staff_page.status_code == 200
        return client_page.get_data(as_text=True), staff_page.get_data(as_text=True)


def summary(estimate, day: date) -> billing.ProviderBilling:
    db.session.expire_all()
    with at(day):
        return billing.summary_of(estimate, content.open_document(estimate)).providers[0]


@pytest.fixture
def practice(practice, app):
    practice.app = app
    return practice


# --------------------------------------------------------------- the first bill starts it


def test_the_window_runs_from_the_first_bill_even_when_a_later_one_exists(practice):
    """45 CFR 149.620(c): a first bill on Oct 1, 2026 gives Jan 29, 2027, not Mar 31, 2027."""
    estimate = issued_on(practice, date(2026, 9, 1))
    assert record(practice, estimate, date(2026, 10, 1)).status_code == 302
    assert record(practice, estimate, date(2026, 12, 1), "250.00").status_code == 302
    provider = summary(estimate, date(2026, 12, 1))
    assert provider.first_bill_date == date(2026, 10, 1)
    assert provider.dispute_deadline == date(2027, 1, 29)
    assert provider.latest_bill_date == date(2026, 12, 1)
    assert not provider.window_passed
    client_page, staff_page = pages(practice, estimate, date(2026, 12, 1))
    assert OPEN_TITLE in client_page
    assert "You can start it until <strong>January 29, 2027</strong>" in client_page
    assert "first bill for this care, dated October 1, 2026" in client_page
    assert "March 31, 2027" not in client_page  # 120 days from the later bill
    assert "client may dispute until Jan 29, 2027 (first bill Oct 1, 2026)" in staff_page
    assert "Mar 31, 2027" not in staff_page


def test_a_first_bill_under_the_level_still_starts_the_window(practice):
    """45 CFR 149.620(c): the window runs from the first bill even if only a later one
    brings the provider to $400 over."""
    estimate = issued_on(practice, date(2026, 9, 1))
    record(practice, estimate, date(2026, 10, 1), "4,300.00")   # $100 over
    record(practice, estimate, date(2026, 11, 20), "300.00")    # $400 over in all
    provider = summary(estimate, date(2026, 11, 20))
    assert provider.level == "dispute_eligible"
    assert provider.dispute_deadline == date(2027, 1, 29)


def test_a_voided_first_bill_is_not_the_original(practice):
    """45 CFR 149.620(c): a voided (mistyped) bill never started anything; the first bill
    that stands is the original, so Oct 20, 2026 gives Feb 17, 2027."""
    estimate = issued_on(practice, date(2026, 9, 1))
    record(practice, estimate, date(2026, 10, 1), "4,700.00")
    [mistyped] = db.session.scalars(select(BilledAmount)).all()
    with at(date(2026, 10, 20)):
        billing.void_bill(practice.therapist, estimate, mistyped.id)
    record(practice, estimate, date(2026, 10, 20))
    provider = summary(estimate, date(2026, 10, 20))
    assert provider.first_bill_date == date(2026, 10, 20)
    assert provider.dispute_deadline == date(2027, 2, 17)
    client_page, staff_page = pages(practice, estimate, date(2026, 10, 20))
    assert "February 17, 2027" in client_page and "January 29, 2027" not in client_page
    assert "client may dispute until Feb 17, 2027 (first bill Oct 20, 2026)" in staff_page


def test_bills_of_another_provider_do_not_move_the_window(practice):
    """45 CFR 149.620(c) per provider: the second provider's earlier bill is not the first
    bill of the first provider."""
    estimate = issued_on(practice, date(2026, 9, 1))
    record(practice, estimate, date(2026, 9, 10), "100.00", provider=1)
    record(practice, estimate, date(2026, 10, 1))
    assert summary(estimate, date(2026, 10, 1)).dispute_deadline == date(2027, 1, 29)


# ------------------------------------------------------------------------ a passed window


def test_the_last_day_is_still_open_and_the_next_has_passed(practice):
    """45 CFR 149.620(c): the 120th day after the first bill is the last day to start it."""
    estimate = issued_on(practice, date(2026, 5, 15))
    record(practice, estimate, date(2026, 6, 1))
    assert summary(estimate, date(2026, 9, 29)).window_passed is False
    assert summary(estimate, date(2026, 9, 30)).window_passed is True
    last_day, _ = pages(practice, estimate, date(2026, 9, 29))
    assert "You can start it until <strong>September 29, 2026</strong>" in last_day
    day_after, _ = pages(practice, estimate, date(2026, 9, 30))
    assert "You can start it until" not in day_after
    assert "ended on <strong>September 29, 2026</strong>" in day_after


def test_a_passed_window_is_not_shown_as_open(practice, app):
    """45 CFR 149.620(c): on Dec 1, 2026 a window that ended Sep 29, 2026 says it has passed,
    and what the client can still do: talk with the practice, call the CMS help line."""
    estimate = issued_on(practice, date(2026, 5, 15))
    record(practice, estimate, date(2026, 6, 1))
    client_page, staff_page = pages(practice, estimate, date(2026, 12, 1))
    assert "You can start it until" not in client_page
    assert OPEN_TITLE not in client_page
    assert PASSED_TITLE in client_page
    assert ("The time to start the patient-provider dispute resolution process for this bill "
            "ended on <strong>September 29, 2026</strong>, 120 days after the first bill for "
            "this care, dated June 1, 2026.") in client_page
    profile = app.config["PRACTICE"]
    assert f"call <span class=\"nowrap\">{profile['phone']}</span>" in client_page
    assert f'href="mailto:{profile["email"]}"' in client_page
    assert 'No Surprises Help Desk at <span class="nowrap">1-800-985-3059</span>' in client_page
    assert "www.cms.gov/nosurprises" in client_page
    assert "later bill" not in client_page  # there is none
    assert "dispute window passed on Sep 29, 2026 (first bill Jun 1, 2026)" in staff_page
    assert "may dispute" not in staff_page  # neither the cell nor the level says so


def test_a_passed_window_with_later_bills_says_their_charges_may_have_time(practice):
    """45 CFR 149.620(c): charges first billed later have a window of their own, which the
    portal cannot see (it does not record the items on a bill): the page says so, kindly."""
    estimate = issued_on(practice, date(2026, 5, 15))
    record(practice, estimate, date(2026, 6, 1))
    record(practice, estimate, date(2026, 10, 15), "80.00")
    client_page, _ = pages(practice, estimate, date(2026, 12, 1))
    assert "ended on <strong>September 29, 2026</strong>" in client_page
    assert ("If a later bill charges for care that was not on that first bill, the time for "
            "those charges may still be open") in client_page


def test_recording_a_bill_after_the_window_tells_staff_it_has_passed(practice):
    """45 CFR 149.620(c): a later bill that brings a provider to $400 over after 120 days from
    its first bill does not open a window; the flash says so instead of promising one."""
    estimate = issued_on(practice, date(2026, 5, 15))
    record(practice, estimate, date(2026, 6, 1), "4,300.00")     # $100 over
    with at(date(2026, 12, 1)):
        staff = sign_in(practice.app.test_client(), practice.therapist)
        response = staff.post(f"/estimates/{estimate.id}/bills", data={
            "csrf_token": csrf(staff), "provider": "0", "amount": "300.00",
            "bill_date": "2026-12-01"}, follow_redirects=True)
        page = response.get_data(as_text=True)
    assert "the 120 days from its first bill have passed" in page
    assert "can see their right to dispute it" not in page
    assert db.session.get(GoodFaithEstimate, estimate.id).billing_level == "dispute_eligible"


@pytest.mark.parametrize(("amount", "title"), [
    (None, None),              # no bills
    ("4,500.00", None),        # $300 over: the warning is for the practice only
    (OVER, OPEN_TITLE),        # $400 over, in time
])
def test_the_client_page_in_each_state(practice, amount, title):
    """45 CFR 149.620: no notice without a provider $400 over; one notice, open, when in time."""
    estimate = issued_on(practice, date(2026, 9, 1))
    if amount:
        record(practice, estimate, date(2026, 10, 1), amount)
    client_page, staff_page = pages(practice, estimate, date(2026, 10, 2))
    for notice in (OPEN_TITLE, PASSED_TITLE):
        assert (notice in client_page) is (notice == title)
    assert ("client may dispute until" in staff_page) is (title == OPEN_TITLE)
    assert "dispute window passed" not in staff_page


# -------------------------------------------------------------------- dates a bill may carry


@pytest.mark.parametrize(("bill_date", "message"), [
    (date(2026, 8, 31), "This bill is dated before the estimate was issued (September 1, 2026)"),
    (date(2026, 9, 10), "This bill is dated before the care this estimate covers begins "
                        "(September 15, 2026)"),
    (date(2026, 10, 2), "The bill date cannot be in the future."),
])
def test_an_early_or_future_bill_is_refused_and_nothing_is_written(practice, bill_date,
                                                                  message):
    """A bill dated before the estimate was issued or before its period starts cannot be for
    the care it covers, nor can one not sent yet: refused inline at the date (422)."""
    estimate = issued_on(practice, date(2026, 9, 1), period_start=date(2026, 9, 15))
    with at(date(2026, 10, 1)):
        staff = sign_in(practice.app.test_client(), practice.therapist)
        response = staff.post(f"/estimates/{estimate.id}/bills", data={
            "csrf_token": csrf(staff), "provider": "0", "amount": OVER,
            "bill_date": bill_date.isoformat()})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page
    assert 'id="bill_date-error"' in page  # next to the date field
    assert f'value="{bill_date.isoformat()}"' in page  # as typed
    assert "Bills dated from Sep 15, 2026" in page  # the form says which dates it takes
    assert db.session.scalars(select(BilledAmount)).all() == []
    assert db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "estimate.bill.recorded")).all() == []
    assert db.session.get(GoodFaithEstimate, estimate.id).billing_level == "ok"


@pytest.mark.parametrize("bill_date", [date(2026, 9, 15), date(2026, 10, 1)])
def test_the_first_and_last_dates_a_bill_may_carry_are_taken(practice, bill_date):
    estimate = issued_on(practice, date(2026, 9, 1), period_start=date(2026, 9, 15))
    with at(date(2026, 10, 1)):
        billing.record_bill(practice.therapist, estimate, provider_position=0,
                            amount_cents=100_00, bill_date=bill_date)
    bills = totals.open_bills(estimate.client_id, list(db.session.scalars(select(BilledAmount))))
    assert [b.bill_date for b in bills] == [bill_date]


def test_the_service_refuses_an_early_bill_at_its_field(practice):
    """The rule is the service's (billing.check_bill_date), whoever calls it."""
    estimate = issued_on(practice, date(2026, 9, 1))
    with at(date(2026, 10, 1)), pytest.raises(RuleError) as refused:
        billing.record_bill(practice.therapist, estimate, provider_position=0,
                            amount_cents=100_00, bill_date=date(2026, 8, 1))
    assert refused.value.field == "bill_date"
    db.session.rollback()
    assert db.session.scalars(select(BilledAmount)).all() == []


# ------------------------------------------------------------ everywhere else it is worded


def test_the_practice_list_and_panel_promise_no_window(practice):
    """45 CFR 149.620(c): the level pill and the dashboard panel only say a provider is $400
    over; whether the client may still dispute is said where its date is (the estimate page)."""
    estimate = issued_on(practice, date(2026, 5, 15))
    record(practice, estimate, date(2026, 6, 1))
    with at(date(2026, 12, 1)):
        staff = sign_in(practice.app.test_client(), practice.therapist)
        page = staff.get("/estimates/practice").get_data(as_text=True)
    assert "$400+ over the estimate" in page
    assert "$400 or more over the estimate" in page  # the panel's flag
    assert "may dispute" not in page and "can dispute" not in page


def test_the_disclaimer_counts_from_the_original_bill(practice):
    """45 CFR 149.620(c), as the CMS model notice words it: 120 days from the original bill."""
    [dispute] = [text for text in DISCLAIMERS if "120 calendar days" in text]
    assert "of the date on the original bill" in dispute
    estimate = issued_on(practice, date(2026, 9, 1))
    client_page, _ = pages(practice, estimate, date(2026, 9, 2))
    assert "of the date on the original bill" in client_page


def test_the_bill_form_says_which_dates_it_takes(practice):
    """Before the care begins no date is taken yet, and the form says from when."""
    not_begun = issued_on(practice, date(2026, 9, 1), period_start=date(2026, 9, 15))
    begun = issued_on(practice, date(2026, 9, 1))
    with at(date(2026, 9, 10)):
        staff = sign_in(practice.app.test_client(), practice.therapist)
        waiting = staff.get(f"/estimates/{not_begun.id}").get_data(as_text=True)
        taking = staff.get(f"/estimates/{begun.id}").get_data(as_text=True)
    assert ("Bills can be recorded from Sep 15, 2026, when the care this estimate covers "
            "begins.") in waiting
    assert ("Bills dated from Sep 1, 2026 (the day this estimate was issued) up to today are "
            "compared with this estimate.") in taking
