"""Requests for a copy (45 CFR 164.524) or an amendment (45 CFR 164.526) of what the portal
does not hold: the deadline from the day it arrives, the one extension with a written reason,
fulfilled or denied with a reason, withdrawn by the client, all audited with ids and fixed
words, on a frozen practice clock."""

import re
import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from portal.audit import AuditEvent, verify
from portal.audit.access_log import access_log
from portal.errors import RuleError
from portal.extensions import db
from portal.records import requests
from portal.records.models import RecordRequest
from tests.accounts.support import (
    guarded_requests,  # noqa: F401 - fixture (500 guard)
    mail_text,
    outbox,
    post_form,
)
from tests.messaging.conftest import assign, make_user, sign_in


@pytest.fixture
def people(app):
    client, other = make_user("client", "Robin Client"), make_user("client", "Sam Other")
    therapist, admin = make_user("therapist", "Terry Therapist"), make_user("admin", "Ada Admin")
    assign(client, therapist)
    return client, other, therapist, admin


def actions(prefix: str = "record_request.") -> list[AuditEvent]:
    found = list(db.session.scalars(select(AuditEvent).where(
        AuditEvent.action.startswith(prefix)).order_by(AuditEvent.seq)))
    db.session.commit()
    return found


def count() -> int:
    found = db.session.scalar(select(func.count()).select_from(RecordRequest))
    db.session.commit()
    return found


def browser_for(app, user):
    browser = app.test_client()
    sign_in(browser, user)
    return browser


# ----------------------------------------------------------------------------- deadlines


def test_a_copy_is_due_30_days_after_it_arrives_164_524_b_2(app, people, clock):
    client = people[0]
    made = requests.make(client, client, "copy", "My notes from 2025, by email please.")
    assert made.received_on == date(2026, 3, 2)
    assert made.due_on == date(2026, 4, 1)
    assert requests.due_date(made) == date(2026, 4, 1) and made.extended_to is None


def test_an_amendment_is_due_60_days_after_it_arrives_164_526_b_2(app, people, clock):
    client = people[0]
    made = requests.make(client, client, "amendment", "My date of birth is wrong.")
    assert made.due_on == date(2026, 5, 1)


def test_the_practice_day_counts_not_the_utc_day(app, people, clock):
    """At 11 pm in New York it is already tomorrow in UTC: the request arrived today."""
    client = people[0]
    clock.now = datetime(2026, 3, 3, 4, 0, tzinfo=UTC)  # 11 pm on March 2 in New York
    made = requests.make(client, client, "copy", "Everything, please.")
    assert made.received_on == date(2026, 3, 2) and made.due_on == date(2026, 4, 1)


def test_one_extension_of_30_days_with_a_written_reason_164_524_b_2_ii(app, people, clock):
    client, _, _, admin = people
    made = requests.make(client, client, "copy", "All my records.")
    clock.advance(29)  # March 31: the day before the first deadline
    requests.extend(admin, made, "The archive is offsite; we will post it by April 30.")
    db.session.expire_all()
    found = db.session.get(RecordRequest, made.id)
    assert found.due_on == date(2026, 4, 1) and found.extended_to == date(2026, 5, 1)
    assert requests.due_date(found) == date(2026, 5, 1)
    shown = requests.view_of(found)
    assert shown.extension_reason.startswith("The archive is offsite")
    assert found.extension_reason_sealed and b"archive" not in found.extension_reason_sealed
    # Only once.
    with pytest.raises(RuleError, match="already extended once"):
        requests.extend(admin, found, "More time again.")
    assert db.session.get(RecordRequest, made.id).extended_to == date(2026, 5, 1)


def test_an_amendment_extends_once_by_30_days_164_526_b_2_ii(app, people, clock):
    client, _, _, admin = people
    made = requests.make(client, client, "amendment", "Add my new address.")
    requests.extend(admin, made, "We are checking with the billing office.")
    assert db.session.get(RecordRequest, made.id).extended_to == date(2026, 5, 31)


