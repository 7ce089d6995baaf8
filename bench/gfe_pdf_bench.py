"""Time rendering a Good Faith Estimate PDF, against a bare one-page fpdf2 "hello" PDF.

Run from the repository root: .venv/bin/python bench/gfe_pdf_bench.py [renders]
"""

import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fpdf import FPDF  # noqa: E402

from portal.estimates.document import (  # noqa: E402
    DIAGNOSIS_TBD,
    TELEHEALTH,
    GfeDocument,
    LineItem,
    Provider,
)
from portal.estimates.pdf import render_pdf  # noqa: E402

TARGET_MS = 100
NPI_A = "1234567893"
NPI_B = "1245319599"


def realistic_document() -> GfeDocument:
    """Return a two-provider, six-line estimate like the practice issues."""
    return GfeDocument(
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


def hello_pdf() -> bytes:
    """Render the smallest useful fpdf2 PDF: one page, one line, a core font."""
    pdf = FPDF(format="letter")
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text="hello")
    return bytes(pdf.output())


def timings_ms(render: Callable[[], bytes], runs: int) -> list[float]:
    """Return each run's wall time in milliseconds, after one warm-up run."""
    render()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        render()
        times.append((time.perf_counter() - start) * 1000)
    return times


def p95(values: list[float]) -> float:
    """Return the 95th percentile (inclusive method)."""
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def main() -> None:
    """Print median and p95 render times and the ratio to the bare fpdf2 PDF."""
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    doc = realistic_document()
    gfe = timings_ms(lambda: render_pdf(doc), runs)
    hello = timings_ms(hello_pdf, runs)
    gfe_median, hello_median = statistics.median(gfe), statistics.median(hello)
    verdict = "met" if gfe_median < TARGET_MS else "NOT met"
    print(f"GFE PDF ({len(render_pdf(doc)):,} bytes), {runs} renders:")
    print(f"  median {gfe_median:7.1f} ms   p95 {p95(gfe):7.1f} ms")
    print(f"bare fpdf2 hello PDF, {runs} renders:")
    print(f"  median {hello_median:7.2f} ms   p95 {p95(hello):7.2f} ms")
    print(f"ratio (median GFE / median hello): {gfe_median / hello_median:.0f}x")
    print(f"target median < {TARGET_MS} ms: {verdict}")


if __name__ == "__main__":
    main()
