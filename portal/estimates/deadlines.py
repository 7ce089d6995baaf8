"""When a Good Faith Estimate is due, counted in business days (45 CFR 149.610(b)(1)(ii)).

A business day here is Monday to Friday, except US federal holidays and the weekdays on which
they are observed (a Saturday holiday is observed on the Friday before, a Sunday one on the
Monday after).
"""

from collections.abc import Iterator
from datetime import date, timedelta
from functools import lru_cache

import holidays


@lru_cache(maxsize=64)
def _federal_holidays(year: int) -> frozenset[date]:
    # An observed day can fall in the neighbouring year (1 January 2022, a Saturday, was observed
    # on 31 December 2021), so build those years too and keep this year's days.
    calendar = holidays.US(years=range(year - 1, year + 2), categories=(holidays.PUBLIC,))
    return frozenset(day for day in calendar if day.year == year)


def is_business_day(day: date) -> bool:
    """Return whether day is a weekday that is not a federal holiday (or its observed day)."""
    return day.weekday() < 5 and day not in _federal_holidays(day.year)


def add_business_days(start: date, days: int) -> date:
    """Return the date `days` business days after start (before it when days is negative)."""
    step = 1 if days >= 0 else -1
    day = start
    remaining = abs(days)
    while remaining:
        day += timedelta(days=step)
        if is_business_day(day):
            remaining -= 1
    return day


def business_days_between(start: date, end: date) -> int:
    """Count the business days stepped over going from start to end (negative going back).

    Forward, end counts and start does not; backward, the reverse. This makes it the inverse
    of add_business_days, so "scheduled at least 3 business days before the service" reads
    business_days_between(scheduled_on, service_date) >= 3.
    """
    if end < start:
        return -sum(1 for day in _days(end, start) if is_business_day(day))
    return sum(1 for day in _days(start + timedelta(days=1), end + timedelta(days=1))
               if is_business_day(day))


def _days(first: date, stop: date) -> Iterator[date]:
    """Yield first, first + 1 day, ... up to but not including stop."""
    for offset in range((stop - first).days):
        yield first + timedelta(days=offset)


def due_date(
    *,
    scheduled_on: date | None = None,
    service_date: date | None = None,
    requested_on: date | None = None,
) -> date | None:
    """Return the last day to give the estimate, or None when none is required.

    Scheduled at least 10 business days ahead: within 3 business days of scheduling; at least 3:
    within 1 business day; fewer than 3: no estimate is required for that scheduling. Requested
    without scheduling: within 3 business days of the request. When both apply, the earlier wins.
    """
    if scheduled_on is None and requested_on is None:
        raise ValueError("due_date needs scheduled_on or requested_on")
    if scheduled_on is not None and service_date is None:
        raise ValueError("scheduled_on needs the service_date it was scheduled for")
    candidates = []
    if scheduled_on is not None and service_date is not None:
        lead = business_days_between(scheduled_on, service_date)
        if lead >= 10:
            candidates.append(add_business_days(scheduled_on, 3))
        elif lead >= 3:
            candidates.append(add_business_days(scheduled_on, 1))
    if requested_on is not None:
        candidates.append(add_business_days(requested_on, 3))
    return min(candidates, default=None)


def renewal_due(period_end: date, today: date, days: int = 30) -> bool:
    """Return whether the estimate's period ends within `days` calendar days (or has ended)."""
    return (period_end - today).days <= days


def correction_due(next_service: date) -> date:
    """Return when a correction of an issued estimate is due (45 CFR 149.610(b)(1)(vii)):
    no later than one business day before the next scheduled service."""
    return add_business_days(next_service, -1)


def deadline_kept(due: date | None, issued_on: date | None, today: date) -> str | None:
    """Whether a deadline was kept: "met" (issued on or before it), "missed" (issued after it,
    or not issued and the day has passed), "open" (not issued, still time); None: no deadline."""
    if due is None:
        return None
    if issued_on is not None:
        return "met" if issued_on <= due else "missed"
    return "missed" if today > due else "open"
