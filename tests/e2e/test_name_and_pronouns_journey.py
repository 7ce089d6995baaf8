"""Names and pronouns in a real browser: a client changes the name they go by and their
pronouns on the Account page (on a phone and on a wide screen, a mistake shown beside the
field first), and their therapist sees the new name with the pronouns on the dashboard and in
the conversation; the client sees the therapist with credentials, pronouns and reply hours."""

import re

import pytest
from playwright.sync_api import expect

from portal.accounts.profile import Profile, update_profile
from portal.messaging import sending
from tests.e2e.support import sign_in_as
from tests.messaging.conftest import assign, make_user

pytestmark = pytest.mark.e2e


@pytest.fixture
def people(app, db):
    jordan = make_user("client", "Jordan Lee")
    colleen = make_user("therapist", "Colleen Demo")
    update_profile(colleen, colleen, Profile(pronouns="she/her", credentials="LPC",
                                             reply_hours="usually replies within a day"))
    assign(jordan, colleen)
    thread, _ = sending.start_thread(jordan, counterpart_id=colleen.id, subject="Thursday",
                                     body="Can we talk on Thursday?", notify=False)
    found = dict(jordan=jordan, colleen=colleen, thread=thread.id)
    db.session.commit()  # on SQLite an open transaction here would block the server
    return found


def _fits(page) -> None:
    """Nothing on the page is wider than the window (no sideways scrolling)."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_a_client_changes_name_and_pronouns_and_their_therapist_sees_them(
        browser, live_server, people):
    def fresh_page(width):
        context = browser.new_context(base_url=live_server,
                                      viewport={"width": width, "height": 900})
        context.set_default_timeout(10_000)
        return context, context.new_page()

    # On a phone: a name left empty is refused beside the field, then the new one is saved.
    context, page = fresh_page(390)
    sign_in_as(page, people["jordan"])
    page.goto("/account")
    section = page.locator("section", has=page.get_by_role("heading",
                                                           name="Your name and pronouns"))
    expect(section.get_by_text("Legal name", exact=True)).to_be_visible()
    expect(section.get_by_text(re.compile("Good Faith Estimates"))).to_be_visible()
    _fits(page)
    name = page.get_by_label("The name you go by")
    expect(name).to_have_value("Jordan Lee")
    name.fill("   ")
    page.get_by_role("button", name="Save name and pronouns").click()
    expect(page.locator("#name-error")).to_contain_text("Please enter the name you go by.")
    expect(page.get_by_label("The name you go by")).to_have_attribute("aria-invalid", "true")
    _fits(page)
    page.get_by_label("The name you go by").fill("Jo Lee")
    page.get_by_label(re.compile("Pronouns")).fill("they/them")
    page.get_by_role("button", name="Save name and pronouns").click()
    expect(page.get_by_text("Your details are saved.")).to_be_visible()
    expect(page.get_by_label("The name you go by")).to_have_value("Jo Lee")
    expect(page.get_by_label(re.compile("Pronouns"))).to_have_value("they/them")
    # The legal name stays as it was: only the practice corrects it.
    expect(section.locator("dd", has_text="Jordan Lee")).to_be_visible()
    context.close()

    # On a wide screen: the pronouns change again; the client sees Colleen as she is named.
    context, page = fresh_page(1280)
    sign_in_as(page, people["jordan"])
    page.goto("/account")
    _fits(page)
    page.get_by_label(re.compile("Pronouns")).fill("they/she")
    page.get_by_role("button", name="Save name and pronouns").click()
    expect(page.get_by_text("Your details are saved.")).to_be_visible()
    page.goto(f"/messages/{people['thread']}")
    expect(page.locator(".thread-with")).to_contain_text("With Colleen Demo, LPC (she/her)")
    expect(page.get_by_text("Colleen Demo, LPC (she/her) usually replies within a day."))\
        .to_be_visible()
    context.close()

    # Colleen sees the new name with the pronouns, on her dashboard and in the conversation.
    for width in (390, 1280):
        context, page = fresh_page(width)
        sign_in_as(page, people["colleen"])
        page.goto("/dashboard")
        row = page.locator("table tbody tr", has_text="Thursday")
        expect(row).to_contain_text("Jo Lee (they/she)")
        expect(page.get_by_text("Jordan Lee")).to_have_count(0)
        _fits(page)
        row.get_by_role("link", name="Thursday").click()
        expect(page.locator(".thread-with")).to_contain_text("With Jo Lee (they/she)")
        expect(page.locator(".message__author").first).to_have_text("Jo Lee (they/she)")
        _fits(page)
        context.close()
