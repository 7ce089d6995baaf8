"""Removing a therapist from a client says what happened, and audits only a real removal."""

from sqlalchemy import select

from portal.accounts.models import Assignment
from portal.extensions import db
from tests.accounts.support import audit_actions, make_user, post_form, sign_in

REMOVED = "Assignment removed."
NOT_ASSIGNED = "That therapist was not assigned to this client."


def _admin_client(app):
    client = app.test_client()
    sign_in(client, make_user("admin", name="Ada Admin"))
    return client


def _assigned(person) -> list:
    ids = list(db.session.scalars(select(Assignment.therapist_id)
                                  .where(Assignment.client_id == person.id)))
    db.session.commit()
    return ids


def test_removing_an_assignment_confirms_it_and_audits_it(app):
    client = _admin_client(app)
    person = make_user(name="Carla Client")
    therapist = make_user("therapist", name="Colleen Demo")
    page = f"/admin/users/{person.id}"
    post_form(client, f"{page}/assign", {"therapist": str(therapist.id)}, page=page)
    assert _assigned(person) == [therapist.id]

    response = post_form(client, f"{page}/unassign/{therapist.id}", page=page,
                         follow_redirects=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'class="flash flash--success"' in html and REMOVED in html
    assert NOT_ASSIGNED not in html
    assert _assigned(person) == []
    assert audit_actions(action="assignment.removed", subject_id=person.id) == [
        "assignment.removed"]


def test_removing_an_assignment_that_does_not_exist_says_so_and_audits_nothing(app):
    client = _admin_client(app)
    person = make_user(name="Carla Client")
    assigned = make_user("therapist", name="Kristen Demo")
    never_assigned = make_user("therapist", name="Colleen Demo")
    page = f"/admin/users/{person.id}"
    post_form(client, f"{page}/assign", {"therapist": str(assigned.id)}, page=page)

    response = post_form(client, f"{page}/unassign/{never_assigned.id}", page=page,
                         follow_redirects=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'class="flash flash--info"' in html and NOT_ASSIGNED in html
    assert REMOVED not in html and "flash--success" not in html
    assert _assigned(person) == [assigned.id]  # the real assignment is untouched
    assert audit_actions(action="assignment.removed") == []


def test_removing_the_same_assignment_twice_audits_it_once(app):
    client = _admin_client(app)
    person = make_user(name="Carla Client")
    therapist = make_user("therapist", name="Colleen Demo")
    page = f"/admin/users/{person.id}"
    post_form(client, f"{page}/assign", {"therapist": str(therapist.id)}, page=page)
    url = f"{page}/unassign/{therapist.id}"
    first = post_form(client, url, page=page, follow_redirects=True).get_data(as_text=True)
    second = post_form(client, url, page=page, follow_redirects=True).get_data(as_text=True)
    assert REMOVED in first
    assert NOT_ASSIGNED in second and REMOVED not in second
    assert audit_actions(action="assignment.removed", subject_id=person.id) == [
        "assignment.removed"]