def test_the_extension_must_come_before_the_first_deadline_passes(app, people, clock):
    """164.524(b)(2)(ii): the written statement of the delay is given within the first 30
    days; on the deadline day it still can, the day after it cannot."""
    client, _, _, admin = people
    made = requests.make(client, client, "copy", "All my records.")
    clock.set(date(2026, 4, 2))
    with pytest.raises(RuleError, match="deadline has passed"):
        requests.extend(admin, made, "Late.")
    found = db.session.get(RecordRequest, made.id)
    assert found.extended_to is None and found.extension_reason_sealed is None
    assert requests.view_of(found).overdue and requests.view_of(found).days_left == -1
    clock.set(date(2026, 4, 1))
    assert requests.view_of(found).days_left == 0 and requests.view_of(found).may_extend
    requests.extend(admin, found, "On the day itself is still in time.")
    assert found.extended_to == date(2026, 5, 1)


@pytest.mark.parametrize("reason", [None, "", "   ", "x" * (requests.REASON_MAX + 1)])
def test_an_extension_needs_a_written_reason(app, people, clock, reason):
    client, _, _, admin = people
    made = requests.make(client, client, "copy", "All my records.")
    with pytest.raises(RuleError) as refused:
        requests.extend(admin, made, reason)
    assert refused.value.field == "reason"
    assert db.session.get(RecordRequest, made.id).extended_to is None
    assert [e.action for e in actions()] == ["record_request.made.copy"]


def test_a_paper_request_counts_from_the_day_it_arrived(app, people, clock):
    client, _, therapist, _ = people
    made = requests.make(therapist, client, "copy", "Asked at reception for a copy.",
                         received_on=date(2026, 2, 20))
    assert made.recorded_by_id == therapist.id and made.due_on == date(2026, 3, 22)
    with pytest.raises(RuleError) as refused:
        requests.make(therapist, client, "copy", "Tomorrow?", received_on=date(2026, 3, 3))
    assert refused.value.field == "received_on"


def test_the_days_left_and_the_warning_window(app, people, clock):
    client, other, therapist, admin = people
    soon = requests.make(client, client, "copy", "A copy.")
    later = requests.make(other, other, "amendment", "A change.")
    clock.advance(22)  # 8 days before the copy is due: no warning yet
    assert requests.open_requests(admin, within_days=requests.WARN_DAYS) == []
    assert requests.due_soon_count(admin) is None
    clock.advance(1)  # 7 days left
    warned = requests.open_requests(admin, within_days=requests.WARN_DAYS)
    assert [r.id for r in warned] == [soon.id] and warned[0].days_left == 7
    assert requests.due_soon_count(admin) == 1
    assert requests.due_soon_count(therapist) is None  # the badge is for administrators
    # The therapist's dashboard: their client's request only.
    panel = requests.dashboard_panel(therapist)["record_requests_panel"]
    assert [r.id for r in panel["requests"]] == [soon.id]
    assert panel["names"] == {client.id: "Robin Client"}
    assert [(look.action, look.client_id) for look in requests.panel_looks(
        {"record_requests_panel": panel})] == [("client.listed", client.id)]
    # Everything open, nearest deadline first, for an administrator.
    assert [r.id for r in requests.open_requests(admin)] == [soon.id, later.id]
    assert [r.id for r in requests.open_requests(therapist)] == [soon.id]
    assert requests.open_requests(client) == []


# ----------------------------------------------------------------------------- outcomes


def test_fulfilled_and_denied_are_audited_with_ids_and_the_client_is_emailed(app, people,
                                                                            clock):
    client, _, _, admin = people
    copy = requests.make(client, client, "copy", "My 2025 notes about my sister.")
    change = requests.make(client, client, "amendment", "The diagnosis code F41.1 is wrong.")
    requests.extend(admin, copy, "Our records office is closed this week.")
    requests.fulfil(admin, copy, "Sent by post on March 10.")
    requests.deny(admin, change, "The note records what you told us at the time.")
    assert [(e.action, e.actor_id, e.subject_id, e.target_type) for e in actions()] == [
        ("record_request.made.copy", client.id, client.id, "record_request"),
        ("record_request.made.amendment", client.id, client.id, "record_request"),
        ("record_request.extended", admin.id, client.id, "record_request"),
        ("record_request.fulfilled", admin.id, client.id, "record_request"),
        ("record_request.denied", admin.id, client.id, "record_request"),
    ]
    assert verify().ok
    mails = outbox("record_request_update", client)
    assert len(mails) == 3
    for row in mails:
        text = mail_text(row)
        assert "/record/requests/" in text
        assert not re.search(r"sister|F41|diagnosis|records office|post|Robin", text)
        assert row.subject == "An update on your request in the portal"
    words = [entry.what for entry in access_log(client)]
    assert "Declined your request about your record, with a reason" in words
    assert "Extended the deadline of your request, with a reason" in words


