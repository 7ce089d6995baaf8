"""The Good Faith Estimate PDF: every required element, Unicode names, US Letter, same bytes."""

import hashlib
import io
import re
import unicodedata
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from fontTools.ttLib import TTFont
from pypdf import PdfReader

from portal.estimates.document import (
    DIAGNOSIS_TBD,
    DISCLAIMERS,
    KEEP_A_COPY,
    TELEHEALTH,
    GfeDocument,
    LineItem,
    Provider,
    separately_scheduled_note,
)
from portal.estimates.pdf import (
    FONT_DIR,
    FONT_FILES,
    UnrenderableText,
    build_print_fonts,
    render_pdf,
    unrenderable_characters,
)

NPI_A = "1234567893"
NPI_B = "1245319599"
FOOTER = re.compile(r"Good Faith Estimate \S+ · page \d+ of \d+")


def make_document(**changes) -> GfeDocument:
    """Return a realistic two-provider, six-line estimate."""
    doc = GfeDocument(
        gfe_number="GFE-2026-0042",
        issue_date=date(2026, 1, 5),
        client_legal_name="Zoë Nguyễn-Ōtsuka",
        client_dob=date(1991, 7, 14),
        client_address="12 Walnut Street, Apt 3\nTrappe, PA 19426",
        primary_service="Individual psychotherapy (outpatient counselling)",
        period_start=date(2026, 1, 12),
        period_end=date(2026, 12, 31),
        frequency="Weekly, about 60 minutes",
        sessions_min=40,
        sessions_max=48,
        providers=(
            Provider("Colleen Example, LPC", NPI_A, "12-3456789",
                     "555 2nd Ave, Suite C 650, Collegeville, PA 19426", "PA"),
            Provider("Kristen Example, LCSW", NPI_B, "23-4567890", TELEHEALTH, "PA"),
        ),
        line_items=(
            LineItem.priced(NPI_A, "90791", "Diagnostic evaluation", 1, 20000, DIAGNOSIS_TBD),
            LineItem.priced(NPI_A, "90837", "Individual psychotherapy, 60 minutes", 44, 16000,
                            ("F41.1", "Z63.0")),
            LineItem.priced(NPI_A, "90839", "Crisis psychotherapy, first 60 minutes", 1, 22500,
                            ("F41.1",)),
            LineItem.priced(NPI_B, "90847", "Family psychotherapy with the client present", 2,
                            17500, ("F41.1", "F32.A")),
            LineItem.priced(NPI_B, "90846", "Family psychotherapy without the client", 1, 17000,
                            ("F41.1",)),
            LineItem.priced(NPI_B, "90853", "Group psychotherapy", 4, 6000, ("F41.1",)),
        ),
        separately_scheduled="Medication evaluation with an outside prescriber, if recommended.",
    )
    return replace(doc, **changes)


def normalize(text: str) -> str:
    """Compare text as a reader sees it: NFC, one space for any run of whitespace."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def pdf_text(data: bytes) -> str:
    pages = PdfReader(io.BytesIO(data)).pages
    return normalize(" ".join(FOOTER.sub(" ", page.extract_text()) for page in pages))


@pytest.fixture(scope="module")
def pdf_bytes() -> bytes:
    """Render the sample estimate once for the content checks."""
    return render_pdf(make_document())


@pytest.fixture(scope="module")
def text(pdf_bytes) -> str:
    """Return the sample PDF's text, footers removed."""
    return pdf_text(pdf_bytes)


@pytest.mark.parametrize(
    "expected",
    [
        "Good Faith Estimate",
        "GFE-2026-0042",
        "January 5, 2026",
        # practice
        "coeo",
        "555 2nd Ave, Suite C 650",
        "Collegeville, PA 19426",
        "(215) 360-3308",
        "team@coeocommunity.com",
        # client
        "Zoë Nguyễn-Ōtsuka",
        "July 14, 1991",
        "12 Walnut Street, Apt 3 Trappe, PA 19426",
        # care
        "Individual psychotherapy (outpatient counselling)",
        "January 12, 2026 to December 31, 2026",
        "Weekly, about 60 minutes",
        "40 to 48",
        # providers
        "Colleen Example, LPC",
        "Kristen Example, LCSW",
        NPI_A,
        NPI_B,
        "12-3456789",
        "23-4567890",
        "555 2nd Ave, Suite C 650, Collegeville, PA 19426",
        TELEHEALTH,
        "State PA",
        # itemized table
        "Diagnosis codes",
        "Unit charge",
        "Line total",
        "90791 Diagnostic evaluation TBD pending evaluation 1 $200.00 $200.00",
        "90837 Individual psychotherapy, 60 minutes F41.1, Z63.0 44 $160.00 $7,040.00",
        "90839 Crisis psychotherapy, first 60 minutes F41.1 1 $225.00 $225.00",
        "90847 Family psychotherapy with the client present F41.1, F32.A 2 $175.00 $350.00",
        "90846 Family psychotherapy without the client F41.1 1 $170.00 $170.00",
        "90853 Group psychotherapy F41.1 4 $60.00 $240.00",
        "Total for Colleen Example, LPC: $7,465.00",
        "Total for Kristen Example, LCSW: $760.00",
        "Total estimated charges: $8,225.00",
        # separately scheduled
        "Medication evaluation with an outside prescriber, if recommended.",
        separately_scheduled_note(make_document().practice),
        # disclaimers
        *DISCLAIMERS,
        "www.cms.gov/nosurprises",
        "1-800-985-3059",
        "120 calendar days",
        "$400",
        "not a contract",
        "Keep a copy of this Good Faith Estimate",
        KEEP_A_COPY,
    ],
)
def test_pdf_contains_required_element(text, expected):
    assert normalize(expected) in text


