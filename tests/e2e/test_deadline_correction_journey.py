"""Browser journey (45 CFR 149.610(b)(1)(ii)): a client asks for an estimate; their therapist
finds it on the dashboard the same day, sees the request date read-only in the builder,
corrects it with a reason (a refused correction is shown inline, nothing lost), then records it
as withdrawn; the history keeps the original deadline, and the client reads that the request
was withdrawn instead of a notice that quietly disappears."""

import re
from datetime import timedelta

import pyotp
import pytest
from playwright.sync_api import expect

from portal.accounts.identity import find_by_email
from portal.accounts.models import Assignment
from portal.extensions import db
from portal.practice import today as practice_today
from tests.e2e.support import make_person, sign_in
from tests.e2e.test_estimates_journey import CLIENT_PASSWORD, THERAPIST_PASSWORD

pytestmark = pytest.mark.e2e

TOTP_KEY = pyotp.random_base32()


@pytest.fixture
def people(app):
    therapist = make_person("therapist", "Colleen Example", THERAPIST_PASSWORD,
                            totp_key=TOTP_KEY)
    client = make_person("client", "Zoë Nguyễn-Ōtsuka", CLIENT_PASSWORD)
    db.session.add(Assignment(client_id=find_by_email(client).id,
                              therapist_id=find_by_email(therapist).id))
    db.session.commit()
    db.session.remove()
    return therapist, client


def test_a_request_date_is_corrected_with_a_reason_and_the_history_stays(page, people):
    therapist, client_email = people
    today = practice_today()
    short = f"{today:%b} {today.day}, {today.year}"

    # The client asks.
    sign_in(page, client_email, CLIENT_PASSWORD)
    page.goto("/estimates/")
    page.get_by_role("button", name="Ask for an estimate").click()
    expect(page.get_by_text("We have let Colleen Example know")).to_be_visible()
    page.get_by_role("button", name="Sign out").first.click()

    # The therapist sees it on the dashboard the day it arrives, not only when it is due.
    sign_in(page, therapist, THERAPIST_PASSWORD, TOTP_KEY)
    page.goto("/dashboard")
    panel = page.locator(".gfe-panel")
    expect(panel.get_by_text("Asked for by clients")).to_be_visible()
    expect(panel.get_by_text(re.compile(rf"Requested on {re.escape(short)}, due "))).to_be_visible()
    panel.get_by_role("link", name="Zoë Nguyễn-Ōtsuka").click()

    # The builder shows the request date read-only, with the action to correct it.
    deadline = page.locator("#deadline")
    expect(deadline.get_by_text(short).first).to_be_visible()
    expect(page.locator("#requested_on")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete this draft")).to_have_count(0)
    deadline.get_by_role("link", name=re.compile("Correct this date")).click()

    # A correction needs a date unless withdrawn: refused inline.
    expect(page.get_by_role("heading", name="Correct this date")).to_be_visible()
    page.get_by_label("Why it is being corrected").select_option(
        label="The date was entered wrongly")
    page.get_by_label("Note (optional)").fill("Asked at the front desk the day before")
    page.get_by_role("button", name="Save the correction").click()
    expect(page.locator("#new_date-error")).to_contain_text("Enter the corrected date")
    expect(page.get_by_label("Note (optional)")).to_have_value(
        "Asked at the front desk the day before")
    page.fill("#new_date", (today - timedelta(days=1)).isoformat())
    page.get_by_role("button", name="Save the correction").click()
    expect(page.get_by_text("Date corrected.")).to_be_visible()
    history = page.locator("#deadline-history")
    expect(history.get_by_text(re.compile("Original deadline"))).to_be_visible()
    expect(history.get_by_text("The date was entered wrongly.", exact=False)).to_be_visible()
    expect(history.get_by_text("Asked at the front desk the day before")).to_be_visible()

    # The request is then withdrawn: the date is cleared, the history keeps both corrections.
    page.locator("#deadline").get_by_role("link", name=re.compile("Correct this date")).click()
    page.get_by_label("Why it is being corrected").select_option(
        label="Withdrawn: the request or the booking was cancelled")
    page.get_by_role("button", name="Save the correction").click()
    expect(page.get_by_text("Date corrected.")).to_be_visible()
    expect(page.locator("#requested_on")).to_be_visible()  # nothing recorded now
    expect(page.locator("#deadline-history li")).to_have_count(2)
    expect(page.locator("#deadline-history")).to_contain_text("withdrawn before it was due")
    page.get_by_role("button", name="Sign out").first.click()

    # The client reads the truth.
    sign_in(page, client_email, CLIENT_PASSWORD)
    page.goto("/estimates/")
    expect(page.get_by_text(re.compile("was marked as withdrawn"))).to_be_visible()
    expect(page.get_by_text("You asked for an estimate on")).to_have_count(0)
    expect(page.get_by_role("button", name="Ask for an estimate")).to_be_visible()
