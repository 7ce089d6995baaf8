"""The accounting of disclosures (45 CFR 164.528): staff record a disclosure made outside the
portal, sealed under the client's key; the client sees the last six years on their Account
page; a mistaken one is voided, never deleted."""

import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import delete, func, select

from portal import practice
from portal.audit import AuditEvent, verify
from portal.audit.access_log import access_log
from portal.errors import RuleError
from portal.extensions import db
from portal.records import disclosures
from portal.records.disclosures import DisclosureHistoryError
from portal.records.models import Disclosure
from tests.accounts.support import (
    guarded_requests,  # noqa: F401 - fixture (500 guard)
    post_form,
)
from tests.messaging.conftest import assign, make_user, sign_in


@pytest.fixture
def today(monkeypatch):
    monkeypatch.setattr(practice, "utcnow", lambda: datetime(2026, 3, 2, 17, tzinfo=UTC))
    return date(2026, 3, 2)


@pytest.fixture
def people(app):
    client, other = make_user("client", "Robin Client"), make_user("client", "Sam Other")
    therapist, stranger = make_user("therapist", "Terry Therapist"), make_user("therapist")
    admin = make_user("admin", "Ada Admin")
    assign(client, therapist)
    return client, other, therapist, stranger, admin


def add(actor, client, day=date(2026, 2, 1), recipient="Montgomery County Court"):
    return disclosures.record_disclosure(
        actor, client, disclosed_on=day, recipient=recipient,
        content="Attendance dates, January 2026", purpose="Subpoena no. 2026-114")


def browser_for(app, user):
    browser = app.test_client()
    sign_in(browser, user)
    return browser


def total() -> int:
    found = db.session.scalar(select(func.count()).select_from(Disclosure))
    db.session.commit()
    return found


def test_a_disclosure_is_sealed_audited_and_opened_for_the_export(app, people, today):
    client, _, therapist, _, _ = people
    row = add(therapist, client)
    raw = db.session.get(Disclosure, row.id)
    for blob in (raw.recipient_sealed, raw.content_sealed, raw.purpose_sealed):
        assert b"Court" not in blob and b"Subpoena" not in blob and b"Attendance" not in blob
    [shown] = disclosures.disclosures_for(client.id)
    assert (shown.disclosed_on, shown.recipient, shown.content, shown.purpose) == (
        date(2026, 2, 1), "Montgomery County Court", "Attendance dates, January 2026",
        "Subpoena no. 2026-114")
    [event] = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "disclosure.recorded"))
    assert (event.actor_id, event.subject_id, event.target_type, event.target_id) == (
        therapist.id, client.id, "disclosure", str(row.id))
    assert verify().ok
    assert "Recorded a disclosure of your information made outside the portal" in [
        entry.what for entry in access_log(client)]


def test_the_client_sees_six_years_164_528_a(app, people, today):
    client, _, _, _, admin = people
    add(admin, client, date(2020, 3, 2), "Kept: six years ago today")
    add(admin, client, date(2026, 3, 1), "Kept: yesterday")
    # An older one, recorded before the form refused such dates, is not shown to the client.
    old = add(admin, client, date(2021, 1, 1), "Too old")
    db.session.get(Disclosure, old.id).disclosed_on = date(2020, 3, 1)
    with pytest.raises(DisclosureHistoryError):
        db.session.commit()
    db.session.rollback()
    assert disclosures.shown_since(today) == date(2020, 3, 2)
    assert disclosures.years_before(date(2028, 2, 29), 6) == date(2022, 2, 28)
    shown = [d.recipient for d in disclosures.for_client(client.id)]
    assert shown == ["Kept: yesterday", "Too old", "Kept: six years ago today"]
    assert [d.recipient for d in disclosures.disclosures_for(
        client.id, since=date(2021, 1, 1))] == ["Kept: yesterday", "Too old"]


@pytest.mark.parametrize(("values", "field"), [
    ({"disclosed_on": None}, "disclosed_on"), ({"disclosed_on": date(2026, 3, 3)}, "disclosed_on"),
    ({"disclosed_on": date(2020, 3, 1)}, "disclosed_on"), ({"recipient": " "}, "recipient"),
    ({"content": ""}, "content"), ({"purpose": None}, "purpose"),
    ({"recipient": "x" * (disclosures.RECIPIENT_MAX + 1)}, "recipient")])
def test_bad_input_is_refused_and_nothing_saved(app, people, today, values, field):
    client, _, therapist, _, _ = people
    data = {"disclosed_on": date(2026, 2, 1), "recipient": "A court", "content": "Dates",
            "purpose": "Court order", **values}
    with pytest.raises(RuleError) as refused:
        disclosures.record_disclosure(therapist, client, **data)
    assert refused.value.field == field
    assert total() == 0


def test_only_the_clients_therapist_or_an_administrator_records_one(app, people, today):
    client, other, _, stranger, _ = people
    for actor in (stranger, other, client):
        with pytest.raises(RuleError):
            add(actor, client)
    assert total() == 0