def test_pdf_is_us_letter(pdf_bytes):
    for page in PdfReader(io.BytesIO(pdf_bytes)).pages:
        assert (float(page.mediabox.width), float(page.mediabox.height)) == (612, 792)


def test_pdf_is_deterministic(pdf_bytes):
    other = make_document(gfe_number="GFE-2026-0099", client_legal_name="Дарья Ковалёва")
    render_pdf(other)  # a different render in between must leave no trace
    again = render_pdf(make_document())
    assert hashlib.sha256(again).hexdigest() == hashlib.sha256(pdf_bytes).hexdigest()


def test_pdf_creation_date_is_the_issue_date(pdf_bytes):
    created = PdfReader(io.BytesIO(pdf_bytes)).metadata.creation_date
    assert created == datetime(2026, 1, 5, tzinfo=UTC)


def test_different_documents_give_different_pdfs(pdf_bytes):
    assert render_pdf(make_document(sessions_max=47)) != pdf_bytes


def test_each_render_shows_its_own_unicode_names():
    for name in ("Дарья Ковалёва", "Zoë Nguyễn-Ōtsuka", "Ἀλέξανδρος Παππᾶς", "Łucja Żółć"):
        assert normalize(name) in pdf_text(render_pdf(make_document(client_legal_name=name)))


def test_long_table_breaks_across_pages_and_repeats_its_headings():
    lines = tuple(
        LineItem.priced(NPI_A, "90837", f"Psychotherapy session {n}", 1, 16000, ("F41.1",))
        for n in range(1, 41)
    )
    doc = make_document(line_items=(*lines, *make_document().lines_for(NPI_B)))
    reader = PdfReader(io.BytesIO(render_pdf(doc)))
    pages = [normalize(page.extract_text()) for page in reader.pages]
    assert len(pages) >= 3
    headings = "Code Description Diagnosis codes Qty Unit charge Line total"
    assert sum(page.count(headings) for page in pages) == 3  # table, continuation, 2nd table
    continued = [p for p in pages[1:] if p.startswith(f"{headings} 90837 Psychotherapy session")]
    assert len(continued) == 1
    text = " ".join(pages)
    for n in range(1, 41):
        assert f"Psychotherapy session {n} F41.1" in text
    assert "Total for Colleen Example, LPC: $6,400.00" in text
    assert "Total estimated charges: $7,160.00" in text


def test_single_session_count_is_printed_plainly():
    doc = make_document(sessions_min=12, sessions_max=12)
    assert "Number of sessions 12 " in pdf_text(render_pdf(doc))


@pytest.mark.parametrize(
    ("name", "missing"),
    [
        ("Zoë Nguyễn-Ōtsuka", []),
        ("山田 太郎", ["太", "山", "田", "郎"]),
        ("Alex\tRivera", ["\t"]),
        (  # Hebrew: right-to-left would print reversed without text shaping
            "\u05d3\u05e0\u05d4 \u05dc\u05d5\u05d9",
            ["\u05d3", "\u05d4", "\u05d5", "\u05d9", "\u05dc", "\u05e0"],
        ),
        ("Ἀλέξανδρος Παππᾶς ≥ ½ № €", []),
    ],
)
def test_characters_the_font_cannot_print_are_found(name, missing):
    assert unrenderable_characters(make_document(client_legal_name=name)) == missing


def test_pdf_refuses_to_print_a_name_as_blanks():
    with pytest.raises(UnrenderableText, match="山"):
        render_pdf(make_document(client_legal_name="山田 太郎"))


def test_shipped_print_fonts_are_what_the_generator_makes(tmp_path):
    for _, cut in FONT_FILES.values():
        (tmp_path / cut).unlink(missing_ok=True)
    build_print_fonts(target_dir=tmp_path)
    for full, cut in FONT_FILES.values():
        with TTFont(FONT_DIR / cut) as shipped, TTFont(tmp_path / cut) as fresh:
            assert shipped.getBestCmap() == fresh.getBestCmap()
            assert shipped.getGlyphOrder() == fresh.getGlyphOrder()
        with TTFont(FONT_DIR / full) as original, TTFont(FONT_DIR / cut) as shipped:
            assert shipped["name"].getDebugName(0) == original["name"].getDebugName(0)


def test_every_fixed_text_on_the_estimate_can_be_printed():
    doc = make_document(client_legal_name="", separately_scheduled="")
    assert unrenderable_characters(doc) == []
    fixed = "".join((*DISCLAIMERS, KEEP_A_COPY, separately_scheduled_note(doc.practice)))
    assert unrenderable_characters(make_document(separately_scheduled=fixed)) == []
