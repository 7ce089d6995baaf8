"""Render a Good Faith Estimate as a printable, deterministic US Letter PDF (fpdf2).

The same document always gives the same bytes (creation date is the issue date, no random ids),
so a SHA-256 of the PDF can be stored beside the sealed estimate and checked later.

The PDF embeds DejaVu Sans cut down to the scripts it can print correctly without text shaping
(PRINT_RANGES). Loading the full fonts (6,000+ glyphs each) was a third of every render; the cut
fonts are generated from the shipped full ones by build_print_fonts() and checked by the tests:
    .venv/bin/python -c "from portal.estimates.pdf import build_print_fonts; build_print_fonts()"
"""

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any

from fontTools import subset
from fontTools.ttLib import TTFont
from fpdf import FPDF, FontFace

from portal.estimates.document import (
    DISCLAIMERS,
    IF_BILLED_MORE,
    IF_BILLED_MORE_TITLE,
    KEEP_A_COPY,
    GfeDocument,
    LineItem,
    Provider,
    format_cents,
    separately_scheduled_note,
)

FONT_DIR = Path(__file__).resolve().parents[2] / "static" / "fonts"
FONT = "DejaVuSans"
# style -> (shipped full font, the cut-down font the PDF embeds)
FONT_FILES = {
    "": ("DejaVuSans.ttf", "DejaVuSans-GFE.ttf"),
    "B": ("DejaVuSans-Bold.ttf", "DejaVuSans-Bold-GFE.ttf"),
}
# Left-to-right alphabets and symbols that print correctly without shaping. Right-to-left and
# complex scripts would come out in the wrong order, so render_pdf refuses them instead.
PRINT_RANGES = (
    (0x0020, 0x007E),  # Basic Latin
    (0x00A0, 0x036F),  # Latin-1, Latin Extended-A/B, IPA, modifiers, combining marks
    (0x0370, 0x052F),  # Greek and Coptic, Cyrillic and its supplement
    (0x0530, 0x058F),  # Armenian
    (0x10A0, 0x10FF),  # Georgian
    (0x1E00, 0x1FFF),  # Latin Extended Additional (Vietnamese), Greek Extended
    (0x2000, 0x206F),  # general punctuation
    (0x20A0, 0x20CF),  # currency symbols
    (0x2100, 0x22FF),  # letterlike symbols, number forms, arrows, mathematical operators
)
MARGIN_MM = 18
INK = (38, 38, 38)
MUTED = (96, 96, 96)
RULE = (200, 200, 200)
HEADING_FILL = (242, 238, 228)
# Relative widths: code, description, diagnosis codes, quantity, unit charge, line total.
COLUMNS = (16, 64, 30, 10, 26, 26)
TABLE_HEADINGS = ("Code", "Description", "Diagnosis codes", "Qty", "Unit charge", "Line total")


def build_print_fonts(source_dir: Path = FONT_DIR, target_dir: Path = FONT_DIR) -> list[Path]:
    """Cut the shipped DejaVu fonts down to PRINT_RANGES; returns the files written."""
    options = subset.Options()
    options.layout_features = []  # fpdf2 draws without shaping and drops these tables anyway
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "MATH", "FFTM"]
    options.name_IDs = ["*"]  # keep the copyright and licence notices the licence requires
    options.name_languages = ["*"]
    options.notdef_outline = True
    options.glyph_names = True
    unicodes = [code for first, last in PRINT_RANGES for code in range(first, last + 1)]
    written = []
    for full, cut in FONT_FILES.values():
        with TTFont(source_dir / full, recalcTimestamp=False) as font:
            subsetter = subset.Subsetter(options)
            subsetter.populate(unicodes=unicodes)
            subsetter.subset(font)
            font.save(target_dir / cut)
        written.append(target_dir / cut)
    return written


class UnrenderableText(ValueError):
    """The estimate holds characters the PDF font has no glyph for (they would print blank)."""


class _GfePdf(FPDF):
    """FPDF with a footer naming the estimate and the page."""

    footer_text = ""

    def footer(self) -> None:
        """Print the estimate number and page count at the bottom of every page."""
        self.set_y(-12)
        self.set_font(FONT, "", 8)
        self.set_text_color(*MUTED)
        self.cell(0, 5, f"{self.footer_text} · page {self.page_no()} of {{nb}}", align="C")


def long_date(day: date) -> str:
    """Format a date the way people write it, e.g. "June 1, 2026"."""
    return f"{day:%B} {day.day}, {day.year}"


@cache
def _covered_codepoints() -> frozenset[int]:
    # Both styles print document text, so only what both can show is safe.
    covered = None
    for _, name in FONT_FILES.values():
        with TTFont(FONT_DIR / name, lazy=True) as font:
            codepoints = frozenset(font.getBestCmap())
        covered = codepoints if covered is None else covered & codepoints
    return covered or frozenset()


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def unrenderable_characters(doc: GfeDocument) -> list[str]:
    """Return the characters in the estimate that the PDF would print blank, so a form can ask."""
    covered = _covered_codepoints()
    found = {
        char for text in _strings(doc.to_dict()) for char in text
        if char != "\n" and ord(char) not in covered
    }
    return sorted(found)


