"""An issued estimate never changes: no route edits or deletes it, whoever asks and however."""

import hashlib

import pytest

from portal.estimates import billing, content, totals
from portal.estimates.models import GoodFaithEstimate
from portal.extensions import db
from portal.practice import today as practice_today
from tests.estimates.conftest import builder_payload, complete_draft, csrf, sign_in

# Routes that may answer an issued id without touching its content, and how.
NON_CONTENT = {
    "estimates.show": {"GET"},
    "estimates.download": {"GET"},
    "estimates.acknowledge": {"POST"},  # delivery evidence
    "estimates.correct": {"POST"},  # makes a new draft; the original stays as it is
    "estimates.renew": {"POST"},  # likewise
    "estimates.record_bill": {"POST"},  # billing, beside the estimate
    "estimates.void_bill": {"POST"},
}


def fingerprint(estimate_id) -> dict:
    """Everything that must never change once issued, read fresh from the database."""
    db.session.expire_all()
    e = db.session.get(GoodFaithEstimate, estimate_id)
    return {
        "document": content.open_document(e).to_dict(),
        "pdf": hashlib.sha256(content.open_pdf(e)).hexdigest(),
        "stored_digest": e.pdf_digest, "number": e.number, "issue_date": e.issue_date,
        "total": totals.total_of(e), "period": (e.period_start, e.period_end),
        "client": e.client_id, "status": e.status, "supersedes": e.supersedes_id,
    }


def test_no_route_edits_or_deletes_an_issued_estimate(app, practice):
    estimate = practice.issued(period_start=practice_today())  # a bill today is for its care
    billing.record_bill(practice.therapist, estimate, provider_position=0, amount_cents=100,
                        bill_date=practice_today())
    bill_id = billing.summary_of(estimate, content.open_document(estimate)).bills[0].id
    before = fingerprint(estimate.id)
    rules = [r for r in app.url_map.iter_rules()
             if r.endpoint.startswith("estimates.") and "estimate_id" in r.arguments]
    assert len(rules) >= 10
    other = complete_draft(practice_today(), client_legal_name="Someone Else",
                           frequency="Daily")
    unexpected = []
    for user in (practice.therapist, practice.admin, practice.client):
        client = sign_in(app.test_client(), user)
        token = csrf(client)
        payload = builder_payload(other, token=token, action="check")
        payload.update({"provider": "0", "amount": "1.00",
                        "bill_date": practice_today().isoformat()})
        for rule in rules:
            path = rule.build({"estimate_id": estimate.id, "bill_id": bill_id}
                              if "bill_id" in rule.arguments
                              else {"estimate_id": estimate.id})[1]
            for method in ("POST", "PUT", "PATCH", "DELETE"):
                response = client.open(path, method=method, data=payload)
                allowed = method in NON_CONTENT.get(rule.endpoint, set())
                # Allowed actions may still be refused to this role (404) or for bad input.
                ok = (response.status_code in (200, 302, 303, 404, 422) if allowed
                      else response.status_code in (404, 405))
                if not ok:
                    unexpected.append((user.role, method, rule.endpoint, response.status_code))
    assert unexpected == []
    assert fingerprint(estimate.id) == before


@pytest.mark.parametrize("endpoint", ["edit", "review", "issue", "discard"])
def test_draft_only_routes_answer_404_for_an_issued_estimate(app, practice, endpoint):
    estimate = practice.issued()
    client = sign_in(app.test_client(), practice.admin)
    token = csrf(client)
    method = "GET" if endpoint in ("edit", "review") else "POST"
    response = client.open(f"/estimates/{estimate.id}/{endpoint}", method=method,
                           data={"csrf_token": token})
    assert response.status_code == 404


def test_issuing_twice_does_not_reissue(app, practice):
    draft = practice.draft()
    client = sign_in(app.test_client(), practice.therapist)
    token = csrf(client)
    assert client.post(f"/estimates/{draft.id}/issue", data={"csrf_token": token}
                       ).status_code == 302
    before = fingerprint(draft.id)
    assert client.post(f"/estimates/{draft.id}/issue", data={"csrf_token": token}
                       ).status_code == 404
    assert fingerprint(draft.id) == before


def test_a_tampered_estimate_is_a_calm_page_not_an_error(app, practice):
    estimate = practice.issued()
    estimate_id = estimate.id
    db.session.rollback()
    table = GoodFaithEstimate.__table__
    with db.engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == estimate_id)
                     .values(pdf_sealed=b"\x01" + bytes(60), document_sealed=b"\x01" + bytes(60)))
    for user in (practice.client, practice.therapist):
        client = sign_in(app.test_client(), user)
        for path in (f"/estimates/{estimate_id}", f"/estimates/{estimate_id}/pdf"):
            response = client.get(path)
            assert response.status_code == 200
            page = response.get_data(as_text=True)
            assert "could not be decrypted" in page and "%PDF" not in page
