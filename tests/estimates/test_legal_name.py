"""A Good Faith Estimate names the client by their legal name, not the name they go by; an
estimate issued before a correction keeps the name it was issued with. Staff pages about
estimates name the client as the portal does, with their pronouns."""

import io
from dataclasses import replace

from pypdf import PdfReader

from portal.accounts.profile import Profile, update_profile
from portal.estimates import content, drafting, issuing
from portal.practice import today as practice_today
from tests.estimates.conftest import complete_draft
from tests.support.auth import inject_session


def _pdf_text(estimate) -> str:
    reader = PdfReader(io.BytesIO(content.open_pdf(estimate)))
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


def _issue_from_new_draft(practice):
    estimate = drafting.create_draft(practice.therapist, practice.client)
    prefilled = content.open_draft(estimate).client_legal_name
    drafting.save_draft(practice.therapist, estimate, replace(
        complete_draft(practice_today()), client_legal_name=prefilled))
    return prefilled, issuing.issue(practice.therapist, estimate.id)


def test_a_new_estimate_is_made_out_to_the_legal_name(practice):
    client = practice.client  # goes by "Zoë Nguyễn-Ōtsuka"
    update_profile(practice.admin, client, Profile(legal_name="Zoe Anne Nguyen Otsuka"))
    update_profile(client, client, Profile(name="Zo Nguyen", pronouns="she/her"))
    prefilled, estimate = _issue_from_new_draft(practice)
    assert prefilled == "Zoe Anne Nguyen Otsuka"
    assert content.open_document(estimate).client_legal_name == "Zoe Anne Nguyen Otsuka"
    text = _pdf_text(estimate)
    assert "Zoe Anne Nguyen Otsuka" in text
    assert "Zo Nguyen" not in text and "she/her" not in text


def test_until_a_legal_name_is_set_it_is_the_name_they_go_by(practice):
    prefilled, _ = _issue_from_new_draft(practice)
    assert prefilled == "Zoë Nguyễn-Ōtsuka"


def test_a_client_changing_the_name_they_go_by_does_not_change_the_legal_name(practice):
    client = practice.client
    update_profile(client, client, Profile(name="Zo"))
    prefilled, _ = _issue_from_new_draft(practice)
    assert prefilled == "Zoë Nguyễn-Ōtsuka"


def test_an_issued_estimate_keeps_the_name_it_was_issued_with(practice):
    _, before = _issue_from_new_draft(practice)
    pdf = content.open_pdf(before)
    update_profile(practice.admin, practice.client, Profile(legal_name="Zoe Otsuka"))
    assert content.open_pdf(before) == pdf
    assert content.open_document(before).client_legal_name == "Zoë Nguyễn-Ōtsuka"


def test_staff_see_the_clients_pronouns_on_estimate_pages(practice, app):
    client = practice.client
    update_profile(client, client, Profile(name="Zoë N.", pronouns="she/her"))
    draft = drafting.create_draft(practice.therapist, client)
    browser = inject_session(app.test_client(), practice.therapist)
    page = browser.get(f"/estimates/{draft.id}/edit").get_data(as_text=True)
    assert "Estimate for Zoë N. (she/her)" in page
    listing = browser.get("/estimates/practice").get_data(as_text=True)
    assert "Zoë N. (she/her)" in listing
