"""Covering clinicians (on call): administrators name them from People; each change audited."""

import pytest
from sqlalchemy import select

from portal import hooks
from portal.accounts.identity import find_by_email
from portal.accounts.service import covering_clinicians
from portal.audit import AuditEvent
from portal.cli import seed_demo
from portal.extensions import db
from portal.messaging import sending
from tests.accounts.support import audit_actions, fresh, make_user, post_form, sign_in


@pytest.fixture
def admin(app):
    """Return (admin person, signed-in client)."""
    person = make_user("admin", name="Ada Admin")
    client = app.test_client()
    sign_in(client, person)
    return person, client


def test_the_people_page_links_to_the_covering_page(app, admin):
    _, client = admin
    html = client.get("/admin/users").get_data(as_text=True)
    assert 'href="/admin/covering"' in html and "Covering clinicians (on call)" in html


def test_an_admin_names_a_covering_clinician_and_stops_again(app, admin):
    person, client = admin
    therapist = make_user("therapist", name="Kim Cover")
    page = client.get("/admin/covering").get_data(as_text=True)
    assert "Kim Cover" in page and "Nobody is covering right now" in page
    made = post_form(client, f"/admin/covering/{therapist.id}", {"covering": "1"},
                     page="/admin/covering")
    assert made.status_code == 302
    assert fresh(therapist.user).covering
    assert [t.id for t in covering_clinicians()] == [therapist.id]
    page = client.get("/admin/covering").get_data(as_text=True)
    assert "Nobody is covering right now" not in page and "Stop covering" in page
    [event] = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "practice.covering_added")).all()
    assert event.actor_id == person.id and event.target_id == str(therapist.id)
    stopped = post_form(client, f"/admin/covering/{therapist.id}", {"covering": "0"},
                        page="/admin/covering")
    assert stopped.status_code == 302 and not fresh(therapist.user).covering
    assert "practice.covering_removed" in audit_actions()


def test_only_active_therapists_can_cover(app, admin):
    _, client = admin
    other_client = make_user("client", name="Casey Client")
    post_form(client, f"/admin/covering/{other_client.id}", {"covering": "1"},
              page="/admin/covering")
    assert not fresh(other_client.user).covering
    gone = make_user("therapist", name="Dee Gone", active=False)
    response = post_form(client, f"/admin/covering/{gone.id}", {"covering": "1"},
                         page="/admin/covering", follow_redirects=True)
    assert "deactivated" in response.get_data(as_text=True)
    assert not fresh(gone.user).covering


def test_the_last_covering_clinician_cannot_leave_a_practice_message_unread(app, admin):
    _, client = admin
    therapist = make_user("therapist", name="Kim Cover")
    post_form(client, f"/admin/covering/{therapist.id}", {"covering": "1"},
              page="/admin/covering")
    newcomer = make_user("client", name="Nova Lee")
    sending.start_thread(fresh(newcomer.user), to_practice=True, subject="Hello",
                         body="Could someone call me?", notify=False)
    response = post_form(client, f"/admin/covering/{therapist.id}", {"covering": "0"},
                         page="/admin/covering", follow_redirects=True)
    assert "nobody to answer" in response.get_data(as_text=True)
    assert fresh(therapist.user).covering  # nothing changed


def test_covering_needs_an_admin_and_a_csrf_token(app, admin):
    _, client = admin
    therapist = make_user("therapist", name="Kim Cover")
    assert client.post(f"/admin/covering/{therapist.id}",
                       data={"covering": "1"}).status_code == 400
    other = app.test_client()
    sign_in(other, therapist)
    assert other.get("/admin/covering").status_code == 404
    assert not fresh(therapist.user).covering


def test_kristen_covers_in_the_demo_practice(app, db, monkeypatch):
    monkeypatch.setattr(hooks.demo_seeders, "_entries", [])
    seed_demo()
    kristen = find_by_email("kristen@coeo.example")
    assert kristen.covering
    assert [t.id for t in covering_clinicians()] == [kristen.id]
