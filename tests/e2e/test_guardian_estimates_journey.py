"""A parent's view of their children's estimates in a real browser (issue #16), on a phone and
on a desktop: the guardian lands on their family page, which says what they see for each
child (Act 147 of 2004: Sam, 15, consented to their own care); they see Riley's estimate (the
parent consented) but not Sam's until Sam shares it from their own estimate page; then they
open it and download the PDF.
"""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from portal import practice
from portal.estimates import drafting, issuing
from portal.extensions import db
from portal.policies import service as policies
from tests.e2e.support import accept_policies_if_asked, new_page, sign_in_as
from tests.estimates.conftest import complete_draft
from tests.messaging.conftest import assign
from tests.support.people import make_guardian, make_minor, make_user

pytestmark = pytest.mark.e2e

SHOTS = "/tmp/guardside-shots"


def _issue(therapist, client):
    draft = drafting.create_draft(therapist, client)
    drafting.save_draft(therapist, draft, complete_draft(practice.today()))
    return issuing.issue(therapist, draft.id)


@pytest.fixture
def family(app, db):
    policies.ensure_defaults()  # the gate asks a guardian to accept, like a client
    db.session.commit()
    guardian = make_guardian("Gale Rivera")
    today = practice.today()
    riley = make_minor(today - timedelta(days=365 * 12 + 40), consent_by="guardian",
                       guardian=guardian, name="Riley Rivera")
    sam = make_minor(today - timedelta(days=365 * 15 + 40), consent_by="minor",
                     guardian=guardian, name="Sam Rivera")
    therapist = make_user("therapist", "Colleen Demo")
    for minor in (riley, sam):
        assign(minor, therapist)
    found = {"guardian": guardian, "sam": sam, "riley_gfe": _issue(therapist, riley).number,
             "sam_gfe": _issue(therapist, sam).number}
    db.session.commit()  # on SQLite an open transaction here would block the server
    return found


@pytest.mark.parametrize("width", [390, 1280])
def test_a_guardian_sees_what_consent_and_sharing_allow(browser, live_server, family, width):
    def fresh_page():
        return new_page(browser, live_server, width)

    context, page = fresh_page()
    sign_in_as(page, family["guardian"])
    accept_policies_if_asked(page)
    page.goto("/")
    expect(page.get_by_role("heading", name="Your family")).to_be_visible()
    expect(page.get_by_text("You can see their Good Faith Estimates.")).to_be_visible()
    expect(page.get_by_text("Sam Rivera consented to their own care, as Pennsylvania law "
                            "allows from 14")).to_be_visible()
    page.screenshot(path=f"{SHOTS}/family-{width}.png", full_page=True)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Estimates").click()
    expect(page.get_by_role("link", name=f"Estimate {family['riley_gfe']}",
                            exact=True)).to_be_visible()
    expect(page.get_by_text("For Riley Rivera")).to_be_visible()
    expect(page.get_by_role("link", name=f"Estimate {family['sam_gfe']}",
                            exact=True)).to_have_count(0)
    context.close()

    context, page = fresh_page()
    sign_in_as(page, family["sam"])
    accept_policies_if_asked(page)
    page.goto("/estimates/")
    page.get_by_role("link", name=f"Estimate {family['sam_gfe']}", exact=True).click()
    page.get_by_role("button", name="Share with Gale Rivera").click()
    expect(page.get_by_text("Gale Rivera can see this estimate.")).to_be_visible()
    page.locator("#sharing").screenshot(path=f"{SHOTS}/shared-{width}.png")
    context.close()

    context, page = fresh_page()
    sign_in_as(page, family["guardian"])
    page.goto("/estimates/")
    page.get_by_role("link", name=f"Estimate {family['sam_gfe']}", exact=True).click()
    expect(page.get_by_text("This is Sam Rivera\u2019s Good Faith Estimate.")).to_be_visible()
    page.screenshot(path=f"{SHOTS}/estimate-{width}.png", full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download PDF").click()
    assert download.value.suggested_filename.endswith(".pdf")
    context.close()
    db.session.remove()
