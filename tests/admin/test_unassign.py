"""Removing a therapist from a client says what happened, and audits only a real removal."""

import pytest
from sqlalchemy import select

from portal.accounts.models import Assignment
from portal.extensions import db
from tests.accounts.support import audit_actions, make_user, post_form, sign_in

REMOVED = "Assignment removed."
NOT_ASSIGNED = "That therapist was not assigned to this client."


def _assigned(person) -> list:
    ids = list(db.session.scalars(select(Assignment.therapist_id)
                                  .where(Assignment.client_id == person.id)))
    db.session.commit()
    return ids


@pytest.fixture
def assigned(app):
    """An administrator's client, a client's page, and a therapist assigned through it."""
    client = app.test_client()
    sign_in(client, make_user("admin", name="Ada Admin"))
    person = make_user(name="Carla Client")
    therapist = make_user("therapist", name="Colleen Demo")
    page = f"/admin/users/{person.id}"
    post_form(client, f"{page}/assign", {"therapist": str(therapist.id)}, page=page)
    assert _assigned(person) == [therapist.id]
    return client, person, therapist, page


def _unassign(client, page, therapist) -> str:
    response = post_form(client, f"{page}/unassign/{therapist.id}", page=page,
                         follow_redirects=True)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_removing_an_assignment_confirms_it_and_audits_it(assigned):
    client, person, therapist, page = assigned
    html = _unassign(client, page, therapist)
    assert 'class="flash flash--success"' in html and REMOVED in html
    assert NOT_ASSIGNED not in html
    assert _assigned(person) == []
    assert audit_actions(action="assignment.removed", subject_id=person.id) == [
        "assignment.removed"]


def test_removing_an_assignment_that_does_not_exist_says_so_and_audits_nothing(assigned):
    client, person, therapist, page = assigned
    html = _unassign(client, page, make_user("therapist", name="Kristen Demo"))
    assert 'class="flash flash--info"' in html and NOT_ASSIGNED in html
    assert REMOVED not in html and "flash--success" not in html
    assert _assigned(person) == [therapist.id]  # the real assignment is untouched
    assert audit_actions(action="assignment.removed") == []


def test_removing_the_same_assignment_twice_audits_it_once(assigned):
    client, person, therapist, page = assigned
    first, second = _unassign(client, page, therapist), _unassign(client, page, therapist)
    assert REMOVED in first
    assert NOT_ASSIGNED in second and REMOVED not in second
    assert audit_actions(action="assignment.removed", subject_id=person.id) == [
        "assignment.removed"]
