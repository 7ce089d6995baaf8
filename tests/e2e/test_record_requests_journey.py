"""Browser journey: a client asks for a copy of their record (45 CFR 164.524); an
administrator extends the deadline once with a reason, then marks it done; the client sees
each status."""

import re

import pyotp
import pytest
from playwright.sync_api import expect

from portal.extensions import db
from tests.e2e.support import make_person, sign_in

pytestmark = pytest.mark.e2e

TOTP_KEY = pyotp.random_base32()
ADMIN_PASSWORD = "quiet harbor lantern morning"
CLIENT_PASSWORD = "paper boats on a slow river"


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").first.click()


def test_a_client_asks_for_a_copy_the_admin_extends_then_fulfils_it(page, app):
    client = make_person("client", "Zoë Nguyễn-Ōtsuka", CLIENT_PASSWORD)
    admin = make_person("admin", "Ada Admin", ADMIN_PASSWORD, totp_key=TOTP_KEY)
    db.session.remove()

    # The client asks from their Account page.
    sign_in(page, client, CLIENT_PASSWORD)
    page.goto("/account")
    page.get_by_role("link", name="Ask for a copy or a change").click()
    page.get_by_role("button", name="Send my request").click()  # nothing chosen: inline
    expect(page.locator("#details-error")).to_be_visible()
    page.get_by_label("A copy of my record").check()
    page.get_by_label("Tell us what you would like").fill("My notes from 2025, on paper.")
    page.get_by_role("button", name="Send my request").click()
    expect(page.get_by_text("Your request is recorded")).to_be_visible()
    expect(page.locator(".pill")).to_have_text("Open")
    request_url = page.url
    sign_out(page)

    # The administrator sees it in the list, extends it once, then marks it done.
    sign_in(page, admin, ADMIN_PASSWORD, TOTP_KEY)
    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name=re.compile("Record requests")).click()
    page.get_by_role("link", name="Zoë Nguyễn-Ōtsuka").click()
    expect(page.get_by_text("My notes from 2025, on paper.")).to_be_visible()
    page.get_by_role("button", name="Extend by 30 days").click()
    expect(page.locator("#reason-error")).to_be_visible()
    page.locator("#reason").fill("The archive is offsite; we will post it next month.")
    page.get_by_role("button", name="Extend by 30 days").click()
    expect(page.get_by_text("The deadline is extended")).to_be_visible()
    expect(page.get_by_role("heading", name="Extend the deadline once")).to_have_count(0)
    sign_out(page)

    sign_in(page, client, CLIENT_PASSWORD)
    page.goto(request_url)
    expect(page.get_by_role("heading", name="Why we need more time")).to_be_visible()
    expect(page.get_by_text("The archive is offsite")).to_be_visible()
    expect(page.locator(".pill")).to_have_text("Open")
    sign_out(page)

    sign_in(page, admin, ADMIN_PASSWORD, TOTP_KEY)
    page.goto(request_url)
    page.get_by_label("A note for the client (optional)").fill("Posted to you today.")
    page.get_by_role("button", name="Mark as done").click()
    expect(page.get_by_text("Marked as done. The client was told.")).to_be_visible()
    sign_out(page)

    sign_in(page, client, CLIENT_PASSWORD)
    page.goto(request_url)
    expect(page.locator(".pill")).to_have_text("Done")
    expect(page.get_by_text("Posted to you today.")).to_be_visible()
    expect(page.get_by_role("button", name="Withdraw my request")).to_have_count(0)