def test_a_denial_needs_a_reason_and_a_closed_request_stays_closed(app, people, clock):
    client, _, therapist, admin = people
    made = requests.make(client, client, "copy", "A copy.")
    with pytest.raises(RuleError) as refused:
        requests.deny(admin, made, "  ")
    assert refused.value.field == "reason"
    with pytest.raises(RuleError, match="administrator"):
        requests.fulfil(therapist, made)
    assert db.session.get(RecordRequest, made.id).status == "open"
    requests.fulfil(admin, made)
    for act in (lambda: requests.deny(admin, made, "No."),
                lambda: requests.extend(admin, made, "Later."),
                lambda: requests.withdraw(client, made)):
        with pytest.raises(RuleError, match="already done"):
            act()
    assert db.session.get(RecordRequest, made.id).status == "fulfilled"


def test_the_client_withdraws_their_own_open_request(app, people, clock):
    client, other, _, admin = people
    made = requests.make(client, client, "amendment", "Change my address.")
    with pytest.raises(RuleError):
        requests.withdraw(other, made)
    with pytest.raises(RuleError):
        requests.withdraw(admin, made)
    requests.withdraw(client, made)
    found = db.session.get(RecordRequest, made.id)
    assert found.status == "withdrawn" and found.closed_by_id == client.id
    assert actions()[-1].action == "record_request.withdrawn"
    assert requests.open_requests(admin) == []


@pytest.mark.parametrize(("kind", "details", "field"), [
    (None, "x", "kind"), ("everything", "x", "kind"), ("copy", "", "details"),
    ("copy", "   ", "details"), ("copy", "x" * (requests.DETAILS_MAX + 1), "details")])
def test_a_bad_request_is_refused_and_nothing_is_saved(app, people, clock, kind, details,
                                                       field):
    client = people[0]
    with pytest.raises(RuleError) as refused:
        requests.make(client, client, kind, details)
    assert refused.value.field == field
    assert count() == 0 and actions() == []


def test_what_the_client_wrote_is_sealed(app, people, clock):
    client = people[0]
    made = requests.make(client, client, "copy", "Please include the March 2025 letter.")
    raw = db.session.scalar(select(RecordRequest.details_sealed)
                            .where(RecordRequest.id == made.id))
    assert b"March 2025" not in raw
    assert requests.requests_of(client.id)[0].details == "Please include the March 2025 letter."


# ----------------------------------------------------------------------------- pages


def test_the_client_asks_for_a_copy_and_sees_its_status(app, people, clock):
    client, _, _, admin = people
    browser = browser_for(app, client)
    response = post_form(browser, "/record/requests",
                         {"kind": "copy", "details": "My notes, on paper please."})
    assert response.status_code == 302
    made = db.session.scalar(select(RecordRequest))
    db.session.commit()
    assert response.location.endswith(f"/record/requests/{made.id}")
    listing = browser.get("/record/requests").get_data(as_text=True)
    assert "a request for a copy within 30 days, and a request for a change within 60" in listing
    assert "we will answer by April 1, 2026" in listing
    html = browser.get(f"/record/requests/{made.id}").get_data(as_text=True)
    assert "The practice will answer by <strong>April 1, 2026</strong>" in html
    assert "My notes, on paper please." in html and "Withdraw my request" in html
    account = browser.get("/account").get_data(as_text=True)
    assert "You asked for a copy of your record on March 2, 2026" in account
    requests.deny(admin, db.session.get(RecordRequest, made.id), "We do not hold them.")
    html = browser.get(f"/record/requests/{made.id}").get_data(as_text=True)
    assert "We could not grant this request" in html and "We do not hold them." in html
    assert "hhs.gov/ocr/complaints" in html and "reviewed by another licensed" in html
    assert "Withdraw my request" not in html


