"""Drafts: saved half done, checked all at once, turned into exactly the document that is issued."""

import json
from dataclasses import replace
from datetime import date

import pytest

from portal.estimates.compliance import check
from portal.estimates.document import DIAGNOSIS_TBD
from portal.estimates.drafts import (
    Draft,
    DraftLine,
    DraftProvider,
    assemble,
    without_blank_rows,
)
from tests.estimates.conftest import NPI_A, NPI_B, complete_draft

ISSUED = date(2026, 3, 2)


def fields(problems) -> list[str]:
    return [p.field for p in problems]


def test_a_complete_draft_assembles_with_no_problems():
    document, problems = assemble(complete_draft(), gfe_number="GFE-2026-0001",
                                  issue_date=ISSUED)
    assert problems == []
    assert document is not None and check(document) == []
    assert document.total_cents == 200_00 + 25 * 160_00 + 2 * 175_00
    assert document.provider_totals() == {NPI_A: 4200_00, NPI_B: 350_00}
    assert document.line_items[0].diagnosis_codes == DIAGNOSIS_TBD


def test_an_empty_draft_lists_every_missing_thing_at_once():
    document, problems = assemble(Draft(), gfe_number="GFE-2026-0001", issue_date=ISSUED)
    assert document is None
    assert {"client_legal_name", "client_dob", "client_address", "primary_service",
            "period_start", "period_end", "frequency", "sessions_min", "sessions_max",
            "providers", "line_items"} <= set(fields(problems))


def test_problems_come_in_the_order_the_builder_asks():
    draft = complete_draft(client_legal_name="", frequency="",
                           providers=(DraftProvider("", "1234567890", "123-45-6789", "", "PA"),),
                           lines=(DraftLine(None, "", "", None, None),))
    _, problems = assemble(draft, gfe_number="GFE-2026-0001", issue_date=ISSUED)
    order = fields(problems)
    assert order.index("client_legal_name") < order.index("frequency")
    assert order.index("frequency") < order.index("providers[0].name")
    assert order.index("providers[0].tin") < order.index("line_items[0].provider_npi")
    assert order.index("line_items[0].cpt_code") < order.index("line_items[0].quantity")


def test_a_line_without_provider_quantity_or_charge_is_reported_once_each():
    draft = complete_draft(lines=(DraftLine(None, "90837", "Psychotherapy", None, None,
                                            ("F41.1",)),))
    document, problems = assemble(draft, gfe_number="GFE-2026-0001", issue_date=ISSUED)
    assert document is None
    messages = {p.field: p.message for p in problems}
    assert messages["line_items[0].provider_npi"] == "Line 1: choose the provider."
    assert messages["line_items[0].quantity"] == "Line 1: enter the quantity."
    assert messages["line_items[0].unit_cents"] == "Line 1: enter the charge per unit."
    assert fields(problems).count("line_items[0].provider_npi") == 1


def test_codes_and_tbd_together_are_refused():
    line = DraftLine(0, "90791", "Evaluation", 1, 200_00, ("F41.1",), diagnosis_tbd=True)
    _, problems = assemble(complete_draft(lines=(line,), providers=complete_draft().providers[:1]),
                           gfe_number="GFE-2026-0001", issue_date=ISSUED)
    assert "line_items[0].diagnosis_codes" in fields(problems)


def test_compliance_problems_and_unprintable_names_are_listed_together():
    draft = complete_draft(
        client_legal_name="سارة Example",
        period_end=date(2028, 1, 1),
        providers=(replace(complete_draft().providers[0], npi="1234567890", tin="123-45-6789"),
                   complete_draft().providers[1]),
    )
    _, problems = assemble(draft, gfe_number="GFE-2026-0001", issue_date=ISSUED)
    by_field = {p.field: p.message for p in problems}
    assert "fails its check digit" in by_field["providers[0].npi"]
    assert "Social Security number" in by_field["providers[0].tin"]
    assert "12 months" in by_field["period_end"]
    assert "PDF cannot print" in by_field["client_legal_name"]
    assert "123-45-6789" not in by_field["providers[0].tin"]


def test_latin_names_beyond_ascii_are_printable():
    _, problems = assemble(complete_draft(client_legal_name="Zoë Nguyễn-Ōtsuka"),
                           gfe_number="GFE-2026-0001", issue_date=ISSUED)
    assert problems == []


def test_blank_rows_are_dropped_and_lines_follow_their_provider():
    draft = Draft(
        providers=(DraftProvider(), DraftProvider("Kristen", NPI_B, "23-4567890", "x", "PA"),
                   DraftProvider(state="PA")),
        lines=(DraftLine(), DraftLine(1, "90847", "Family", 2, 175_00), DraftLine(provider=1)),
    )
    cleaned = without_blank_rows(draft)
    assert [p.npi for p in cleaned.providers] == [NPI_B]
    assert len(cleaned.lines) == 1 and cleaned.lines[0].provider == 0


def test_a_draft_survives_its_sealed_json_form():
    draft = complete_draft()
    assert Draft.from_dict(json.loads(json.dumps(draft.to_dict()))) == draft


def test_an_unknown_draft_version_is_refused():
    with pytest.raises(ValueError):
        Draft.from_dict({"draft_version": 99})


def test_a_correction_starts_from_the_issued_document():
    document, _ = assemble(complete_draft(), gfe_number="GFE-2026-0001", issue_date=ISSUED)
    again, problems = assemble(Draft.from_document(document), gfe_number="GFE-2026-0002",
                               issue_date=ISSUED)
    assert problems == []
    assert replace(again, gfe_number="GFE-2026-0001") == document
