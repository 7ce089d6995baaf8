"""What the estimate says (#14): the scheduled date, sessions that add up, $0.00 on purpose,
and the CMS model notice's items about a bill higher than the estimate."""

import re
from dataclasses import replace
from datetime import date, timedelta

import pytest
from flask import render_template_string

from portal.estimates import content, drafting, issuing
from portal.estimates.compliance import check, check_sessions
from portal.estimates.document import (
    IF_BILLED_MORE,
    IF_BILLED_MORE_TITLE,
    NO_CHARGE_REASONS,
    GfeDocument,
    LineItem,
)
from portal.estimates.drafts import Draft, DraftLine, assemble
from portal.estimates.models import GoodFaithEstimate
from portal.estimates.pdf import render_pdf
from portal.extensions import db
from portal.practice import today as practice_today
from tests.estimates.conftest import NPI_A, builder_payload, complete_draft, csrf, sign_in
from tests.estimates.test_compliance import make_document
from tests.estimates.test_pdf import normalize, pdf_text

TODAY = date(2026, 3, 2)


def issue_with(practice, draft: Draft, *, scheduled_on=None, service_date=None):
    estimate = drafting.create_draft(practice.therapist, practice.client)
    drafting.save_draft(practice.therapist, estimate, draft, scheduled_on=scheduled_on,
                        service_date=service_date)
    return issuing.issue(practice.therapist, estimate.id)


def page_of(app, doc: GfeDocument) -> str:
    """The estimate as the client's page shows it (the macro every estimate page uses)."""
    with app.test_request_context("/estimates/"):
        html = render_template_string(
            '{% from "estimates/_document.html" import gfe_document with context %}'
            "{{ gfe_document(doc) }}", doc=doc)
    return visible(html)


def visible(html: str) -> str:
    """The page's text as a reader sees it: tags out, entities kept as in the source."""
    return normalize(re.sub(r"<[^>]+>", " ", html))


# ------------------------------------------------ 45 CFR 149.610(c)(1)(ii): the scheduled date


def test_149_610_c_1_ii_the_scheduled_date_prints_on_the_pdf_and_the_page(app, practice,
                                                                          client):
    """45 CFR 149.610(c)(1)(ii): the date the primary service is scheduled is on the estimate."""
    today = practice_today()
    first = today + timedelta(days=21)
    estimate = issue_with(practice, complete_draft(today, period_start=today + timedelta(days=14)),
                          scheduled_on=today, service_date=first)
    document = content.open_document(estimate)
    assert document.service_date == first
    shown = f"{first:%B} {first.day}, {first.year} (the first session)"
    assert f"Scheduled for {shown}" in pdf_text(content.open_pdf(estimate))
    sign_in(client, practice.client)
    page = visible(client.get(f"/estimates/{estimate.id}").get_data(as_text=True))
    assert f"Scheduled for {shown}" in page


def test_149_610_c_1_ii_an_unscheduled_service_says_so_honestly(app, practice):
    """45 CFR 149.610(c)(1)(ii): with no service booked the estimate says "Not yet scheduled"
    (it never invents a date, and the period is labelled as the period of care)."""
    estimate = issue_with(practice, complete_draft(practice_today()))
    text = pdf_text(content.open_pdf(estimate))
    assert "Scheduled for Not yet scheduled" in text
    assert "Period of care" in text and "Scheduled dates" not in text
    assert "Scheduled for Not yet scheduled" in page_of(app, content.open_document(estimate))


def test_a_one_session_estimate_prints_the_date_without_first_session(app):
    doc = make_document(sessions_min=1, sessions_max=1, service_date=date(2026, 2, 3))
    assert "Scheduled for February 3, 2026 " in pdf_text(render_pdf(doc))


def test_documents_issued_before_the_date_was_stated_still_open_as_they_were(app):
    """A version 1 document (no scheduled date, no no-charge reasons) opens, serialises exactly
    as stored (the freeze guard compares plaintext), and its page shows it as issued."""
    stored = make_document().to_dict()
    stored["version"] = 1
    del stored["service_date"]
    for line in stored["line_items"]:
        del line["no_charge_reason"]
    doc = GfeDocument.from_dict(stored)
    assert doc.schema_version == 1 and not doc.states_service_date
    assert doc.to_dict() == stored
    page = page_of(app, doc)
    assert "Scheduled for" not in page and "Scheduled dates January 12, 2026" in page
    no_version = {k: v for k, v in stored.items() if k != "version"}
    assert GfeDocument.from_dict(no_version).schema_version == 1


def test_a_new_document_round_trips_its_date_and_reasons():
    doc = make_document(service_date=date(2026, 1, 12), line_items=(
        *make_document().line_items[:2],
        LineItem.priced(make_document().line_items[2].provider_npi, "90847", "Family", 2, 0,
                        ("F32.A",), no_charge_reason="sliding_scale")))
    again = GfeDocument.from_dict(doc.to_dict())
    assert again == doc and again.to_dict()["version"] == 2


