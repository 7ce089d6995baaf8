"""The Good Faith Estimate document and its compliance check (45 CFR 149.610)."""

import json
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.estimates.compliance import check, luhn_npi_valid, normalize_tin
from portal.estimates.document import (
    DIAGNOSIS_TBD,
    TELEHEALTH,
    GfeDocument,
    LineItem,
    Provider,
    format_cents,
)

NPI_A = "1234567893"
NPI_B = "1245319599"


def make_document(**changes) -> GfeDocument:
    """Return a valid two-provider estimate, with any field replaced."""
    doc = GfeDocument(
        gfe_number="GFE-2026-0001",
        issue_date=date(2026, 1, 5),
        client_legal_name="Alex Rivera",
        client_dob=date(1990, 4, 2),
        client_address="1 Main Street, Trappe, PA 19426",
        primary_service="Individual psychotherapy",
        period_start=date(2026, 1, 12),
        period_end=date(2026, 12, 31),
        frequency="Weekly",
        sessions_min=30,
        sessions_max=40,
        providers=(
            Provider("Colleen Example, LPC", NPI_A, "12-3456789", "555 2nd Ave, Collegeville",
                     "PA"),
            Provider("Kristen Example, LCSW", NPI_B, "23-4567890", TELEHEALTH, "PA"),
        ),
        line_items=(
            LineItem.priced(NPI_A, "90791", "Diagnostic evaluation", 1, 20000, DIAGNOSIS_TBD),
            LineItem.priced(NPI_A, "90837", "Psychotherapy, 60 minutes", 39, 16000,
                            ("F41.1", "Z63.0")),
            LineItem.priced(NPI_B, "90847", "Family psychotherapy", 2, 17500, ("F32.A",)),
        ),
    )
    return replace(doc, **changes)


def with_provider(index: int, **changes) -> GfeDocument:
    doc = make_document()
    providers = list(doc.providers)
    providers[index] = replace(providers[index], **changes)
    return replace(doc, providers=tuple(providers))


def with_line(index: int, **changes) -> GfeDocument:
    doc = make_document()
    lines = list(doc.line_items)
    lines[index] = replace(lines[index], **changes)
    return replace(doc, line_items=tuple(lines))


def fields(problems) -> set[str]:
    return {p.field for p in problems}


def test_valid_document_has_no_problems():
    assert check(make_document()) == []


@pytest.mark.parametrize(
    ("npi", "valid"),
    [
        ("1234567893", True),
        ("1245319599", True),
        ("1234567890", False),  # wrong check digit
        ("1234567894", False),  # wrong check digit
        ("123456789", False),  # 9 digits
        ("12345678933", False),  # 11 digits
        ("12345678a3", False),
        ("1234 567893", False),
        ("", False),
    ],
)
def test_npi_luhn_check_with_80840_prefix(npi, valid):
    assert luhn_npi_valid(npi) is valid


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_exactly_one_check_digit_makes_an_npi_valid(first_nine):
    valid = [d for d in "0123456789" if luhn_npi_valid(first_nine + d)]
    assert len(valid) == 1


def test_wrong_npi_check_digit_is_explained_in_plain_words():
    problems = check(with_provider(0, npi="1234567890"))
    assert fields(problems) == {"providers[0].npi", "providers[0]", "line_items[0].provider_npi",
                                "line_items[1].provider_npi"}
    npi_problem = next(p for p in problems if p.field == "providers[0].npi")
    assert "1234567890 fails its check digit" in npi_problem.message


@pytest.mark.parametrize(
    ("tin", "normalized"),
    [
        ("12-3456789", "12-3456789"),
        ("123456789", "12-3456789"),
        (" 98-7654321 ", "98-7654321"),
        ("01-0000001", "01-0000001"),
        ("99-1234567", "99-1234567"),
    ],
)
def test_ein_is_accepted_and_normalized(tin, normalized):
    assert normalize_tin(tin) == normalized


