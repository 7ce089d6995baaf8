"""The client's side: their estimates newest first, a readable page, the PDF, requests, receipt."""

import io
from datetime import timedelta

import pytest
import time_machine
from pypdf import PdfReader
from sqlalchemy import select

from portal.audit import AuditEvent
from portal.estimates import follow_ups, issuing
from portal.estimates.document import DISCLAIMERS, KEEP_A_COPY
from portal.estimates.models import GoodFaithEstimate
from portal.extensions import db
from tests.estimates.conftest import csrf, make_user, sign_in
from tests.estimates.test_pdf import normalize, pdf_text


@pytest.fixture
def zoe(client, practice):
    """The client, signed in, with one issued estimate."""
    estimate = practice.issued()
    sign_in(client, practice.client)
    return client, estimate


def actions(name: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == name)))


def test_the_list_shows_every_issued_estimate_newest_first_with_status(client, practice):
    first = practice.issued()
    correction = follow_ups.start_correction(practice.therapist, first)
    second = issuing.issue(practice.therapist, correction.id)
    practice.draft()  # a draft never shows
    sign_in(client, practice.client)
    page = client.get("/estimates/").get_data(as_text=True)
    assert page.index(second.number) < page.index(first.number)
    assert page.count("Download PDF") == 2
    assert "status--current" in page and "status--superseded" in page
    assert "Draft" not in page


def test_an_ended_period_shows_as_expired(zoe, practice):
    client, estimate = zoe
    with time_machine.travel(estimate.period_end + timedelta(days=2), tick=False):
        sign_in(client, practice.client)
        page = client.get("/estimates/").get_data(as_text=True)
    assert "status--expired" in page and "Period ended" in page


def test_the_page_holds_every_element_of_the_estimate(zoe):
    client, estimate = zoe
    page = client.get(f"/estimates/{estimate.id}").get_data(as_text=True)
    text = normalize(page)
    for expected in (estimate.number, "Zoë Nguyễn-Ōtsuka", "July 14, 1991", "12 Walnut Street",
                     "Individual psychotherapy, 53+ minutes (CPT 90837), weekly",
                     "20 to 26 (this estimate prices 26, the higher number)",
                     "1234567893", "12-3456789", "Telehealth", "90791", "TBD pending evaluation",
                     "F41.1, Z63.0", "$4,200.00", "$350.00", "$4,550.00", "None anticipated",
                     "(215) 360-3308", "team@coeocommunity.com", "Keep a copy"):
        assert normalize(expected) in text, expected
    assert 'href="https://www.cms.gov/nosurprises"' in page
    for disclaimer in DISCLAIMERS:
        assert normalize(disclaimer.split("www.cms.gov")[0]) in text
    assert normalize(KEEP_A_COPY) in text


