"""Printed totals equal the sum of the lines, on the PDF and on the page, for generated drafts.

Money is integer cents throughout; the expected figures are computed here from the generated
quantities and charges, independently of the document's own totals.
"""

import re
from collections import defaultdict
from datetime import date, timedelta

from flask import render_template_string
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.estimates.document import NO_CHARGE_REASONS, TELEHEALTH, format_cents
from portal.estimates.drafts import Draft, DraftLine, DraftProvider, assemble
from portal.estimates.pdf import render_pdf
from tests.estimates.test_pdf import normalize, pdf_text

TODAY = date(2026, 3, 2)
PROVIDERS = (
    DraftProvider("Colleen Example, LPC", "1234567893", "12-3456789", "Collegeville", "PA"),
    DraftProvider("Kristen Example, LCSW", "1245319599", "23-4567890", TELEHEALTH, "PA"),
    DraftProvider("Ana Example, LMFT", "1679576722", "34-5678901", TELEHEALTH, "PA"),
)
CODES = ("90791", "90832", "90834", "90837", "90846", "90847", "90853", "90839")


@st.composite
def lines(draw, providers: int):
    free = draw(st.booleans()) and draw(st.integers(0, 4)) == 0
    return DraftLine(
        provider=draw(st.integers(0, providers - 1)),
        cpt_code=draw(st.sampled_from(CODES)),
        description=draw(st.sampled_from(("Psychotherapy", "Family session", "Group"))),
        quantity=draw(st.integers(1, 60)),
        unit_cents=0 if free else draw(st.integers(1, 100_000_00 // 60)),
        diagnosis_codes=("F41.1",),
        no_charge=free,
        no_charge_reason=draw(st.sampled_from(sorted(NO_CHARGE_REASONS))) if free else "",
    )


@st.composite
def drafts(draw) -> Draft:
    count = draw(st.integers(1, len(PROVIDERS)))
    items = tuple(draw(st.lists(lines(count), min_size=1, max_size=7)))
    # Every provider has a line, so none is listed with nothing to bill.
    used = sorted({line.provider for line in items})
    remap = {old: new for new, old in enumerate(used)}
    items = tuple(DraftLine(remap[line.provider], *(getattr(line, f) for f in (
        "cpt_code", "description", "quantity", "unit_cents", "diagnosis_codes",
        "diagnosis_tbd", "no_charge", "no_charge_reason"))) for line in items)
    sessions = draw(st.integers(1, 52))
    start = TODAY + timedelta(days=7)
    return Draft(
        client_legal_name="Zoë Nguyễn-Ōtsuka", client_dob=date(1991, 7, 14),
        client_address="12 Walnut Street\nTrappe, PA 19426",
        primary_service="Individual psychotherapy", period_start=start,
        period_end=start + timedelta(days=draw(st.integers(0, 364))), frequency="Weekly",
        sessions_min=sessions, sessions_max=sessions,
        providers=tuple(PROVIDERS[i] for i in used), lines=items)


def expected_totals(draft: Draft) -> tuple[int, dict[int, int]]:
    per_provider: dict[int, int] = defaultdict(int)
    for line in draft.lines:
        per_provider[line.provider] += line.quantity * line.unit_cents
    return sum(per_provider.values()), dict(per_provider)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(draft=drafts())
def test_printed_totals_equal_the_sum_of_the_lines(app, draft):
    """On the PDF (read back with pypdf) and on the page: each line total is quantity times the
    unit charge, each provider's total is the sum of its lines, and the total estimated charges
    is the sum of every line."""
    doc, _ = assemble(draft, gfe_number="GFE-2026-0001", issue_date=TODAY)
    assert doc is not None
    total, per_provider = expected_totals(draft)
    assert doc.total_cents == total
    text = pdf_text(render_pdf(doc))
    with app.test_request_context("/estimates/"):
        html = render_template_string(
            '{% from "estimates/_document.html" import gfe_document with context %}'
            "{{ gfe_document(doc) }}", doc=doc)
    page = normalize(re.sub(r"<[^>]+>", " ", html))

    assert f"Total estimated charges: {format_cents(total)}" in text
    assert f"Total estimated charges {format_cents(total)}" in page
    for index, cents in per_provider.items():
        name = draft.providers[index].name
        assert f"Total for {name}: {format_cents(cents)}" in text
        assert f"Total for {name} {format_cents(cents)}" in page
    for line in draft.lines:
        row = (f"{line.quantity} {format_cents(line.unit_cents)} "
               f"{format_cents(line.quantity * line.unit_cents)}")
        assert row in text
        assert row in page
    # The printed grand total is the sum of the printed line totals, read back from the PDF.
    printed = [int(re.sub(r"[$,.]", "", amount)) for amount in re.findall(
        r"F41\.1 \d+ \$[\d,]+\.\d\d (\$[\d,]+\.\d\d)", text)]
    assert len(printed) == len(draft.lines)
    assert sum(printed) == total