def render_pdf(doc: GfeDocument) -> bytes:
    """Return the estimate as PDF bytes; identical input gives identical bytes.

    Raises UnrenderableText rather than issue an estimate with a blank where a name should be.
    """
    missing = unrenderable_characters(doc)
    if missing:
        shown = " ".join(repr(char) if not char.isprintable() else char for char in missing)
        raise UnrenderableText(f"The estimate's font cannot print these characters: {shown}")
    pdf = _new_pdf(doc)
    _title(pdf, doc)
    _client_and_care(pdf, doc)
    _providers(pdf, doc)
    _itemized(pdf, doc)
    _separately_scheduled(pdf, doc)
    _disclaimers(pdf)
    _keep_a_copy(pdf)
    return bytes(pdf.output())


def _new_pdf(doc: GfeDocument) -> _GfePdf:
    pdf = _GfePdf(orientation="portrait", unit="mm", format="letter")
    pdf.set_creation_date(datetime.combine(doc.issue_date, time(), tzinfo=UTC))
    pdf.set_title(f"Good Faith Estimate {doc.gfe_number}")
    pdf.set_author(doc.practice.get("name", ""))
    pdf.set_lang("en-US")
    pdf.footer_text = f"Good Faith Estimate {doc.gfe_number}"
    for style, (_, name) in FONT_FILES.items():
        pdf.add_font(FONT, style, str(FONT_DIR / name))
    pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
    pdf.set_auto_page_break(auto=True, margin=MARGIN_MM)
    pdf.add_page()
    pdf.set_text_color(*INK)
    return pdf


def _text(pdf: FPDF, text: str, *, size: float = 10, bold: bool = False, height: float = 5) -> None:
    pdf.set_font(FONT, "B" if bold else "", size)
    pdf.multi_cell(0, height, text, align="L", new_x="LMARGIN", new_y="NEXT")


def _heading(pdf: FPDF, text: str, *, keep_mm: float = 30) -> None:
    # Start a new page rather than leave a heading alone at the foot of one.
    if pdf.will_page_break(keep_mm):
        pdf.add_page()
    pdf.ln(4)
    _text(pdf, text, size=12, bold=True, height=6)
    pdf.set_draw_color(*RULE)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    pdf.ln(2)


def _pairs(pdf: FPDF, pairs: list[tuple[str, str]], *, label_mm: float = 48) -> None:
    for label, value in pairs:
        pdf.set_font(FONT, "B", 10)
        pdf.cell(label_mm, 5, label)
        pdf.set_font(FONT, "", 10)
        pdf.multi_cell(0, 5, value, align="L", new_x="LMARGIN", new_y="NEXT")