def test_the_pdf_downloads_as_a_neutral_attachment_with_every_element(zoe):
    client, estimate = zoe
    response = client.get(f"/estimates/{estimate.id}/pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    name = f"good-faith-estimate-{estimate.number}.pdf"
    assert response.headers["Content-Disposition"] == (
        f"attachment; filename=\"{name}\"; filename*=UTF-8''{name}")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response.headers["Cache-Control"]
    data = response.get_data()
    assert data.startswith(b"%PDF")
    text = pdf_text(data)
    for expected in (estimate.number, "Zoë Nguyễn-Ōtsuka", "July 14, 1991",
                     "Colleen Example, LPC", "1234567893", "12-3456789",
                     "Kristen Example, LCSW", "1245319599", "23-4567890", "Telehealth",
                     "90791 Diagnostic evaluation TBD pending evaluation 1 $200.00 $200.00",
                     "90837 Individual psychotherapy, 60 minutes F41.1 25 $160.00 $4,000.00",
                     "Total for Colleen Example, LPC: $4,200.00",
                     "Total for Kristen Example, LCSW: $350.00",
                     "Total estimated charges: $4,550.00", "None anticipated",
                     *DISCLAIMERS, KEEP_A_COPY, "coeo", "(215) 360-3308"):
        assert normalize(expected) in text, expected
    assert len(PdfReader(io.BytesIO(data)).pages) >= 1


def test_the_first_view_is_recorded_once_and_each_download(zoe, practice):
    client, estimate = zoe
    for _ in range(3):
        client.get(f"/estimates/{estimate.id}")
    client.get(f"/estimates/{estimate.id}/pdf")
    client.get(f"/estimates/{estimate.id}/pdf")
    db.session.expire_all()
    stored = db.session.get(GoodFaithEstimate, estimate.id)
    assert stored.first_viewed_at is not None and stored.download_count == 2
    assert len(actions("estimate.viewed")) == 1
    downloads = actions("estimate.downloaded")
    assert len(downloads) == 2
    assert all(e.subject_id == practice.client.id and e.target_id == str(estimate.id)
               for e in downloads)


def test_staff_views_are_not_taken_for_delivery(client, practice):
    estimate = practice.issued()
    sign_in(client, practice.therapist)
    client.get(f"/estimates/{estimate.id}")
    client.get(f"/estimates/{estimate.id}/pdf")
    db.session.expire_all()
    stored = db.session.get(GoodFaithEstimate, estimate.id)
    assert stored.first_viewed_at is None and stored.download_count == 0
    page = client.get(f"/estimates/{estimate.id}").get_data(as_text=True)
    assert "not yet" in page


def test_acknowledging_receipt_is_a_button(zoe):
    client, estimate = zoe
    token = csrf(client)
    response = client.post(f"/estimates/{estimate.id}/acknowledge", data={"csrf_token": token})
    assert response.status_code == 302
    page = client.get(f"/estimates/{estimate.id}").get_data(as_text=True)
    assert "You let us know you received this estimate on" in page
    assert "I received this estimate" not in page
    assert len(actions("estimate.acknowledged")) == 1


def test_a_client_can_ask_for_an_estimate(client, practice):
    sign_in(client, practice.client)
    token = csrf(client)
    response = client.post("/estimates/request", data={"csrf_token": token})
    assert response.status_code == 302
    page = client.get("/estimates/").get_data(as_text=True)
    assert "We have let Colleen Example know" in page
    assert "your therapist know" not in page and "nobody has been emailed" not in page
    assert "You asked for an estimate on" in page
    assert "Ask for an estimate</button>" not in page
    client.post("/estimates/request", data={"csrf_token": token})
    assert len(actions("estimate.requested")) == 1


def test_a_client_without_a_therapist_is_told_who_was_told(app, client, practice):
    """No therapist and no covering clinician: the administrators are told, and named
    (tests/estimates/test_request_routing.py has every state)."""
    loner = make_user("client", "Ari Alone")
    sign_in(client, loner)
    response = client.post("/estimates/request", data={"csrf_token": csrf(client)})
    assert response.status_code == 302
    page = client.get("/estimates/").get_data(as_text=True)
    assert "your therapist know" not in page and "nobody has been emailed" not in page
    assert "we have let Morgan Admin at the practice know" in page
    again = client.get("/estimates/").get_data(as_text=True)  # the flash is gone, the fact stays
    assert "You do not have a therapist assigned yet" in again and "Morgan Admin" in again
    assert len(actions("estimate.requested")) == 1


def test_an_inactive_therapist_is_not_named_as_told(client, practice):
    practice.therapist.active = False
    db.session.commit()
    sign_in(client, practice.client)
    client.post("/estimates/request", data={"csrf_token": csrf(client)})
    page = client.get("/estimates/").get_data(as_text=True)
    assert "Colleen Example" not in page and "Morgan Admin" in page


def test_a_replaced_estimate_points_to_the_new_one(client, practice):
    first = practice.issued()
    second = issuing.issue(practice.therapist,
                           follow_ups.start_correction(practice.therapist, first).id)
    sign_in(client, practice.client)
    page = client.get(f"/estimates/{first.id}").get_data(as_text=True)
    assert "A newer estimate has replaced this one" in page
    assert f"/estimates/{second.id}" in page


def test_staff_pages_are_not_for_clients(zoe):
    client, estimate = zoe
    for url in ("/estimates/practice", "/estimates/new", f"/estimates/{estimate.id}/edit"):
        assert client.get(url).status_code == 404


def test_the_practice_sees_the_evidence_of_delivery(app, zoe, practice):
    client, estimate = zoe
    client.get(f"/estimates/{estimate.id}")
    client.get(f"/estimates/{estimate.id}/pdf")
    client.post(f"/estimates/{estimate.id}/acknowledge", data={"csrf_token": csrf(client)})
    page = sign_in(app.test_client(), practice.therapist).get(f"/estimates/{estimate.id}")
    body = page.get_data(as_text=True)
    assert "Delivery history (3)" in body
    for text in ("First opened", "Downloaded the PDF", "Confirmed receipt"):
        assert text in body
