"""Business days and the Good Faith Estimate deadlines of 45 CFR 149.610(b)(1)(ii)."""

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.estimates.deadlines import (
    add_business_days,
    business_days_between,
    due_date,
    is_business_day,
    renewal_due,
)


@pytest.mark.parametrize(
    ("day", "open_"),
    [
        (date(2026, 11, 26), False),  # Thanksgiving
        (date(2026, 11, 27), True),  # the Friday after is not a federal holiday
        (date(2026, 12, 25), False),  # Christmas, a Friday
        (date(2026, 12, 24), True),
        (date(2026, 7, 3), False),  # Independence Day observed (4 July is a Saturday)
        (date(2026, 7, 4), False),  # Saturday
        (date(2026, 7, 6), True),
        (date(2026, 6, 19), False),  # Juneteenth
        (date(2026, 11, 11), False),  # Veterans Day
        (date(2027, 12, 31), False),  # New Year's Day 2028 (a Saturday) observed
        (date(2027, 7, 5), False),  # Independence Day observed (4 July 2027 is a Sunday)
        (date(2026, 11, 28), False),  # Saturday
        (date(2026, 11, 29), False),  # Sunday
        (date(2026, 11, 30), True),
    ],
)
def test_business_days_skip_weekends_and_federal_holidays(day, open_):
    assert is_business_day(day) is open_


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (date(2026, 11, 25), 1, date(2026, 11, 27)),  # over Thanksgiving
        (date(2026, 11, 20), 1, date(2026, 11, 23)),  # over a weekend
        (date(2026, 7, 2), 1, date(2026, 7, 6)),  # over the observed 4 July and the weekend
        (date(2026, 12, 24), 1, date(2026, 12, 28)),  # over Christmas and the weekend
        (date(2026, 11, 28), 1, date(2026, 11, 30)),  # from a Saturday
        (date(2026, 11, 30), 0, date(2026, 11, 30)),
        (date(2026, 11, 30), -1, date(2026, 11, 27)),
        (date(2026, 11, 27), -1, date(2026, 11, 25)),
        (date(2026, 12, 30), 3, date(2027, 1, 5)),  # over New Year's Day
    ],
)
def test_add_business_days(start, days, expected):
    assert add_business_days(start, days) == expected


@pytest.mark.parametrize(
    ("start", "end", "count"),
    [
        (date(2026, 11, 23), date(2026, 11, 27), 3),  # Tue, Wed, Fri (not Thanksgiving)
        (date(2026, 11, 27), date(2026, 11, 30), 1),
        (date(2026, 11, 27), date(2026, 11, 27), 0),
        (date(2026, 11, 30), date(2026, 11, 27), -1),
        (date(2026, 3, 2), date(2026, 3, 16), 10),
    ],
)
def test_business_days_between(start, end, count):
    assert business_days_between(start, end) == count


@given(
    st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)),
    st.integers(min_value=-40, max_value=40),
)
def test_business_days_between_undoes_add_business_days(start, days):
    assert business_days_between(start, add_business_days(start, days)) == days


@pytest.mark.parametrize(
    ("scheduled", "service", "expected"),
    [
        # 3 to 9 business days ahead: within 1 business day of scheduling.
        (date(2026, 3, 2), date(2026, 3, 5), date(2026, 3, 3)),  # exactly 3
        (date(2026, 3, 2), date(2026, 3, 13), date(2026, 3, 3)),  # 9
        # 10 or more business days ahead: within 3 business days of scheduling.
        (date(2026, 3, 2), date(2026, 3, 16), date(2026, 3, 5)),  # exactly 10
        (date(2026, 3, 2), date(2026, 6, 1), date(2026, 3, 5)),
        # Fewer than 3 business days ahead: no estimate is required.
        (date(2026, 3, 2), date(2026, 3, 4), None),  # 2
        (date(2026, 3, 2), date(2026, 3, 2), None),  # same day
        # Holidays count against the lead time and push the deadline.
        (date(2026, 11, 2), date(2026, 11, 16), date(2026, 11, 3)),  # 9: Veterans Day
        (date(2026, 11, 2), date(2026, 11, 17), date(2026, 11, 5)),  # 10
        (date(2026, 11, 23), date(2026, 11, 25), None),  # 2
        (date(2026, 11, 23), date(2026, 11, 27), date(2026, 11, 24)),  # 3 despite Thanksgiving
        (date(2026, 11, 25), date(2026, 12, 2), date(2026, 11, 27)),  # over Thanksgiving
        (date(2026, 7, 2), date(2026, 7, 31), date(2026, 7, 8)),  # over observed 4 July
        (date(2026, 12, 22), date(2027, 1, 12), date(2026, 12, 28)),  # over Christmas
        (date(2026, 11, 28), date(2026, 12, 3), date(2026, 11, 30)),  # scheduled on a Saturday
    ],
)
def test_due_date_after_scheduling(scheduled, service, expected):
    assert due_date(scheduled_on=scheduled, service_date=service) == expected


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (date(2026, 3, 2), date(2026, 3, 5)),
        (date(2026, 12, 23), date(2026, 12, 29)),  # 24 Dec, (25 Dec closed), 28, 29
        (date(2026, 11, 25), date(2026, 12, 1)),  # 27 Nov, 30 Nov, 1 Dec
        (date(2026, 11, 28), date(2026, 12, 2)),  # requested on a Saturday
    ],
)
def test_due_date_after_a_request(requested, expected):
    assert due_date(requested_on=requested) == expected


def test_when_requested_and_scheduled_the_earlier_deadline_wins():
    kwargs = {"scheduled_on": date(2026, 3, 4), "service_date": date(2026, 3, 30)}
    assert due_date(**kwargs) == date(2026, 3, 9)
    assert due_date(requested_on=date(2026, 3, 2), **kwargs) == date(2026, 3, 5)


def test_a_request_still_needs_an_estimate_when_scheduled_too_late_for_the_rule():
    got = due_date(
        requested_on=date(2026, 3, 2), scheduled_on=date(2026, 3, 3), service_date=date(2026, 3, 4)
    )
    assert got == date(2026, 3, 5)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"service_date": date(2026, 3, 4)}, {"scheduled_on": date(2026, 3, 2)}],
)
def test_due_date_needs_enough_to_go_on(kwargs):
    with pytest.raises(ValueError, match="needs"):
        due_date(**kwargs)


@pytest.mark.parametrize(
    ("days_left", "due"),
    [(-1, True), (0, True), (29, True), (30, True), (31, False), (200, False)],
)
def test_renewal_is_due_within_thirty_days_of_the_period_end(days_left, due):
    today = date(2026, 6, 1)
    assert renewal_due(today + timedelta(days=days_left), today) is due


def test_renewal_window_can_be_changed():
    assert renewal_due(date(2026, 7, 1), date(2026, 6, 1), days=45) is True
    assert renewal_due(date(2026, 7, 1), date(2026, 6, 1), days=10) is False
