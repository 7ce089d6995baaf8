"""Browser journey: an administrator corrects a client's names and email; the client confirms
the new address from the emailed link on a phone-sized screen, then signs in with it (the old
address no longer works)."""

import re

import pytest
from playwright.sync_api import Page, expect

from portal.extensions import db
from tests.accounts.support import mail_text, outbox
from tests.e2e.support import make_person, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_server_errors")]

ADMIN_KEY = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
ADMIN_PASSWORD = "amber lamps over quiet water"
CLIENT_PASSWORD = "seven quiet owls at dusk again"
NEW_EMAIL = "jo.lee.new@example.org"


def test_an_email_correction_is_confirmed_from_the_new_address(app, page: Page, browser,
                                                               live_server):
    admin_email = make_person("admin", "Ada Admin", ADMIN_PASSWORD, totp_key=ADMIN_KEY)
    old_email = make_person("client", "Jordan Lee", CLIENT_PASSWORD)
    sign_in(page, admin_email, ADMIN_PASSWORD, ADMIN_KEY)
    page.goto("/admin/users?role=client")
    page.get_by_role("link", name="Jordan Lee").click()

    page.get_by_label("The name they go by").fill("Jo Lee")
    page.get_by_label("Pronouns (optional)").fill("they/them")
    page.get_by_role("button", name="Save names").click()
    expect(page.get_by_text("The changes are saved.")).to_be_visible()
    expect(page.get_by_role("heading", name="Jo Lee")).to_be_visible()

    page.get_by_label("New email address").fill(NEW_EMAIL)
    page.get_by_role("button", name="Send confirmation link").click()
    expect(page.get_by_text("We sent a confirmation link to the new address")).to_be_visible()
    expect(page.get_by_text(f"Waiting for confirmation: {NEW_EMAIL}")).to_be_visible()

    body = mail_text(outbox("email_change_confirm")[-1])
    db.session.commit()  # opening it read the key: let the server write again
    link = re.search(r"https?://\S+/email-change/\S+", body)
    assert link and link.group(0).startswith(live_server)
    phone = browser.new_context(base_url=live_server, viewport={"width": 390, "height": 800})
    try:
        visitor = phone.new_page()
        visitor.goto(link.group(0))
        expect(visitor).to_have_url(f"{live_server}/email-change")  # the token left the bar
        visitor.get_by_role("button", name="Confirm my new email address").click()
        expect(visitor.get_by_text("your new email address is confirmed")).to_be_visible()

        sign_in(visitor, old_email, CLIENT_PASSWORD)
        expect(visitor.get_by_text("That email and password did not work")).to_be_visible()
        sign_in(visitor, NEW_EMAIL, CLIENT_PASSWORD)
        expect(visitor.get_by_role("button", name="Sign out").first).to_be_visible()

        visitor.goto(link.group(0))
        expect(visitor.get_by_role("heading", name="This link was already used")).to_be_visible()
    finally:
        phone.close()

    page.reload()
    expect(page.get_by_text(f"They sign in with {NEW_EMAIL}")).to_be_visible()
    expect(page.get_by_text("Waiting for confirmation")).to_have_count(0)
