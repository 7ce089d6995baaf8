"""A parent writes to their child's therapist in a real browser (issue #16), on a phone and on
a desktop: the guardian signs in (accepting the policies if the gate asks), writes about the
minor, and sees it in their inbox "About Riley"; the therapist finds it on their dashboard
marked "Parent or guardian of Riley"; the minor's own conversation is a 404 for the guardian.
The minor also has an issued Good Faith Estimate, so the guardian's account is as it would be.
"""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from portal import practice
from portal.estimates import drafting, issuing
from portal.extensions import db
from portal.messaging import sending
from portal.policies import service as policies
from tests.e2e.support import accept_policies_if_asked, new_page, sign_in_as
from tests.estimates.conftest import complete_draft
from tests.messaging.conftest import assign
from tests.support.people import make_guardian, make_minor, make_user

pytestmark = pytest.mark.e2e

SHOTS = "/tmp/guardmsg-shots"


@pytest.fixture
def family(app, db):
    policies.ensure_defaults()  # the sign-in gate has something to ask, if it holds guardians
    db.session.commit()
    guardian = make_guardian("Gale Rivera")
    born = practice.today() - timedelta(days=365 * 13 + 40)
    minor = make_minor(born, consent_by="guardian", guardian=guardian, name="Riley Rivera")
    therapist = make_user("therapist", "Colleen Demo")
    assign(minor, therapist)
    # One issued Good Faith Estimate for the minor (the guardian consented, so they may see
    # it; the estimate pages for guardians have their own tests).
    estimate = drafting.create_draft(therapist, minor)
    drafting.save_draft(therapist, estimate, complete_draft(
        practice.today(), client_legal_name="Riley Rivera", client_dob=born))
    number = issuing.issue(therapist, estimate.id).number
    own, _ = sending.start_thread(minor, counterpart_id=therapist.id, subject="Only mine",
                                  body="Just between me and my therapist.", notify=False)
    found = {"guardian": guardian, "therapist": therapist, "own": own.id, "gfe": number}
    db.session.commit()  # on SQLite an open transaction here would block the server
    return found


@pytest.mark.parametrize("width", [390, 1280])
def test_guardian_writes_to_the_minors_therapist(browser, live_server, family, width):
    def fresh_page():
        return new_page(browser, live_server, width)

    context, page = fresh_page()
    sign_in_as(page, family["guardian"])
    accept_policies_if_asked(page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Estimates").click()
    expect(page.get_by_role("link", name=f"Estimate {family['gfe']}", exact=True)
           ).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Messages").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Messages")
    expect(page.get_by_text("Riley Rivera\u2019s own conversations with their therapist stay "
                            "private to them")).to_be_visible()
    page.get_by_role("link", name="New message").first.click()
    expect(page.get_by_text("Colleen Demo, about Riley Rivera")).to_be_visible()
    page.get_by_label("Subject").fill("Bedtime at home")
    page.get_by_label("Your message").fill("Riley has been sleeping badly this week.")
    page.screenshot(path=f"{SHOTS}/compose-{width}.png", full_page=True)
    page.get_by_role("button", name="Send message").click()
    expect(page.get_by_text("Your message was sent.")).to_be_visible()
    expect(page.locator(".thread-with")).to_contain_text("About Riley Rivera")
    page.screenshot(path=f"{SHOTS}/thread-guardian-{width}.png", full_page=True)
    page.goto("/messages")
    expect(page.get_by_text("About Riley Rivera")).to_be_visible()
    expect(page.get_by_text("Only mine")).to_have_count(0)
    page.screenshot(path=f"{SHOTS}/inbox-guardian-{width}.png", full_page=True)
    # The minor's own conversation: a 404 page, whatever the guardian knows of its address.
    response = page.goto(f"/messages/{family['own']}")
    assert response.status == 404
    expect(page.get_by_text("Just between me")).to_have_count(0)
    context.close()

    context, page = fresh_page()
    sign_in_as(page, family["therapist"])
    page.goto("/dashboard")
    expect(page.get_by_text("Parent or guardian of Riley Rivera")).to_be_visible()
    page.screenshot(path=f"{SHOTS}/dashboard-{width}.png", full_page=True)
    page.get_by_role("link", name="Bedtime at home").click()
    expect(page).to_have_url(re.compile(r"/messages/"))
    expect(page.locator(".thread-with")).to_contain_text("Parent or guardian of Riley Rivera")
    expect(page.get_by_text("Riley has been sleeping badly this week.")).to_be_visible()
    page.screenshot(path=f"{SHOTS}/thread-therapist-{width}.png", full_page=True)
    page.get_by_label("Your message").fill("Thank you for telling me. Let's talk on Friday.")
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_text("Your message was sent.")).to_be_visible()
    context.close()
    db.session.remove()
