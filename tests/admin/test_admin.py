"""Admin screens: people, invitations, (de)activation, assignments, two-step resets, audit."""

import re
import uuid

import pytest
from sqlalchemy import select

from portal.accounts import service
from portal.accounts.models import Assignment
from portal.admin import service as admin_service
from portal.audit import AuditEvent
from portal.extensions import db
from tests.accounts.support import (
    audit_actions,
    fresh,
    make_user,
    post_form,
    sign_in,
)

ADMIN_GETS = ("/admin/users", "/admin/users/invite", "/admin/users/{id}", "/admin/audit")
ADMIN_POSTS = ("/admin/users/invite", "/admin/users/{id}/deactivate",
               "/admin/users/{id}/reactivate", "/admin/users/{id}/resend",
               "/admin/users/{id}/reset-2fa", "/admin/users/{id}/assign",
               "/admin/users/{id}/unassign/{id}", "/admin/audit")


@pytest.fixture
def admin(app):
    """Return (admin person, signed-in client)."""
    person = make_user("admin", name="Ada Admin")
    client = app.test_client()
    sign_in(client, person)
    return person, client


def _assigned(client_person) -> list[uuid.UUID]:
    ids = list(db.session.scalars(select(Assignment.therapist_id)
                                  .where(Assignment.client_id == client_person.id)))
    db.session.commit()
    return sorted(ids)


@pytest.mark.parametrize("role", ["client", "therapist"])
def test_non_admins_get_not_found_on_every_admin_page(app, role):
    person = make_user(role)
    target = make_user()
    client = app.test_client()
    sign_in(client, person)
    for path in ADMIN_GETS:
        assert client.get(path.format(id=target.id)).status_code == 404, path
    for path in ADMIN_POSTS:
        url = path.format(id=target.id)
        response = post_form(client, url, {"therapist": str(person.id)}, page="/account")
        assert response.status_code == 404, path
    assert fresh(target.user).active
    assert audit_actions(action="account.deactivated") == []


def test_people_list_shows_everyone_with_role_and_state(admin):
    _, client = admin
    make_user(name="Carla Client")
    make_user(password=None, name="Ivy Invited")
    make_user(active=False, name="Dee Deactivated")
    make_user("therapist", name="Theo Therapist")
    html = client.get("/admin/users").get_data(as_text=True)
    for name in ("Carla Client", "Ivy Invited", "Dee Deactivated", "Theo Therapist", "Ada Admin"):
        assert name in html
    assert ">Invited<" in html and ">Deactivated<" in html
    clients_only = client.get("/admin/users?role=client").get_data(as_text=True)
    assert "Carla Client" in clients_only and "Theo Therapist" not in clients_only
    assert client.get("/admin/users?role=nonsense").status_code == 200


def test_user_detail_shows_the_account_without_any_message_content(admin):
    _, client = admin
    person = make_user(name="Carla Client")
    html = client.get(f"/admin/users/{person.id}").get_data(as_text=True)
    assert "Carla Client" in html and person.email in html
    assert "No therapist assigned yet." in html
    main = html.split('<main id="main"')[1].split("</main>")[0]
    assert "message" not in main.lower()


def test_unknown_user_is_not_found(admin):
    _, client = admin
    assert client.get(f"/admin/users/{uuid.uuid4()}").status_code == 404
    assert client.get("/admin/users/not-a-uuid").status_code == 404


def test_deactivation_ends_sessions_and_is_audited(app, admin):
    admin_person, client = admin
    person = make_user()
    their_browser = app.test_client()
    sign_in(their_browser, person)
    response = post_form(client, f"/admin/users/{person.id}/deactivate", {"reason": "other"},
                         page=f"/admin/users/{person.id}")
    assert response.location == f"/admin/users/{person.id}"
    assert not fresh(person.user).active
    assert their_browser.get("/account").status_code == 302
    assert sign_in(app.test_client(), person).status_code == 422  # refused
    events = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "account.deactivated")).all()
    assert [(e.actor_id, e.target_id) for e in events] == [(admin_person.id, str(person.id))]
    db.session.commit()
    post_form(client, f"/admin/users/{person.id}/reactivate", page=f"/admin/users/{person.id}")
    assert fresh(person.user).active
    assert "account.reactivated" in audit_actions(target_id=str(person.id))
    assert sign_in(app.test_client(), person).status_code == 302


def test_admin_cannot_deactivate_themselves(admin):
    admin_person, client = admin
    response = post_form(client, f"/admin/users/{admin_person.id}/deactivate",
                         page=f"/admin/users/{admin_person.id}")
    assert response.status_code == 302
    assert fresh(admin_person.user).active
    page = client.get(response.location).get_data(as_text=True)
    assert "You cannot deactivate your own account." in page


def test_resend_is_refused_once_the_account_is_set_up(admin):
    _, client = admin
    person = make_user()
    response = post_form(client, f"/admin/users/{person.id}/resend",
                         page=f"/admin/users/{person.id}", follow_redirects=True)
    assert "already set up their account" in response.get_data(as_text=True)


