"""The administrator's screens for minors and their guardians (#16): the details with who
consented (Act 147 of 2004), linking, inviting and unlinking guardians, the history, and the
minor's status on staff pages; every look on the minor's access log."""

import re
from datetime import date

import pytest
from sqlalchemy import func, select

from portal.accounts.identity import find_by_email
from portal.accounts.models import Assignment, Role, User
from portal.audit import AuditEvent
from portal.extensions import db
from portal.guardians import links
from portal.guardians.models import Guardianship, Minor
from portal.mail.cli import run_worker_tasks
from portal.mail.models import OutboxMessage
from tests.messaging.conftest import StatementCounter
from tests.support.auth import signed_in
from tests.support.clock import freeze
from tests.support.outbox import outbox
from tests.support.people import (
    csrf_from,
    make_admin,
    make_client,
    make_guardian,
    make_minor,
    make_therapist,
)

pytestmark = pytest.mark.usefixtures("isolated_requests")


@pytest.fixture
def today(monkeypatch):
    return freeze(monkeypatch, date(2026, 6, 15))


def _post(browser, page: str, url: str, data: dict, **options):
    token = csrf_from(browser.get(page).get_data(as_text=True))
    return browser.post(url, data={**data, "csrf_token": token}, **options)


def _events(subject_id, action: str) -> list[AuditEvent]:
    db.session.rollback()
    return list(db.session.scalars(select(AuditEvent).where(
        AuditEvent.subject_id == subject_id, AuditEvent.action == action)))


def _field_error(html: str, field: str) -> str:
    found = re.search(rf'id="{field}-error"><span class="visually-hidden">Error: </span>'
                      r"(.*?)</span>", html, re.S)
    assert found, f"no inline error for {field}"
    return found.group(1)


def test_an_admin_records_a_minor_with_who_consented_and_refusals_are_inline(app, today):
    admin, client = make_admin(), make_client("Robin Young")
    browser = signed_in(app, admin)
    page = f"/admin/users/{client.id}/minor"
    shown = browser.get(page)
    html = shown.get_data(as_text=True)
    assert shown.status_code == 200
    assert "Act 147 of 2004" in html and "Not recorded as a minor" in html
    assert len(_events(client.id, "client.minor_viewed")) == 1  # the look is logged

    under_14 = _post(browser, page, page, {"date_of_birth": "2013-01-01", "consent_by": "minor"})
    assert under_14.status_code == 422
    assert "from age 14" in _field_error(under_14.get_data(as_text=True), "consent_by")
    adult = _post(browser, page, page, {"date_of_birth": "2008-06-15", "consent_by": "guardian"})
    assert adult.status_code == 422
    assert "18 or over" in _field_error(adult.get_data(as_text=True), "date_of_birth")
    empty = _post(browser, page, page, {"date_of_birth": "", "consent_by": ""})
    assert empty.status_code == 422
    assert "date of birth" in _field_error(empty.get_data(as_text=True), "date_of_birth")
    assert db.session.scalar(select(func.count()).select_from(Minor)) == 0

    saved = _post(browser, page, page, {"date_of_birth": "2011-06-16", "consent_by": "minor"})
    assert saved.status_code == 302
    minor = links.minor_of(client.id)
    assert minor.consent_by == "minor" and links.date_of_birth(minor) == date(2011, 6, 16)
    (event,) = _events(client.id, "minor.recorded")
    assert event.actor_id == admin.id and event.target_id == str(client.id)
    html = browser.get(page).get_data(as_text=True)
    assert "Minor, consent by the minor (14 or over)" in html and "2011-06-16" in html

    changed = _post(browser, page, page, {"date_of_birth": "2011-06-16",
                                          "consent_by": "guardian"})
    assert changed.status_code == 302 and links.guardian_consented(client.id)
    assert len(_events(client.id, "minor.updated")) == 1
    person = browser.get(f"/admin/users/{client.id}").get_data(as_text=True)
    assert "Minor, consent by a parent or guardian." in person
    assert f'href="/admin/users/{client.id}/minor"' in person