def _title(pdf: FPDF, doc: GfeDocument) -> None:
    practice = doc.practice
    _text(pdf, "Good Faith Estimate", size=20, bold=True, height=10)
    pdf.set_text_color(*MUTED)
    _text(pdf, "An estimate of the expected charges for your care, for clients paying for "
               "themselves (self-pay or uninsured).", size=9, height=4.5)
    pdf.set_text_color(*INK)
    pdf.ln(3)
    top = pdf.get_y()
    _pairs(pdf, [("Estimate number", doc.gfe_number), ("Issue date", long_date(doc.issue_date))],
           label_mm=40)
    left_bottom = pdf.get_y()
    pdf.set_xy(pdf.w / 2 + 10, top)
    pdf.set_font(FONT, "B", 10)
    city, state, postal = (practice.get(key, "") for key in ("city", "state", "postal_code"))
    contact = [practice.get("street", ""), f"{city}, {state} {postal}",
               practice.get("phone", ""), practice.get("email", "")]
    pdf.multi_cell(0, 5, practice.get("name", ""), align="L", new_x="LEFT", new_y="NEXT")
    pdf.set_font(FONT, "", 10)
    pdf.multi_cell(0, 5, "\n".join(contact), align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(max(left_bottom, pdf.get_y()))


def _client_and_care(pdf: FPDF, doc: GfeDocument) -> None:
    _heading(pdf, "Client")
    dob = long_date(doc.client_dob) if doc.client_dob else ""
    _pairs(pdf, [("Name", doc.client_legal_name), ("Date of birth", dob),
                 ("Address", doc.client_address)])
    _heading(pdf, "Your care")
    if doc.sessions_min == doc.sessions_max:
        sessions = f"{doc.sessions_max}"
    else:
        sessions = (f"{doc.sessions_min} to {doc.sessions_max} (this estimate prices "
                    f"{doc.sessions_max}, the higher number)")
    _pairs(pdf, [
        ("Primary service", doc.primary_service),
        # 45 CFR 149.610(c)(1)(ii): the date the primary service is scheduled, when it is.
        ("Scheduled for", doc.service_date_text),
        ("Period of care", f"{long_date(doc.period_start)} to {long_date(doc.period_end)}"),
        ("How often", doc.frequency),
        ("Number of sessions", sessions),
    ])


def _providers(pdf: FPDF, doc: GfeDocument) -> None:
    _heading(pdf, "Providers")
    for provider in doc.providers:
        if pdf.will_page_break(27):
            pdf.add_page()
        _text(pdf, provider.name, bold=True)
        _pairs(pdf, [("NPI", provider.npi), ("Tax ID (TIN)", provider.tin),
                     ("Location", provider.location), ("State", provider.state)], label_mm=34)
        pdf.ln(2)


def _itemized(pdf: FPDF, doc: GfeDocument) -> None:
    totals = doc.provider_totals()
    first = next(iter(totals), "")
    _heading(pdf, "Itemized estimate", keep_mm=14 + _block_mm(len(doc.lines_for(first))))
    for npi, total in totals.items():
        provider = doc.provider(npi) or Provider(f"NPI {npi}", npi, "", "", "")
        if pdf.will_page_break(_block_mm(len(doc.lines_for(npi)))):
            pdf.add_page()
        _text(pdf, f"{provider.name} (NPI {npi})", bold=True)
        pdf.ln(1)
        _line_table(pdf, doc.lines_for(npi))
        pdf.set_font(FONT, "B", 10)
        pdf.cell(0, 7, f"Total for {provider.name}: {format_cents(total)}", align="R",
                 new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    if pdf.will_page_break(12):
        pdf.add_page()
    pdf.set_fill_color(*HEADING_FILL)
    pdf.set_font(FONT, "B", 12)
    pdf.cell(0, 9, f"Total estimated charges: {format_cents(doc.total_cents)}", align="R",
             fill=True, new_x="LMARGIN", new_y="NEXT")


def _block_mm(lines: int) -> float:
    # Keep a short table on one page with its total; a long one breaks and repeats its headings.
    return min(24 + 10 * lines, 110)


def _line_table(pdf: FPDF, items: tuple[LineItem, ...]) -> None:
    pdf.set_font(FONT, "", 9)
    pdf.set_draw_color(*RULE)
    headings = FontFace(emphasis="BOLD", fill_color=HEADING_FILL)
    with pdf.table(
        col_widths=COLUMNS,
        text_align=("LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT"),
        headings_style=headings,
        borders_layout="HORIZONTAL_LINES",
        line_height=4.8,
        padding=1.2,
        repeat_headings=1,
        first_row_as_headings=True,
    ) as table:
        table.row(TABLE_HEADINGS)
        for item in items:
            table.row((
                item.cpt_code,
                "\n".join(filter(None, (item.description, item.no_charge_text))),
                item.diagnosis_text,
                str(item.quantity),
                format_cents(item.unit_cents),
                format_cents(item.line_total_cents),
            ))


def _separately_scheduled(pdf: FPDF, doc: GfeDocument) -> None:
    _heading(pdf, "Items or services scheduled separately")
    _text(pdf, separately_scheduled_note(doc.practice), size=9, height=4.5)
    pdf.ln(1)
    _text(pdf, doc.separately_scheduled)


def _disclaimers(pdf: FPDF) -> None:
    _heading(pdf, "Please read", keep_mm=60)
    pdf.set_font(FONT, "", 10)
    for number, text in enumerate(DISCLAIMERS, start=1):
        # Keep each disclaimer whole on one page; a width estimate is much cheaper than a dry run.
        lines = math.ceil(1.1 * pdf.get_string_width(text) / (pdf.epw - 7)) + 1
        if pdf.will_page_break(5 * lines):
            pdf.add_page()
        pdf.cell(7, 5, f"{number}.")
        pdf.multi_cell(0, 5, text, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1.5)
    _heading(pdf, IF_BILLED_MORE_TITLE, keep_mm=40)
    pdf.set_font(FONT, "", 10)
    for text in IF_BILLED_MORE:
        lines = math.ceil(1.1 * pdf.get_string_width(text) / (pdf.epw - 7)) + 1
        if pdf.will_page_break(5 * lines):
            pdf.add_page()
        pdf.cell(7, 5, "•")
        pdf.multi_cell(0, 5, text, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1.5)


def _keep_a_copy(pdf: FPDF) -> None:
    pdf.ln(2)
    if pdf.will_page_break(16):
        pdf.add_page()
    pdf.set_fill_color(*HEADING_FILL)
    pdf.set_font(FONT, "B", 10)
    pdf.multi_cell(0, 5.5, KEEP_A_COPY, align="L", fill=True, padding=2,
                   new_x="LMARGIN", new_y="NEXT")
