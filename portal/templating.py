"""What every template can use: the practice profile, role navigation, local time filters."""

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from flask import Flask, current_app, request, url_for
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.routing import BuildError


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    active: bool = False
    badge: int | None = None


# (label, endpoint, roles). Endpoints from features that are not installed are skipped.
NAVIGATION = (
    ("Home", "messaging.dashboard", ("therapist",)),
    ("Messages", "messaging.inbox", ("client",)),
    ("Estimates", "estimates.client_list", ("client",)),
    ("Estimates", "estimates.staff_list", ("therapist", "admin")),
    ("Clients", "accounts.my_clients", ("therapist",)),
    ("People", "admin.users", ("admin",)),
    ("Policies", "policies.admin_index", ("admin",)),
    ("Audit", "admin.audit", ("admin",)),
    ("Account", "accounts.settings", ("client", "therapist", "admin")),
)

# Badge providers by endpoint, registered by features (e.g. unread message counts).
BADGES: dict[str, object] = {}


def init_app(app: Flask) -> None:
    app.context_processor(_globals)
    app.add_template_filter(local_time, "local_time")
    app.add_template_filter(local_date, "local_date")
    app.add_template_filter(friendly_time, "friendly_time")
    app.add_template_filter(moment, "moment")
    app.add_template_filter(dollars, "dollars")
    app.add_template_global(policy_url, "policy_url")


def policy_url(slug: str) -> str:
    try:
        return url_for("policies.show", slug=slug)
    except BuildError:
        return "#"


def _nav_links() -> list[NavLink]:
    if not current_user.is_authenticated:
        return []
    if current_user.is_staff and not current_user.mfa_enabled:
        return []
    links = []
    for label, endpoint, roles in NAVIGATION:
        if current_user.role not in roles or endpoint not in current_app.view_functions:
            continue
        links.append(NavLink(label, url_for(endpoint), _is_active(endpoint), _badge(endpoint)))
    return links


def _is_active(endpoint: str) -> bool:
    """Mark the nav item of the current area: same endpoint, or same feature blueprint."""
    current = request.endpoint or ""
    if current == endpoint:
        return True
    blueprint = endpoint.split(".")[0]
    if blueprint == "accounts" or current.split(".")[0] != blueprint:
        return False
    if blueprint == "admin":  # several admin items share a blueprint
        return (endpoint == "admin.audit") == (current == "admin.audit")
    return True  # each role sees one item per feature blueprint


def _badge(endpoint: str) -> int | None:
    """Ask a feature for its badge; a database outage must not break the error page."""
    badge_fn = BADGES.get(endpoint)
    if not callable(badge_fn):
        return None
    try:
        return badge_fn(current_user) or None
    except SQLAlchemyError:
        return None


def _globals() -> dict:
    return {
        "practice": current_app.config["PRACTICE"],
        "nav_links": _nav_links(),
        "idle_seconds": current_app.config["SESSION_IDLE_MINUTES"] * 60,
        "reply_time": current_app.config["REPLY_TIME_TEXT"],
    }


def _zone() -> ZoneInfo:
    return _zone_named(current_app.config["PRACTICE_TIMEZONE"])


_zone_named = lru_cache(maxsize=8)(ZoneInfo)  # a thread page formats ~150 times


FULL_TIME = "%a %b %-d, %Y, %-I:%M %p"


def local_time(value: datetime | None, fmt: str = FULL_TIME) -> str:
    """Show a UTC time in the practice's time zone."""
    if value is None:
        return ""
    return _lower_meridiem(value.astimezone(_zone()).strftime(fmt))


def _lower_meridiem(text: str) -> str:
    return text.replace("AM", "am").replace("PM", "pm")


def local_date(value, fmt: str = "%B %-d, %Y") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(_zone())
    return value.strftime(fmt)


def friendly_time(value: datetime | None) -> str:
    """'Tue 3:14 pm' this week, 'Mar 4, 3:14 pm' this year, else with the year."""
    if value is None:
        return ""
    zone = _zone()
    return _friendly(value.astimezone(zone), datetime.now(zone))


def _friendly(local: datetime, now: datetime) -> str:
    if (now - local).days < 6 and local <= now:
        fmt = "%a %-I:%M %p"
    elif local.year == now.year:
        fmt = "%b %-d, %-I:%M %p"
    else:
        fmt = "%b %-d, %Y, %-I:%M %p"
    return _lower_meridiem(local.strftime(fmt))


@dataclass(frozen=True, slots=True)
class Moment:
    """One instant as a message shows it: machine-readable, its day, in full, and friendly."""

    iso: str
    day: str
    full: str
    friendly: str


def moment(value: datetime) -> Moment:
    """Format a time every way a conversation needs, converting it to local time once
    (a 50-message page would otherwise convert 150 times)."""
    zone = _zone()
    local = value.astimezone(zone)
    return Moment(iso=value.isoformat(), day=local.strftime("%A, %B %-d"),
                  full=_lower_meridiem(local.strftime(FULL_TIME)),
                  friendly=_friendly(local, datetime.now(zone)))


def dollars(cents: int | None) -> str:
    if cents is None:
        return ""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"