def test_link_invite_unlink_and_the_history_of_links(app, today):
    admin = make_admin()
    gale = make_guardian("Gale Guardian")
    client = make_minor(date(2012, 3, 3), name="Jordan Minor")
    browser = signed_in(app, admin)
    page = f"/admin/users/{client.id}/minor"
    html = browser.get(page).get_data(as_text=True)
    assert "No parent or guardian is linked." in html and "Gale Guardian" in html  # a choice

    wrong = _post(browser, page, f"{page}/link", {"guardian": str(client.id)})
    assert wrong.status_code == 422
    assert "from the list" in _field_error(wrong.get_data(as_text=True), "guardian")
    linked = _post(browser, page, f"{page}/link", {"guardian": str(gale.id)})
    assert linked.status_code == 302
    row = links.live_link(gale.id, client.id)
    (event,) = _events(client.id, "guardianship.linked")
    assert event.target_type == "guardianship" and event.target_id == str(row.id)

    invited = _post(browser, page, f"{page}/invite",
                     {"name": "Pat Parent", "email": "pat.parent@example.org"})
    assert invited.status_code == 302
    pat = find_by_email("pat.parent@example.org")
    assert pat.role == Role.GUARDIAN and links.live_link(pat.id, client.id) is not None
    db.session.rollback()
    assert [row.template for row in outbox(None, OutboxMessage.user_id == pat.id)] == [
        "invitation"]
    again = _post(browser, page, f"{page}/invite",
                   {"name": "Pat Again", "email": "pat.parent@example.org"})
    assert again.status_code == 422
    assert "already exists" in _field_error(again.get_data(as_text=True), "email")
    person = browser.get(f"/admin/users/{client.id}").get_data(as_text=True)
    assert "Linked guardians: 2." in person

    confirm = browser.get(f"{page}/links/{row.id}/unlink")
    assert confirm.status_code == 200
    assert "Unlink Gale Guardian?" in confirm.get_data(as_text=True)
    token = csrf_from(confirm.get_data(as_text=True))
    assert browser.post(f"{page}/links/{row.id}/unlink", data={}).status_code == 400  # CSRF
    done = browser.post(f"{page}/links/{row.id}/unlink", data={"csrf_token": token})
    assert done.status_code == 302
    db.session.rollback()
    assert db.session.get(Guardianship, row.id).end_reason == "unlinked"
    assert len(_events(client.id, "guardianship.ended.unlinked")) == 1
    html = browser.get(page).get_data(as_text=True)
    assert re.search(r"Gale Guardian: linked [^;]+ by [^;]+;\s*ended: unlinked", html)

    other = make_minor(date(2012, 1, 1), name="Someone Else")
    elsewhere = browser.get(f"/admin/users/{other.id}/minor/links/{row.id}/unlink")
    assert elsewhere.status_code == 404  # a link of another minor

    log = signed_in(app, client).get("/account/access-log").get_data(as_text=True)
    assert "Linked Gale Guardian to your record as your parent or guardian" in log
    assert "Unlinked Gale Guardian" in log


def test_inviting_a_guardian_for_a_client_who_is_not_a_minor_creates_nobody(app, today):
    admin, client = make_admin(), make_client()
    browser = signed_in(app, admin)
    page = f"/admin/users/{client.id}/minor"
    html = browser.get(page).get_data(as_text=True)
    assert "before linking a parent or guardian" in html
    refused = _post(browser, page, f"{page}/invite", {"name": "No One", "email": "no@example.org"})
    assert refused.status_code == 422
    assert "Record the client as a minor" in refused.get_data(as_text=True)
    assert find_by_email("no@example.org") is None


