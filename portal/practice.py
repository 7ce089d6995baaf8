"""The practice the portal serves: its clock (time zone, today) and its profile.

Every "today at the practice" and every name, address or phone number shown to people comes
from here, so a change of time zone or address is one setting (`PRACTICE_TIMEZONE`,
`PRACTICE` in config.py).
"""

from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app

from portal.db import utcnow

_zone_named = lru_cache(maxsize=8)(ZoneInfo)  # a thread page asks ~150 times


def zone() -> ZoneInfo:
    """The practice's time zone."""
    return _zone_named(current_app.config["PRACTICE_TIMEZONE"])


def now() -> datetime:
    """The current time at the practice (timezone-aware)."""
    return utcnow().astimezone(zone())


def today() -> date:
    """Today's date at the practice."""
    return now().date()


def start_of(day: date) -> datetime:
    """Midnight at the practice at the start of `day`, in UTC."""
    return datetime.combine(day, time.min, tzinfo=zone()).astimezone(UTC)


def profile() -> dict[str, Any]:
    """The practice's name, address, phone and email (config `PRACTICE`)."""
    return current_app.config["PRACTICE"]