@pytest.mark.parametrize(("data", "message"), [
    ({"kind": "", "details": "x"}, "Choose what you are asking for."),
    ({"kind": "copy", "details": ""}, "Please say what you are asking for."),
    ({"kind": "copy", "details": "x" * 4001}, "4000 characters")])
def test_bad_input_is_shown_inline_with_422_and_nothing_saved(app, people, clock, data,
                                                              message):
    browser = browser_for(app, people[0])
    response = post_form(browser, "/record/requests", data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "field-error" in html and message in html and 'aria-invalid="true"' in html
    assert count() == 0


def test_someone_elses_request_is_a_404_and_forms_need_csrf(app, people, clock):
    client, other, therapist, _ = people
    made = requests.make(client, client, "copy", "A copy.")
    theirs = requests.make(other, other, "copy", "Theirs.")
    browser = browser_for(app, client)
    assert browser.get(f"/record/requests/{theirs.id}").status_code == 404
    assert browser.get(f"/record/requests/{uuid.uuid4()}").status_code == 404
    assert post_form(browser, f"/record/requests/{theirs.id}/withdraw",
                     page="/record/requests").status_code == 404
    assert browser.post(f"/record/requests/{made.id}/withdraw").status_code == 400
    assert browser.post("/record/requests", data={"kind": "copy",
                                                  "details": "x"}).status_code == 400
    # A therapist sees their client's request, not another's, and cannot act on it.
    staff = browser_for(app, therapist)
    assert staff.get(f"/record/requests/{made.id}").status_code == 200
    assert staff.get(f"/record/requests/{theirs.id}").status_code == 404
    assert post_form(staff, f"/record/requests/{made.id}/fulfil", {},
                     page=f"/record/requests/{made.id}").status_code == 404
    assert db.session.get(RecordRequest, theirs.id).status == "open"
    assert db.session.get(RecordRequest, made.id).status == "open"


def test_the_administrator_extends_and_fulfils_from_the_page(app, people, clock):
    client, other, _, admin = people
    made = requests.make(client, client, "copy", "A copy.")
    late = requests.make(other, other, "amendment", "A change.")
    clock.advance(25)
    browser = browser_for(app, admin)
    listing = browser.get("/record/staff").get_data(as_text=True)
    assert listing.index("Robin Client") < listing.index("Sam Other")
    assert "5 days left" in listing and "rr-soon" in listing
    nav = re.search(r'<nav.*?href="/record/staff".*?</a>', listing, re.DOTALL).group(0)
    assert re.search(r">\s*1\s*<", nav)  # the badge: one due within a week
    page = f"/record/requests/{made.id}"
    refused = post_form(browser, f"{page}/extend", {"reason": ""}, page=page)
    assert refused.status_code == 422 and 'id="reason-error"' in refused.get_data(as_text=True)
    assert db.session.get(RecordRequest, made.id).extended_to is None
    db.session.commit()
    extended = post_form(browser, f"{page}/extend", {"reason": "Waiting on the archive."},
                         page=page)
    assert extended.status_code == 302
    html = browser.get(page).get_data(as_text=True)
    assert "May 1, 2026" in html and "Extend the deadline once" not in html
    done = post_form(browser, f"{page}/fulfil", {"note": "Posted today."}, page=page)
    assert done.status_code == 302
    assert db.session.get(RecordRequest, made.id).status == "fulfilled"
    db.session.commit()
    clock.advance(40)  # the amendment is now 5 days overdue
    listing = browser.get("/record/staff").get_data(as_text=True)
    assert "Robin Client" not in listing.split("open-h")[1].split("client-h")[0]
    assert "rr-overdue" in listing and "5 days overdue" in listing
    assert late.id and requests.view_of(db.session.get(RecordRequest, late.id)).overdue
    denied = post_form(browser, f"/record/requests/{late.id}/deny", {"deny-reason": ""},
                       page=f"/record/requests/{late.id}")
    assert denied.status_code == 422 and 'id="deny-reason-error"' in denied.get_data(
        as_text=True)