@pytest.mark.parametrize(
    "tin",
    [
        "123-45-6789",  # SSN shape
        "00-1234567",
        "07-1234567",
        "08-1234567",
        "09-1234567",
        "17-1234567",
        "18-1234567",
        "19-1234567",
        "28-1234567",
        "29-1234567",
        "49-1234567",
        "69-1234567",
        "70-1234567",
        "78-1234567",
        "79-1234567",
        "89-1234567",
        "96-1234567",
        "97-1234567",
        "1234-56789",
        "12345678",
        "1234567890",
        "ab-cdefghi",
        "",
    ],
)
def test_tin_that_is_not_a_valid_ein_is_refused(tin):
    with pytest.raises(ValueError, match=r"\w"):
        normalize_tin(tin)


def test_ssn_shaped_tin_is_refused_without_repeating_it():
    problems = check(with_provider(1, tin="401-73-9182"))
    assert fields(problems) == {"providers[1].tin"}
    message = problems[0].message
    assert "Social Security number" in message
    assert "401" not in message
    assert "9182" not in message


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        ("90837", True),
        ("90791", True),
        ("0362T", True),  # Category III
        ("3074F", True),  # Category II
        ("0001U", True),  # proprietary laboratory analysis
        ("G0444", True),  # HCPCS Level II
        ("H0031", True),
        ("V5008", True),
        ("9083", False),
        ("908370", False),
        ("90837A", False),
        ("0362X", False),
        ("W1234", False),
        ("g0444", False),
        ("ABCDE", False),
        ("", False),
    ],
)
def test_cpt_and_hcpcs_code_forms(code, valid):
    # One session, so the recurring-care rule (the sessions are psychotherapy codes) stays out.
    problems = check(replace(with_line(1, cpt_code=code), sessions_min=1, sessions_max=1))
    assert (fields(problems) == set()) is valid
    if not valid:
        assert fields(problems) == {"line_items[1].cpt_code"}


@pytest.mark.parametrize(
    ("codes", "valid"),
    [
        (("F41.1",), True),
        (("F32.A",), True),
        (("Z63.0",), True),
        (("F43.10", "F41.9"), True),
        (("S72.0011",), True),
        (("F41",), True),
        (DIAGNOSIS_TBD, True),
        ((), False),
        (("41.1",), False),
        (("F4",), False),
        (("F41.",), False),
        (("F41.12345",), False),
        (("f41.1",), False),
        (("FF1.1",), False),
        (("F41-1",), False),
        (("F411",), False),
        (("F41.1", "nope"), False),
        ("TBD", False),
    ],
)
def test_icd10_code_forms(codes, valid):
    problems = check(with_line(1, diagnosis_codes=codes))
    assert (problems == []) is valid
    assert fields(problems) <= {"line_items[1].diagnosis_codes"}


@pytest.mark.parametrize(
    ("start", "end", "valid"),
    [
        (date(2026, 1, 1), date(2026, 12, 31), True),
        (date(2026, 1, 1), date(2027, 1, 1), False),
        (date(2026, 3, 15), date(2027, 3, 14), True),
        (date(2026, 3, 15), date(2027, 3, 15), False),
        (date(2028, 2, 29), date(2029, 2, 28), True),
        (date(2028, 2, 29), date(2029, 3, 1), False),
        (date(2026, 5, 1), date(2026, 5, 1), True),
        (date(2026, 5, 1), date(2026, 4, 30), False),
        (date(2026, 1, 1), date(2027, 6, 30), False),
    ],
)
def test_period_is_at_most_twelve_months_and_ends_after_it_starts(start, end, valid):
    problems = check(make_document(period_start=start, period_end=end))
    assert (problems == []) is valid
    assert fields(problems) <= {"period_end"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"quantity": 0, "line_total_cents": 0}, "line_items[1].quantity"),
        ({"quantity": -1, "line_total_cents": -16000}, "line_items[1].quantity"),
        ({"unit_cents": -1, "line_total_cents": -39}, "line_items[1].unit_cents"),
        ({"line_total_cents": 624001}, "line_items[1].line_total_cents"),
        ({"description": " "}, "line_items[1].description"),
        ({"provider_npi": "1982765436"}, "line_items[1].provider_npi"),
    ],
)
def test_line_item_problems(changes, field):
    assert fields(check(with_line(1, **changes))) == {field}


