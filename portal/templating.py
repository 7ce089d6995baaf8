"""What every template can use: the practice profile, the navigation features register,
local time filters, and `button_form()` for button-only forms."""

from dataclasses import dataclass
from datetime import datetime

from flask import Flask, current_app, request, url_for
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from portal import hooks, practice
from portal.forms import EmptyForm
from portal.security import navigation_hidden


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    active: bool = False
    badge: int | None = None


def init_app(app: Flask) -> None:
    app.context_processor(_globals)
    app.add_template_filter(local_time, "local_time")
    app.add_template_filter(local_date, "local_date")
    app.add_template_filter(friendly_time, "friendly_time")
    app.add_template_filter(moment, "moment")
    app.add_template_filter(dollars, "dollars")
    app.add_template_global(button_form, "button_form")


def button_form() -> EmptyForm:
    """An EmptyForm for rendering only: it must not read the request's body (an error page
    for an oversized or malformed POST would raise again)."""
    return EmptyForm(formdata=None)


def _nav_links() -> list[NavLink]:
    """The registered navigation items for the signed-in user's role, in order."""
    if not current_user.is_authenticated or navigation_hidden(current_user):
        return []
    here = request.endpoint or ""
    items = sorted((item for item in hooks.navigation if current_user.role in item.roles),
                   key=lambda item: item.order)
    return [NavLink(item.label, url_for(item.endpoint), item.is_current(here), _badge(item))
            for item in items]


def _footer_links() -> list[NavLink]:
    return [NavLink(link.label, url_for(link.endpoint, **dict(link.values)))
            for link in sorted(hooks.footer_links, key=lambda link: link.order)]


def _badge(item: hooks.NavItem) -> int | None:
    """Ask a feature for its badge; a database outage must not break the error page."""
    if item.badge is None:
        return None
    try:
        return item.badge(current_user) or None
    except SQLAlchemyError:
        return None


def _globals() -> dict:
    return {
        "practice": practice.profile(),
        "nav_links": _nav_links(),
        "footer_links": _footer_links(),
        "idle_seconds": current_app.config["SESSION_IDLE_MINUTES"] * 60,
        "reply_time": current_app.config["REPLY_TIME_TEXT"],
    }


FULL_TIME = "%a %b %-d, %Y, %-I:%M %p"


def local_time(value: datetime | None, fmt: str = FULL_TIME) -> str:
    """Show a UTC time in the practice's time zone."""
    if value is None:
        return ""
    return _lower_meridiem(value.astimezone(practice.zone()).strftime(fmt))


def _lower_meridiem(text: str) -> str:
    return text.replace("AM", "am").replace("PM", "pm")


def local_date(value, fmt: str = "%B %-d, %Y") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(practice.zone())
    return value.strftime(fmt)


def friendly_time(value: datetime | None) -> str:
    """'Tue 3:14 pm' this week, 'Mar 4, 3:14 pm' this year, else with the year."""
    if value is None:
        return ""
    zone = practice.zone()
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
    zone = practice.zone()
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
