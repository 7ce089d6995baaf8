"""Time issuing a Good Faith Estimate end to end, and serving its page and PDF.

Issuing = the whole compliance check, rendering the PDF, sealing document and PDF under the
client's key, numbering, the audit event and the outbox mail, committed (SQLite in a temporary
directory). Serving = the client's HTML view and the PDF download through the Flask test client.

Run from the repository root: .venv/bin/python bench/gfe_issue_bench.py [estimates]
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from portal import create_app  # noqa: E402
from portal.extensions import db  # noqa: E402


def p95(values: list[float]) -> float:
    """Return the 95th percentile (inclusive method)."""
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def line(label: str, values: list[float]) -> str:
    return f"  {label:<37} median {statistics.median(values):7.1f} ms   p95 {p95(values):7.1f} ms"


def main() -> None:
    """Issue N estimates, then open and download each as its client; print the timings."""
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    tmp = tempfile.mkdtemp()
    app = create_app({"ENV_NAME": "testing", "INSTANCE_PATH": tmp,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/bench.db"})
    with app.app_context():
        db.create_all()
        from portal.crypto import ensure_canaries
        ensure_canaries()
        from portal.estimates import drafting, issuing
        from portal.practice import today as practice_today
        from tests.estimates.conftest import Practice, complete_draft, sign_in

        practice = Practice()
        drafts = []
        for _ in range(runs + 1):
            estimate = drafting.create_draft(practice.therapist, practice.client)
            drafting.save_draft(practice.therapist, estimate,
                               complete_draft(practice_today()))
            drafts.append(estimate.id)
        issue_ms = []
        for number, draft_id in enumerate(drafts):
            start = time.perf_counter()
            issuing.issue(practice.therapist, draft_id)
            if number:  # the first one warms caches
                issue_ms.append((time.perf_counter() - start) * 1000)
        client = sign_in(app.test_client(), practice.client)
        page_ms, pdf_ms = [], []
        for draft_id in drafts[1:]:
            start = time.perf_counter()
            assert client.get(f"/estimates/{draft_id}").status_code == 200
            page_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            assert client.get(f"/estimates/{draft_id}/pdf").status_code == 200
            pdf_ms.append((time.perf_counter() - start) * 1000)
    print(f"{runs} Good Faith Estimates (two providers, three lines), SQLite:")
    print(line("issue (check, PDF, seal, commit)", issue_ms))
    print(line("client's page (first view recorded)", page_ms))
    print(line("PDF download (open, verify hash)", pdf_ms))


if __name__ == "__main__":
    main()