def test_only_administrators_reach_these_pages(app, today):
    guardian = make_guardian()
    client = make_minor(date(2012, 3, 3), guardian=guardian)
    therapist = make_therapist()
    db.session.add(Assignment(client_id=client.id, therapist_id=therapist.id))
    db.session.commit()
    row = links.live_link(guardian.id, client.id)
    urls = (f"/admin/users/{client.id}/minor", f"/admin/users/{guardian.id}/minors",
            f"/admin/users/{client.id}/minor/links/{row.id}/unlink")
    for person in (therapist, client, guardian):
        browser = signed_in(app, person)
        for url in urls:
            assert browser.get(url).status_code == 404, (person.role, url)
        token = csrf_from(browser.get("/account").get_data(as_text=True))
        assert browser.post(urls[2], data={"csrf_token": token}).status_code == 404
    assert links.live_link(guardian.id, client.id) is not None
    admin = signed_in(app, make_admin())
    assert admin.get(f"/admin/users/{guardian.id}/minor").status_code == 404  # not a client
    assert admin.get(f"/admin/users/{client.id}/minors").status_code == 404  # not a guardian


def test_a_guardians_page_lists_their_minors_live_and_ended_each_a_look(app, today):
    admin, guardian = make_admin(), make_guardian("Casey Parent")
    kept = make_minor(date(2012, 3, 3), guardian=guardian, name="Kept Minor")
    ended = make_minor(date(2011, 3, 3), guardian=guardian, name="Ended Minor")
    links.unlink(admin, links.live_link(guardian.id, ended.id))
    browser = signed_in(app, admin)
    person = browser.get(f"/admin/users/{guardian.id}").get_data(as_text=True)
    assert "Linked to 1 minor now." in person
    assert f'href="/admin/users/{guardian.id}/minors"' in person
    html = browser.get(f"/admin/users/{guardian.id}/minors").get_data(as_text=True)
    assert re.search(r"Kept Minor</a>\s*<span class=\"muted\">· linked [^;]+;\s*live", html)
    assert re.search(r"Ended Minor</a>\s*<span class=\"muted\">· linked [^;]+;\s*ended: "
                     r"unlinked", html)
    for minor in (kept, ended):
        assert len(_events(minor.id, "client.listed")) == 1


def test_the_guardians_page_statement_count_does_not_grow(app, today):
    admin, guardian = make_admin(), make_guardian()
    browser = signed_in(app, admin)
    counts = []
    for size in (2, 6):
        while len(links.links_of_guardian(guardian.id)) < size:
            make_minor(date(2012, 3, 3), guardian=guardian)
        url = f"/admin/users/{guardian.id}/minors"
        assert browser.get(url).status_code == 200
        with StatementCounter(db.engine) as counter:
            assert browser.get(url).status_code == 200
        counts.append(counter.count)
    assert counts[0] == counts[1], counts


def test_the_people_pages_invite_a_parent_or_guardian(app, today):
    browser = signed_in(app, make_admin())
    form = browser.get("/admin/users/invite").get_data(as_text=True)
    assert 'value="guardian"' in form and "Parent or guardian" in form
    made = _post(browser, "/admin/users/invite", "/admin/users/invite",
                 {"name": "Lee Parent", "email": "lee.parent@example.org", "role": "guardian",
                  "therapist": ""})
    assert made.status_code == 302
    lee = find_by_email("lee.parent@example.org")
    assert lee.role == Role.GUARDIAN
    assert "Parents and guardians" in browser.get("/admin/users").get_data(as_text=True)
    assert "Not linked to a minor now." in browser.get(
        f"/admin/users/{lee.id}").get_data(as_text=True)


