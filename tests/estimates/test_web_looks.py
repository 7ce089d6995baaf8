"""Staff looks at a client's estimates are on the client's access log, and an administrator
sees diagnosis codes only for a stated reason (issue #14).

Minimum necessary, 45 CFR 164.502(b) and 164.514(d): an administrator is not in the client's
care, so an estimate's diagnosis codes (on the page, the review, the builder and the PDF) are
shown to them only for a reason chosen from a fixed list, which the audit action names.
Audit controls, 45 CFR 164.312(b): every view is one event with the client as its subject.
"""

import uuid
from dataclasses import replace

import pytest
from sqlalchemy import select

from portal.audit import AuditEvent, verify
from portal.audit.looks import CLIENT_LISTED, Look, record_looks
from portal.estimates import looks
from portal.extensions import db
from tests.estimates.conftest import complete_draft, sign_in
from tests.messaging.conftest import StatementCounter
from tests.support.auth import signed_in
from tests.support.people import make_user

CODE = "Z63.0"  # on the complete draft's family therapy line, shown nowhere as an example


@pytest.fixture
def issued(practice, fast_pdf):
    return practice.issued()


def _events(client_id: uuid.UUID) -> list[str]:
    db.session.rollback()
    return list(db.session.scalars(select(AuditEvent.action)
                                   .where(AuditEvent.subject_id == client_id)
                                   .order_by(AuditEvent.seq)))


def _new_events(client_id, before: list[str]) -> list[str]:
    return _events(client_id)[len(before):]


def _get(client, user, path):
    sign_in(client, user)
    return client.get(path)


