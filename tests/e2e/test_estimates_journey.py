"""Browser journey: a therapist builds and issues a Good Faith Estimate; the client reads it and
downloads the PDF."""

import re

import pyotp
import pytest
from playwright.sync_api import expect

from portal.accounts.identity import find_by_email
from portal.accounts.models import Assignment
from portal.extensions import db
from tests.e2e.support import make_person, sign_in

pytestmark = pytest.mark.e2e

TOTP_KEY = pyotp.random_base32()
THERAPIST_PASSWORD = "maple window sunrise tea"
CLIENT_PASSWORD = "seven quiet owls at dusk"


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


def test_a_therapist_issues_an_estimate_and_the_client_downloads_it(page, people):
    therapist, client_email = people
    sign_in(page, therapist, THERAPIST_PASSWORD, TOTP_KEY)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Estimates").click()
    page.get_by_role("link", name="New estimate").click()
    page.get_by_label("Client").select_option(label="Zoë Nguyễn-Ōtsuka")
    page.get_by_role("button", name="Start the estimate").click()

    # The builder: client, care, one provider, two lines.
    page.fill("#client_dob", "1991-07-14")
    page.fill("#client_address", "12 Walnut Street, Apt 3\nTrappe, PA 19426")
    page.fill("#primary_service", "Individual psychotherapy, 53+ minutes (CPT 90837), weekly")
    page.fill("#period_start", "2027-01-04")
    page.fill("#period_end", "2027-06-30")
    page.fill("#frequency", "Weekly")
    page.fill("#sessions_min", "20")
    page.fill("#sessions_max", "26")
    page.fill("#providers-0-name", "Colleen Example, LPC")
    page.fill("#providers-0-npi", "1234567893")
    page.fill("#providers-0-tin", "12-3456789")
    page.fill("#providers-0-location", "555 2nd Ave, Suite C 650, Collegeville, PA 19426")
    page.select_option("#lines-0-provider", "0")
    page.fill("#lines-0-cpt_code", "90791")
    page.fill("#lines-0-description", "Diagnostic evaluation")
    page.check("#lines-0-diagnosis_tbd")
    page.fill("#lines-0-quantity", "1")
    page.fill("#lines-0-unit_charge", "$200")
    page.select_option("#lines-1-provider", "0")
    page.fill("#lines-1-cpt_code", "90837")
    page.fill("#lines-1-description", "Individual psychotherapy, 60 minutes")
    page.fill("#lines-1-diagnosis", "F41.1")
    page.fill("#lines-1-quantity", "25")
    page.fill("#lines-1-unit_charge", "1,60")  # a typo: refused inline, nothing lost
    page.get_by_role("button", name="Save and check").click()
    expect(page.locator("#lines-1-unit_charge-error")).to_be_visible()
    expect(page.locator("#lines-0-cpt_code")).to_have_value("90791")
    page.fill("#lines-1-unit_charge", "160.00")
    page.get_by_role("button", name="Save and check").click()

    # The review: every check passed, a preview, and the Issue button.
    expect(page.get_by_role("heading", name="Ready to issue")).to_be_visible()
    expect(page.get_by_text("$4,200.00").first).to_be_visible()
    page.get_by_role("button", name="Issue estimate").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"GFE-\d{4}-\d{4}"))
    number = re.search(r"GFE-\d{4}-\d{4}",
                       page.get_by_role("heading", level=1).inner_text()).group(0)
    expect(page.get_by_text(f"Estimate {number} is issued")).to_be_visible()
    page.get_by_role("button", name="Sign out").first.click()

    # The client finds it, reads it and downloads the PDF.
    sign_in(page, client_email, CLIENT_PASSWORD)
    page.goto("/estimates/")
    page.get_by_role("link", name=f"Estimate {number}", exact=True).click()
    expect(page.get_by_role("heading", name="Good Faith Estimate", exact=True)).to_be_visible()
    expect(page.get_by_text("Zoë Nguyễn-Ōtsuka").first).to_be_visible()
    expect(page.get_by_text("Total estimated charges")).to_be_visible()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download PDF").click()
    download = download_info.value
    assert download.suggested_filename == f"good-faith-estimate-{number}.pdf"
    with open(download.path(), "rb") as fh:
        assert fh.read(5) == b"%PDF-"
    page.get_by_role("button", name="I received this estimate").click()
    expect(page.get_by_text("You let us know you received this estimate")).to_be_visible()