def test_the_therapists_record_page_shows_who_consented_and_the_guardians(app, today):
    therapist = make_therapist()
    gale = make_guardian("Gale Guardian")
    by_minor = make_minor(date(2011, 3, 3), consent_by="minor", guardian=gale)
    by_guardian = make_minor(date(2013, 3, 3), consent_by="guardian")
    adult = make_client()
    for client in (by_minor, by_guardian, adult):
        db.session.add(Assignment(client_id=client.id, therapist_id=therapist.id))
    db.session.commit()
    browser = signed_in(app, therapist)
    html = browser.get(f"/record/clients/{by_minor.id}").get_data(as_text=True)
    assert "Minor: consent by the minor (14 or over)" in html
    assert "Parents or guardians: Gale Guardian." in html
    html = browser.get(f"/record/clients/{by_guardian.id}").get_data(as_text=True)
    assert "Minor: consent by a parent or guardian" in html and "none linked" in html
    assert "Minor:" not in browser.get(f"/record/clients/{adult.id}").get_data(as_text=True)


def test_the_deliver_mail_round_ends_access_at_18_and_the_history_says_so(app, monkeypatch):
    clock = freeze(monkeypatch, date(2026, 6, 14))
    admin, guardian = make_admin(), make_guardian("Gale Guardian")
    client = make_minor(date(2008, 6, 15), guardian=guardian)
    assert run_worker_tasks()["guardian access at 18"] == 0
    clock.advance(1)  # the 18th birthday
    assert run_worker_tasks()["guardian access at 18"] == 1
    db.session.rollback()
    (row,) = db.session.scalars(select(Guardianship).where(Guardianship.minor_id == client.id))
    assert row.end_reason == "turned_18"
    assert len(_events(client.id, "guardianship.ended.turned_18")) == 1
    html = signed_in(app, admin).get(f"/admin/users/{client.id}/minor").get_data(as_text=True)
    assert "ended: turned 18" in html and "No longer a minor" in html
    assert db.session.scalar(select(func.count()).select_from(User).where(
        User.role == Role.GUARDIAN)) == 1


def test_the_demo_has_two_minors_one_of_each_consent_linked_to_their_parent(app):
    from portal.cli import seed_demo

    seed_demo()
    casey = find_by_email("casey@example.org")
    assert casey.role == Role.GUARDIAN
    riley, jesse = find_by_email("riley@example.org"), find_by_email("jesse@example.org")
    assert links.guardian_consented(riley.id) and not links.guardian_consented(jesse.id)
    assert set(links.live_minor_ids(casey.id)) == {riley.id, jesse.id}
    colleen = find_by_email("colleen@coeo.example")
    assigned = set(db.session.scalars(select(Assignment.client_id).where(
        Assignment.therapist_id == colleen.id)))
    assert {riley.id, jesse.id} <= assigned
    html = signed_in(app, find_by_email("admin@coeo.example")).get(
        f"/admin/users/{riley.id}/minor").get_data(as_text=True)
    assert '<a href="/admin/users" aria-current="page">People</a>' in html  # its section


def test_a_guardian_invited_from_the_minors_page_sets_a_password_from_the_email(app, today):
    from tests.accounts.support import link_in, mail_text, outbox

    admin, client = make_admin(), make_minor(date(2012, 3, 3))
    browser = signed_in(app, admin)
    page = f"/admin/users/{client.id}/minor"
    assert _post(browser, page, f"{page}/invite",
                 {"name": "Rowan Parent", "email": "rowan@example.org"}).status_code == 302
    rowan = find_by_email("rowan@example.org")
    (mail,) = outbox("invitation", rowan)
    path, _ = link_in(mail_text(mail))
    invited = app.test_client()
    assert invited.get(path).status_code == 302  # the token moves into the session
    form = invited.get("/invitation")
    assert form.status_code == 200
    done = invited.post("/invitation", data={
        "csrf_token": csrf_from(form.get_data(as_text=True)),
        "password": "a long and quiet guardian passphrase", "confirm":
        "a long and quiet guardian passphrase"})
    assert done.status_code == 302
    db.session.rollback()
    assert db.session.get(User, rowan.id).password_hash  # the account is set up
    assert invited.get(done.location, follow_redirects=True).status_code == 200