def test_a_client_may_have_several_therapists(admin):
    _, client = admin
    person = make_user()
    colleen = make_user("therapist", name="Colleen Demo")
    kristen = make_user("therapist", name="Kristen Demo")
    page = f"/admin/users/{person.id}"
    for therapist in (colleen, kristen, colleen):  # the second Colleen is a no-op
        response = post_form(client, f"{page}/assign", {"therapist": str(therapist.id)},
                             page=page)
        assert response.status_code == 302
    assert _assigned(person) == sorted([colleen.id, kristen.id])
    html = client.get(page).get_data(as_text=True)
    assert "Colleen Demo" in html and "Kristen Demo" in html
    assert '<select id="therapist"' not in html  # nobody left to add
    assert "Every therapist in the practice is assigned" in html
    assert audit_actions(action="assignment.added", subject_id=person.id) == [
        "assignment.added"] * 2
    post_form(client, f"{page}/unassign/{colleen.id}", page=page)
    assert _assigned(person) == [kristen.id]
    options = re.findall(r'<option value="([^"]*)"', client.get(page).get_data(as_text=True))
    assert options == [str(colleen.id)]
    assert audit_actions(action="assignment.removed", subject_id=person.id) == [
        "assignment.removed"]
    therapist_page = client.get(f"/admin/users/{kristen.id}").get_data(as_text=True)
    assert person.name in therapist_page
    assert person.name not in client.get(f"/admin/users/{colleen.id}").get_data(as_text=True)


@pytest.mark.parametrize("therapist", ["", "not-a-uuid", "5f0c0e57-0000-4000-8000-00000000dead",
                                       "client", "admin"])
def test_assigning_anything_but_a_therapist_is_refused(admin, therapist):
    admin_person, client = admin
    person = make_user()
    other_client = make_user()
    value = {"client": str(other_client.id), "admin": str(admin_person.id)}.get(therapist,
                                                                              therapist)
    page = f"/admin/users/{person.id}"
    response = post_form(client, f"{page}/assign", {"therapist": value}, page=page,
                         follow_redirects=True)
    assert "Choose a therapist." in response.get_data(as_text=True)
    assert _assigned(person) == []


def test_therapists_cannot_be_assigned_to_therapists(admin):
    _, client = admin
    therapist, other = make_user("therapist"), make_user("therapist")
    page = f"/admin/users/{therapist.id}"
    response = post_form(client, f"{page}/assign", {"therapist": str(other.id)}, page=page,
                         follow_redirects=True)
    assert "Only clients are assigned to therapists." in response.get_data(as_text=True)


def test_invite_form_offers_active_therapists_and_assigns_one(admin):
    _, client = admin
    therapist = make_user("therapist", name="Colleen Demo")
    make_user("therapist", name="Gone Therapist", active=False)
    html = client.get("/admin/users/invite").get_data(as_text=True)
    assert "Colleen Demo" in html and "Gone Therapist" not in html
    response = post_form(client, "/admin/users/invite", {
        "name": "New Client", "email": "new.client@example.org", "role": "client",
        "therapist": str(therapist.id)})
    user_id = uuid.UUID(response.location.rsplit("/", 1)[1])
    assert [t.id for t in service.therapists_of(user_id)] == [therapist.id]


def test_invite_form_refuses_an_unknown_role(admin):
    _, client = admin
    response = post_form(client, "/admin/users/invite", {
        "name": "New Person", "email": "new.person@example.org", "role": "superuser"})
    assert response.status_code == 422
    assert 'id="role-error"' in response.get_data(as_text=True)


def test_reset_two_step_button_appears_only_when_it_is_on(admin):
    _, client = admin
    with_mfa, without = make_user("therapist"), make_user()
    assert "Reset two-step sign-in" in client.get(
        f"/admin/users/{with_mfa.id}").get_data(as_text=True)
    assert "Reset two-step sign-in" not in client.get(
        f"/admin/users/{without.id}").get_data(as_text=True)


def test_audit_page_shows_the_events_and_ids_only(admin, monkeypatch):
    _, client = admin
    person = make_user(name="Carla Client")
    client.get(f"/admin/users/{person.id}")
    post_form(client, f"/admin/users/{person.id}/deactivate", {"reason": "other"},
              page=f"/admin/users/{person.id}")
    monkeypatch.setattr(admin_service, "verify", _must_not_walk)
    html = client.get("/admin/audit").get_data(as_text=True)
    assert "Check the chain now" in html and "The chain is intact" not in html
    assert "account.deactivated" in html
    main = html.split('<main id="main"')[1].split("</main>")[0]
    assert "Carla" not in main and "@" not in main
    assert re.search(r"auth\.signin\.success", main)


def _must_not_walk():
    raise AssertionError("a visit to the audit page walked the whole chain")


def test_the_chain_is_checked_when_the_admin_asks(admin):
    _, client = admin
    response = post_form(client, "/admin/audit")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "The chain is intact" in html and "auth.signin.success" in html


def test_a_broken_chain_is_reported_when_checked(admin, monkeypatch):
    _, client = admin
    monkeypatch.setattr(admin_service, "verify",
                        lambda: admin_service.VerifyResult(False, 3, 2, "event #2 changed"))
    html = post_form(client, "/admin/audit").get_data(as_text=True)
    assert "The chain is broken at event #2" in html