# ------------------------------------------------------ consistency: the sessions add up


def test_52_sessions_priced_as_five_free_ones_is_refused_with_how_to_fix():
    """The issue's example: 'this estimate prices 52 sessions' with one line of 5 x $0.00."""
    draft = complete_draft(TODAY, sessions_min=52, sessions_max=52,
                           period_end=complete_draft(TODAY).period_start + timedelta(days=364),
                           providers=complete_draft(TODAY).providers[:1],
                           lines=(DraftLine(0, "90837", "Psychotherapy", 5, 0, ("F41.1",)),))
    _, problems = assemble(draft, gfe_number="GFE-2026-0001", issue_date=TODAY)
    by_field = {p.field: p.message for p in problems}
    assert set(by_field) == {"line_items[0].quantity", "line_items[0].unit_cents"}
    assert ("prices 52 sessions of individual psychotherapy, but the lines for them (90837) "
            "add up to 5: make line 1's quantity 52") in by_field["line_items[0].quantity"]
    assert "tick “No charge” and choose why" in by_field["line_items[0].unit_cents"]


@pytest.mark.parametrize(("quantity", "ok"), [(38, False), (39, True), (40, False)])
def test_recurring_care_prices_exactly_the_sessions_it_says_it_prices(quantity, ok):
    """sessions_max = 40: the evaluation (1) plus the 90837 line must make 40, no fewer (the
    estimate would not cover the expected sessions) and no more (it would price sessions it says
    are not expected)."""
    doc = make_document()
    lines = list(doc.line_items)
    lines[1] = LineItem.priced(lines[1].provider_npi, "90837", "Psychotherapy", quantity, 16000,
                               ("F41.1",))
    problems = check(replace(doc, line_items=tuple(lines)))
    assert (problems == []) is ok
    if not ok:
        assert [p.field for p in problems] == ["line_items[1].quantity"]
        assert f"make line 2's quantity 39, or change the most sessions expected to " \
               f"{quantity + 1}" in problems[0].message
        assert "the evaluation counts as the first session" in problems[0].message


def test_family_sessions_alongside_individual_care_are_not_counted():
    # make_document: 1 evaluation + 39 individual = 40; its 2 family sessions are extra.
    assert check_sessions(make_document()) == []
    assert check_sessions(make_document(sessions_max=42)) != []


def test_the_primary_kind_comes_from_the_code_in_the_description():
    """Described as family therapy (CPT 90847): the family line is the sessions, so 2 != 40."""
    doc = make_document(primary_service="Family psychotherapy (CPT 90847), weekly")
    (problem,) = check_sessions(doc)
    assert problem.field == "line_items[2].quantity"
    assert "sessions of family psychotherapy" in problem.message


def test_recurring_care_without_any_session_line_is_refused():
    doc = make_document()
    doc = replace(doc, line_items=tuple(
        replace(item, cpt_code="H0031") if item.cpt_code == "90837" else item
        for item in doc.line_items))
    (problem,) = check_sessions(doc)
    assert problem.field == "line_items" and "no line is a line of individual" in problem.message


def test_a_single_session_is_not_recurring_care():
    assert check_sessions(make_document(sessions_min=1, sessions_max=1)) == []


def test_the_review_page_warns_and_issuing_refuses_sessions_that_do_not_add_up(client,
                                                                               practice):
    sign_in(client, practice.therapist)
    token = csrf(client)
    short = complete_draft(practice_today())
    short = replace(short, lines=(short.lines[0], replace(short.lines[1], quantity=20),
                                  short.lines[2]))
    estimate = practice.draft(lines=short.lines)
    review = normalize(client.get(f"/estimates/{estimate.id}/review").get_data(as_text=True))
    assert "1 thing to fix before this estimate can be issued" in review
    assert ("prices 26 sessions of individual psychotherapy, but the lines for them (90791 and "
            "90837) add up to 21") in review
    assert "make line 2&#39;s quantity 25" in review
    refused = client.post(f"/estimates/{estimate.id}/issue", data={"csrf_token": token})
    assert refused.headers["Location"].endswith(f"/estimates/{estimate.id}/review")
    db.session.expire_all()
    assert db.session.get(GoodFaithEstimate, estimate.id).status == "draft"
    builder = client.get(f"/estimates/{estimate.id}/edit?check=1").get_data(as_text=True)
    assert 'id="lines-1-quantity-error"' in builder  # the message sits on the quantity field


# ------------------------------------------------------------------ $0.00 needs a reason


def free_line(**changes) -> Draft:
    draft = complete_draft(TODAY)
    lines = list(draft.lines)
    lines[2] = replace(lines[2], unit_cents=0, **changes)
    return replace(draft, lines=tuple(lines))