def test_free_line_is_allowed():
    """A $0.00 line passes when it says why there is no charge (see test_estimate_contents)."""
    assert check(with_line(1, unit_cents=0, line_total_cents=0,
                           no_charge_reason="courtesy")) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "providers[1].name"),
        ({"location": "  "}, "providers[1].location"),
        ({"state": ""}, "providers[1].state"),
        ({"state": "Pennsylvania"}, "providers[1].state"),
        ({"npi": "123"}, "providers[1].npi"),
    ],
)
def test_provider_problems(changes, field):
    assert field in fields(check(with_provider(1, **changes)))


def test_provider_without_line_items_is_a_problem():
    doc = make_document()
    doc = replace(doc, line_items=doc.lines_for(NPI_A))
    assert fields(check(doc)) == {"providers[1]"}


def test_same_npi_listed_twice_is_a_problem():
    doc = make_document()
    doc = replace(doc, providers=(*doc.providers, doc.providers[0]))
    assert "providers[2].npi" in fields(check(doc))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"client_legal_name": ""}, "client_legal_name"),
        ({"client_dob": None}, "client_dob"),
        ({"client_dob": date(2026, 1, 6)}, "client_dob"),
        ({"client_address": " "}, "client_address"),
        ({"gfe_number": ""}, "gfe_number"),
        ({"primary_service": ""}, "primary_service"),
        ({"frequency": ""}, "frequency"),
        ({"separately_scheduled": ""}, "separately_scheduled"),
        ({"sessions_min": 0}, "sessions_min"),
        ({"sessions_max": 29}, "sessions_max"),
        ({"providers": ()}, "providers"),
        ({"practice": {"name": "coeo"}}, "practice.phone"),
    ],
)
def test_required_fields(changes, field):
    assert field in fields(check(make_document(**changes)))


def test_check_lists_every_problem_at_once():
    doc = make_document(
        client_legal_name="",
        period_end=date(2027, 2, 1),
        providers=(
            Provider("Colleen Example, LPC", "1234567890", "123-45-6789", "", "PA"),
            Provider("Kristen Example, LCSW", NPI_B, "07-1234567", TELEHEALTH, "PA"),
        ),
        line_items=(
            LineItem("1234567890", "9083", "Evaluation", 0, 20000, ("F41.1",), 0),
            LineItem(NPI_B, "90847", "Family psychotherapy", 2, 17500, ("41.1",), 30000),
        ),
    )
    assert fields(check(doc)) == {
        "client_legal_name",
        "period_end",
        "providers[0].npi",
        "providers[0].tin",
        "providers[0].location",
        "providers[1].tin",
        "line_items[0].cpt_code",
        "line_items[0].quantity",
        "line_items[1].diagnosis_codes",
        "line_items[1].line_total_cents",
        "line_items",  # recurring care with no line of individual psychotherapy sessions
    }


def test_totals_per_provider_and_overall():
    doc = make_document()
    assert doc.provider_totals() == {NPI_A: 20000 + 39 * 16000, NPI_B: 2 * 17500}
    assert doc.total_cents == 20000 + 39 * 16000 + 2 * 17500
    assert list(doc.provider_totals()) == [NPI_A, NPI_B]


def test_provider_totals_use_the_declared_line_totals():
    doc = with_line(2, line_total_cents=1)
    assert doc.provider_totals()[NPI_B] == 1
    assert doc.total_cents == 20000 + 39 * 16000 + 1


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (0, "$0.00"),
        (5, "$0.05"),
        (16000, "$160.00"),
        (123456, "$1,234.56"),
        (123456789, "$1,234,567.89"),
        (-2500, "-$25.00"),
    ],
)
def test_format_cents(cents, text):
    assert format_cents(cents) == text


@pytest.mark.parametrize("dob", [date(1990, 4, 2), None])
def test_document_round_trips_through_json(dob):
    doc = make_document(client_dob=dob, client_legal_name="Zoë Nguyễn-Ōtsuka")
    stored = json.dumps(doc.to_dict(), ensure_ascii=False, sort_keys=True)
    restored = GfeDocument.from_dict(json.loads(stored))
    assert restored == doc
    assert restored.line_items[0].diagnosis_codes == DIAGNOSIS_TBD
    assert restored.line_items[1].diagnosis_codes == ("F41.1", "Z63.0")
    assert json.loads(stored)["issue_date"] == "2026-01-05"


def test_unknown_schema_version_is_refused():
    data = make_document().to_dict() | {"version": 99}
    with pytest.raises(ValueError, match="version"):
        GfeDocument.from_dict(data)