def test_the_assigned_therapist_sees_the_codes_without_a_reason(client, practice, issued):
    before = _events(practice.client.id)
    page = _get(client, practice.therapist, f"/estimates/{issued.id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert CODE in text and "Diagnosis codes are not shown" not in text
    assert _new_events(practice.client.id, before) == ["estimate.opened"]


def test_an_admin_sees_an_estimate_without_its_codes_until_they_give_a_reason(
        client, practice, issued):
    """45 CFR 164.502(b): without a reason the admin's view leaves the diagnosis codes out."""
    before = _events(practice.client.id)
    page = _get(client, practice.admin, f"/estimates/{issued.id}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert CODE not in text and "F41.1" not in text
    assert "Diagnosis codes are not shown" in text and looks.HIDDEN in text
    assert f"/estimates/{issued.id}?reason=billing" in text
    assert f"/estimates/{issued.id}/pdf" not in text  # the PDF carries the codes
    assert _new_events(practice.client.id, before) == ["estimate.opened"]


@pytest.mark.parametrize("reason", sorted(looks.REASONS))
def test_an_admins_reason_shows_the_codes_and_is_recorded_in_the_action(
        client, practice, issued, reason):
    """45 CFR 164.502(b): the reason is one of a fixed list, recorded in the action's name."""
    before = _events(practice.client.id)
    page = _get(client, practice.admin, f"/estimates/{issued.id}?reason={reason}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and CODE in text
    assert f"/estimates/{issued.id}/pdf?reason={reason}" in text
    assert _new_events(practice.client.id, before) == [f"estimate.clinical_viewed.{reason}"]


@pytest.mark.parametrize("reason", ["curiosity", "", "BILLING", "billing%00", "x" * 300])
def test_an_unknown_reason_is_no_reason_and_never_an_error(client, practice, issued, reason):
    before = _events(practice.client.id)
    page = _get(client, practice.admin, f"/estimates/{issued.id}?reason={reason}")
    assert page.status_code == 200
    assert CODE not in page.get_data(as_text=True)
    assert _new_events(practice.client.id, before) == ["estimate.opened"]


def test_an_admins_pdf_download_needs_a_reason_too(client, practice, issued):
    """45 CFR 164.502(b): the frozen PDF shows the diagnosis codes, so the same rule holds."""
    before = _events(practice.client.id)
    refused = _get(client, practice.admin, f"/estimates/{issued.id}/pdf?reason=nosy")
    assert refused.status_code == 302
    assert refused.headers["Location"].endswith(f"/estimates/{issued.id}#reason")
    assert _new_events(practice.client.id, before) == []
    pdf = client.get(f"/estimates/{issued.id}/pdf?reason=compliance_review")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert _new_events(practice.client.id, before) == [
        "estimate.downloaded.compliance_review"]


def test_a_therapists_pdf_download_is_recorded_as_before(client, practice, issued):
    before = _events(practice.client.id)
    assert _get(client, practice.therapist, f"/estimates/{issued.id}/pdf").status_code == 200
    assert _new_events(practice.client.id, before) == ["estimate.downloaded"]


def test_an_admin_reviews_a_draft_without_codes_and_edits_it_only_with_a_reason(
        client, practice):
    """45 CFR 164.502(b): the builder shows and saves every code, so it waits for a reason."""
    draft = practice.draft()
    before = _events(practice.client.id)
    review = _get(client, practice.admin, f"/estimates/{draft.id}/review")
    assert review.status_code == 200
    assert CODE not in review.get_data(as_text=True)
    edit = client.get(f"/estimates/{draft.id}/edit")
    assert edit.status_code == 302 and "/review" in edit.headers["Location"]
    edit = client.get(f"/estimates/{draft.id}/edit?reason=client_request")
    text = edit.get_data(as_text=True)
    assert edit.status_code == 200 and CODE in text
    assert f"/estimates/{draft.id}/edit?reason=client_request" in text  # the form keeps it
    assert _new_events(practice.client.id, before) == [
        "estimate.draft.opened", "estimate.clinical_viewed.client_request"]


def test_a_review_problem_that_quotes_a_code_does_not_show_it_to_an_admin(client, practice):
    base = complete_draft()
    wrong = replace(base.lines[1], diagnosis_codes=("FX.77",))  # not ICD-10: quoted back
    draft = practice.draft(lines=(base.lines[0], wrong, base.lines[2]))
    text = _get(client, practice.admin, f"/estimates/{draft.id}/review").get_data(as_text=True)
    assert "FX.77" not in text and "diagnosis codes need attention" in text
    text = client.get(f"/estimates/{draft.id}/review?reason=billing").get_data(as_text=True)
    assert "FX.77" in text


def test_the_estimates_list_records_one_event_per_client_shown(client, practice, fast_pdf):
    practice.issued()
    practice.issued()  # two estimates for one client: still one look at that client
    practice.issued(client=practice.other_client, therapist=practice.other_therapist)
    quiet = make_user("client", "Quiet Person")  # in the admin's chooser, without estimates
    clients = (practice.client.id, practice.other_client.id, quiet.id)
    before = {c: _events(c) for c in clients}
    assert _get(client, practice.admin, "/estimates/practice").status_code == 200
    assert _new_events(practice.client.id, before[practice.client.id]) == [looks.LISTED]
    assert _new_events(practice.other_client.id, before[practice.other_client.id]) == [
        looks.LISTED]
    assert _new_events(quiet.id, before[quiet.id]) == [CLIENT_LISTED]
    assert verify().ok


def test_a_therapists_list_records_only_their_own_clients(client, practice, fast_pdf):
    practice.issued(client=practice.other_client, therapist=practice.other_therapist)
    before = _events(practice.other_client.id)
    assert _get(client, practice.therapist, "/estimates/practice").status_code == 200
    assert _new_events(practice.other_client.id, before) == []


def test_a_client_looking_at_their_own_estimate_is_not_a_staff_look(client, practice, issued):
    before = _events(practice.client.id)
    assert _get(client, practice.client, f"/estimates/{issued.id}").status_code == 200
    assert "estimate.opened" not in _new_events(practice.client.id, before)


def _count_statements(app, n: int) -> int:
    admin = make_user("admin", f"Admin {n}")
    people = [make_user("client", f"Person {i} of {n}").id for i in range(n)]
    shown = [Look(CLIENT_LISTED, None, person) for person in people]
    with app.test_request_context(), StatementCounter(db.engine) as counter:
        written = record_looks(admin, shown)
    assert written == n
    return counter.count


def test_a_page_of_many_clients_records_its_looks_in_a_fixed_number_of_statements(app):
    """A list of 50 clients is 50 events, appended in as many statements as a list of 5."""
    _count_statements(app, 1)  # the first append of all creates the chain's head row
    assert _count_statements(app, 5) == _count_statements(app, 50)
    assert verify().ok  # the chain holds across the batch: each row hashes the one before


def test_every_look_action_is_declared_in_plain_words(app):
    from portal.audit import catalogue
    actions = [looks.OPENED, looks.DRAFT_OPENED, looks.LISTED, CLIENT_LISTED,
               "client.account_viewed"]
    actions += [f"{looks.CLINICAL}.{r}" for r in looks.REASONS]
    actions += [f"{looks.DOWNLOADED_FOR}.{r}" for r in looks.REASONS]
    for action in actions:
        words = catalogue.declared()[action].words
        assert words and words != catalogue.UNDECLARED, action


def _page_statements(app, admin, path: str) -> int:
    browser = signed_in(app, admin)
    assert browser.get(path).status_code == 200  # warm: first-request work is not counted
    with StatementCounter(db.engine) as counter:
        assert browser.get(path).status_code == 200
    return counter.count


@pytest.mark.parametrize("path", ["/admin/users", "/estimates/practice", "/estimates/new"])
def test_list_pages_record_their_looks_without_growing_their_statements(app, path):
    """5 or 50 clients on the page: the same statement count (one bulk append of looks)."""
    admin = make_user("admin", "Morgan Admin")
    counts, made = {}, 0
    for size in (5, 50):
        while made < size:
            make_user("client", f"Client {made}")
            made += 1
        counts[size] = _page_statements(app, admin, path)
    assert counts[5] == counts[50], counts