def test_a_mistaken_disclosure_is_voided_never_deleted(app, people, today):
    client, _, therapist, _, admin = people
    row = add(therapist, client)
    disclosures.void(admin, row)
    assert disclosures.disclosures_for(client.id) == []
    [kept] = disclosures.disclosures_for(client.id, include_voided=True)
    assert kept.voided and kept.voided_by_id == admin.id
    with pytest.raises(RuleError, match="already voided"):
        disclosures.void(admin, db.session.get(Disclosure, row.id))
    found = db.session.get(Disclosure, row.id)
    db.session.delete(found)
    with pytest.raises(DisclosureHistoryError):
        db.session.flush()
    db.session.rollback()
    with pytest.raises(DisclosureHistoryError):
        db.session.execute(delete(Disclosure))
    db.session.rollback()
    found = db.session.get(Disclosure, row.id)
    found.voided_at = None
    with pytest.raises(DisclosureHistoryError):
        db.session.flush()
    db.session.rollback()
    assert total() == 1
    assert [e.action for e in db.session.scalars(select(AuditEvent).where(
        AuditEvent.action.startswith("disclosure.")).order_by(AuditEvent.seq))] == [
        "disclosure.recorded", "disclosure.voided"]


# ----------------------------------------------------------------------------- pages


def test_staff_record_one_from_the_clients_page_and_the_client_sees_it(app, people, today):
    client, _, therapist, _, _ = people
    browser = browser_for(app, therapist)
    page = f"/record/clients/{client.id}"
    html = browser.get(page).get_data(as_text=True)
    assert "Not needed (164.528(a)(1))" in html and "treatment, payment" in html
    response = post_form(browser, f"{page}/disclosures", {
        "disclosed_on": "2026-02-10", "recipient": "Pennsylvania Department of Health",
        "content": "Name and date of a visit", "purpose": "A report required by law"},
        page=page)
    assert response.status_code == 302 and response.location.endswith(f"{page}#disclosures")
    account = browser_for(app, client).get("/account").get_data(as_text=True)
    assert "Pennsylvania Department of Health" in account and "February 10, 2026" in account
    assert "A report required by law" in account


def test_the_account_page_says_so_when_nothing_was_disclosed(app, people, today):
    account = browser_for(app, people[0]).get("/account").get_data(as_text=True)
    assert "Nothing has been shared in this way in the last six years." in account
    staff_account = browser_for(app, people[4]).get("/account").get_data(as_text=True)
    assert "Who the practice shared your information with" not in staff_account


@pytest.mark.parametrize(("data", "message"), [
    ({"disclosed_on": "", "recipient": "A", "content": "B", "purpose": "C"},
     "Enter the date it was disclosed."),
    ({"disclosed_on": "not a date", "recipient": "A", "content": "B", "purpose": "C"},
     "Enter a real date"),
    ({"disclosed_on": "2026-03-09", "recipient": "A", "content": "B", "purpose": "C"},
     "The date cannot be in the future."),
    ({"disclosed_on": "2026-02-01", "recipient": "", "content": "B", "purpose": "C"},
     "Enter who received it.")])
def test_bad_input_on_the_page_is_inline_with_422(app, people, today, data, message):
    client, _, therapist, _, _ = people
    browser = browser_for(app, therapist)
    page = f"/record/clients/{client.id}"
    response = post_form(browser, f"{page}/disclosures", data, page=page)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html and 'aria-invalid="true"' in html
    assert total() == 0


def test_someone_elses_client_or_disclosure_is_a_404(app, people, today):
    client, other, therapist, stranger, admin = people
    row = add(admin, client)
    browser = browser_for(app, stranger)
    page = f"/record/clients/{client.id}"
    assert browser.get(page).status_code == 404
    assert browser.get(f"/record/clients/{uuid.uuid4()}").status_code == 404
    assert browser.get(f"/record/clients/{therapist.id}").status_code == 404
    own = browser_for(app, therapist)
    token_page = f"/record/clients/{client.id}"
    assert post_form(browser, f"{page}/disclosures", {"disclosed_on": "2026-02-01",
                     "recipient": "A", "content": "B", "purpose": "C"},
                     page="/record/staff").status_code == 404
    assert post_form(browser, f"/record/disclosures/{row.id}/void",
                     page="/record/staff").status_code == 404
    assert own.post(f"/record/disclosures/{row.id}/void").status_code == 400  # no CSRF
    assert browser_for(app, other).get(page).status_code == 404
    assert db.session.get(Disclosure, row.id).voided_at is None
    voided = post_form(own, f"/record/disclosures/{row.id}/void", page=token_page)
    assert voided.status_code == 302
    assert db.session.get(Disclosure, row.id).voided_at is not None
    html = own.get(token_page).get_data(as_text=True)
    assert "rr-voided" in html