def problems_of(draft: Draft) -> dict[str, str]:
    return {p.field: p.message
            for p in assemble(draft, gfe_number="GFE-2026-0001", issue_date=TODAY)[1]}


def test_a_free_line_without_no_charge_is_refused():
    assert "Line 3: the charge is $0.00" in problems_of(free_line())["line_items[2].unit_cents"]


def test_no_charge_without_a_reason_asks_for_one():
    problems = problems_of(free_line(no_charge=True))
    assert problems == {"line_items[2].no_charge_reason": "Line 3: choose why there is no charge."}


def test_no_charge_on_a_priced_line_is_refused():
    draft = complete_draft(TODAY)
    lines = list(draft.lines)
    lines[2] = replace(lines[2], no_charge=True, no_charge_reason="courtesy")
    message = problems_of(replace(draft, lines=tuple(lines)))["line_items[2].no_charge_reason"]
    assert "marked “No charge” but charges $175.00 each" in message


@pytest.mark.parametrize("reason", sorted(NO_CHARGE_REASONS))
def test_no_charge_with_a_reason_passes_and_prints_on_the_line(app, reason):
    doc, problems = assemble(free_line(no_charge=True, no_charge_reason=reason),
                             gfe_number="GFE-2026-0001", issue_date=TODAY)
    assert problems == []
    words = f"No charge: {NO_CHARGE_REASONS[reason]}"
    assert f"Family psychotherapy {words}" in pdf_text(render_pdf(doc))
    assert f"Family psychotherapy {words}" in page_of(app, doc)


def test_the_builder_keeps_no_charge_and_its_reason(staff_draft):
    client, token, estimate_id = staff_draft
    draft = free_line(no_charge=True, no_charge_reason="included")
    payload = builder_payload(draft, token=token, **{"lines-2-no_charge": "y",
                                                     "lines-2-no_charge_reason": "included",
                                                     "lines-2-unit_charge": ""})
    assert client.post(f"/estimates/{estimate_id}/edit", data=payload).status_code == 302
    db.session.expire_all()
    saved = content.open_draft(db.session.get(GoodFaithEstimate, estimate_id))
    assert saved.lines[2].no_charge and saved.lines[2].no_charge_reason == "included"
    assert saved.lines[2].unit_cents == 0  # "No charge" with the charge left blank is $0.00
    page = client.get(f"/estimates/{estimate_id}/edit").get_data(as_text=True)
    box = re.search(r'<input[^>]*name="lines-2-no_charge"[^>]*>', page).group(0)
    assert "checked" in box
    assert re.search(r'<option selected value="included">|<option value="included" selected',
                     page)
    bad = dict(payload, **{"lines-2-no_charge_reason": "because"})
    assert client.post(f"/estimates/{estimate_id}/edit", data=bad).status_code == 422


@pytest.fixture
def staff_draft(client, practice):
    sign_in(client, practice.therapist)
    token = csrf(client)
    estimate = drafting.create_draft(practice.therapist, practice.client)
    return client, token, estimate.id


# ------------------------------------------- 45 CFR 149.620: the CMS model notice's items


def test_149_620_the_cms_items_are_on_the_pdf(app):
    """45 CFR 149.620 (the model notice): talk to the provider first (financial help, payment
    plans), the $25 fee, and what the reviewer's decision means, on every estimate's PDF."""
    text = pdf_text(render_pdf(make_document()))
    assert IF_BILLED_MORE_TITLE in text
    for item in IF_BILLED_MORE:
        assert normalize(item) in text
    assert "there is a $25 fee" in text and "financial help or a payment plan" in text
    assert "you pay the amount on this Good Faith Estimate" in text


def test_149_620_the_cms_items_are_on_the_clients_page(client, practice):
    """45 CFR 149.620: the same items on the client's page of an issued estimate."""
    estimate = practice.issued()
    sign_in(client, practice.client)
    page = normalize(client.get(f"/estimates/{estimate.id}").get_data(as_text=True))
    assert IF_BILLED_MORE_TITLE in page
    for item in IF_BILLED_MORE:
        assert normalize(item) in page


def test_the_pdf_stays_one_clean_layout(app):
    """The new rows and section keep the realistic estimate on as few pages as before plus
    at most one, with every heading once, and 'Keep a copy' last."""
    from io import BytesIO

    from pypdf import PdfReader

    data = render_pdf(make_document(service_date=date(2026, 1, 12)))
    pages = [normalize(p.extract_text()) for p in PdfReader(BytesIO(data)).pages]
    text = " ".join(pages)
    assert len(pages) <= 3
    for heading in ("Your care", "Itemized estimate", "Please read", IF_BILLED_MORE_TITLE):
        assert text.count(heading) == 1, heading
    assert text.index(IF_BILLED_MORE_TITLE) < text.index("Keep a copy")
    assert NPI_A in text
