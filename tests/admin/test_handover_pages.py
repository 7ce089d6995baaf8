"""The administrator's handover pages: removing a therapist or deactivating an account first
shows what is at stake and asks who takes over; a bad choice changes nothing (422)."""

import pytest
from sqlalchemy import select

from portal.accounts.models import Assignment, User
from portal.accounts.service import set_covering
from portal.audit import AuditEvent
from portal.estimates.drafting import start_draft
from portal.extensions import db
from portal.messaging import care, sending
from portal.messaging.models import Thread
from tests.accounts.support import csrf_from, fresh
from tests.messaging.conftest import assign
from tests.support.auth import signed_in
from tests.support.people import make_user

CRISIS = "I feel suicidal tonight"


@pytest.fixture
def practice(app):
    carla = make_user("client", "Carla Client")
    colleen = make_user("therapist", "Colleen Demo")
    kristen = make_user("therapist", "Kristen Young")
    dana = make_user("therapist", "Dana Cover")
    zoe = make_user("therapist", "Zoe Second")
    ada = make_user("admin", "Ada Admin")
    assign(carla, colleen)
    assign(carla, zoe)
    set_covering(ada, dana, True)
    thread, _ = sending.start_thread(carla, counterpart_id=colleen.id, subject="Tonight",
                                     body=CRISIS)
    return dict(carla=carla, colleen=colleen, kristen=kristen, dana=dana, zoe=zoe, ada=ada,
                thread=thread.id, browser=signed_in(app, ada))


def _post(browser, path: str, data: dict):
    token = csrf_from(browser.get(path).get_data(as_text=True))
    return browser.post(path, data={**data, "csrf_token": token}, buffered=True)


def _holder(thread_id):
    found = db.session.scalar(select(Thread.therapist_id).where(Thread.id == thread_id))
    db.session.commit()
    return found


def _assigned(client) -> set:
    ids = set(db.session.scalars(select(Assignment.therapist_id)
                                 .where(Assignment.client_id == client.id)))
    db.session.commit()
    return ids


def test_the_account_page_links_to_the_confirmation_pages(practice):
    p = practice
    html = p["browser"].get(f"/admin/users/{p['carla'].id}").get_data(as_text=True)
    assert f'href="/admin/users/{p["carla"].id}/unassign/{p["colleen"].id}"' in html
    assert f'href="/admin/users/{p["carla"].id}/deactivate/confirm"' in html


def test_the_unassign_page_shows_the_stakes_and_orders_the_choices(practice):
    p = practice
    response = p["browser"].get(f"/admin/users/{p['carla'].id}/unassign/{p['colleen'].id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<strong>1</strong> open conversation" in html
    assert "<strong>1</strong> unread message" in html and "crisis flag" in html
    assert "Tonight" not in html  # never a subject or message on an admin page
    order = [html.index(name) for name in ("Zoe Second", "Dana Cover", "Kristen Young")]
    assert order == sorted(order)
    assert html.index("Already caring") < html.index("Covering clinicians") < html.index(
        "Other therapists")
    assert ">Colleen Demo</option>" not in html  # not the one leaving


@pytest.mark.parametrize("choice", ["", "not-a-uuid", "leaving", "inactive", "client"])
def test_a_bad_choice_is_422_inline_and_changes_nothing(practice, choice):
    p = practice
    value = {"": "", "not-a-uuid": "nope", "leaving": str(p["colleen"].id),
             "inactive": str(make_user("therapist", "Gone Away", active=False).id),
             "client": str(p["carla"].id)}[choice]
    path = f"/admin/users/{p['carla'].id}/unassign/{p['colleen'].id}"
    response = _post(p["browser"], path, {"therapist": value})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Nothing was changed" in html and 'aria-invalid="true"' in html
    assert _holder(p["thread"]) == p["colleen"].id
    assert _assigned(p["carla"]) == {p["colleen"].id, p["zoe"].id}


def test_handing_over_from_the_page_moves_the_conversation(practice):
    p = practice
    path = f"/admin/users/{p['carla'].id}/unassign/{p['colleen'].id}"
    response = _post(p["browser"], path, {"therapist": str(p["kristen"].id)})
    assert response.status_code == 302
    html = p["browser"].get(response.location).get_data(as_text=True)
    assert "1 conversation is now with Kristen Young" in html
    assert _holder(p["thread"]) == p["kristen"].id
    assert _assigned(p["carla"]) == {p["kristen"].id, p["zoe"].id}


def test_without_conversations_the_page_is_a_plain_confirmation(practice):
    p = practice
    path = f"/admin/users/{p['carla'].id}/unassign/{p['zoe'].id}"
    html = p["browser"].get(path).get_data(as_text=True)
    assert "has no conversations with Zoe Second" in html and "<select" not in html
    response = _post(p["browser"], path, {})
    assert response.status_code == 302
    assert _assigned(p["carla"]) == {p["colleen"].id}


def test_the_old_one_click_post_cannot_orphan_a_conversation(practice):
    p = practice
    path = f"/admin/users/{p['carla'].id}/unassign/{p['colleen'].id}"
    token = csrf_from(p["browser"].get(f"/admin/users/{p['carla'].id}").get_data(as_text=True))
    response = p["browser"].post(path, data={"csrf_token": token}, buffered=True)
    assert response.status_code == 422
    assert "Choose who takes over these conversations" in response.get_data(as_text=True)
    assert _assigned(p["carla"]) == {p["colleen"].id, p["zoe"].id}
    assert care.orphaned_threads() == []


def test_a_post_without_its_csrf_token_is_refused(practice):
    p = practice
    path = f"/admin/users/{p['carla'].id}/unassign/{p['colleen'].id}"
    response = p["browser"].post(path, data={"therapist": str(p["kristen"].id)})
    assert response.status_code == 400
    assert _holder(p["thread"]) == p["colleen"].id


def test_deactivating_a_therapist_asks_per_client_then_hands_over(practice):
    p = practice
    bea = make_user("client", "Bea Client")
    assign(bea, p["colleen"])
    sending.start_thread(p["colleen"], counterpart_id=bea.id, subject="Hello", body="Welcome")
    path = f"/admin/users/{p['colleen'].id}/deactivate/confirm"
    html = p["browser"].get(path).get_data(as_text=True)
    assert "Carla Client" in html and "Bea Client" in html
    assert html.count("<select") == 2
    # One missing: 422, that select marked, nothing changed.
    response = _post(p["browser"], path, {f"target-{p['carla'].id}": str(p["kristen"].id)})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert html.count('aria-invalid="true"') == 1
    assert fresh(p["colleen"]).active and _holder(p["thread"]) == p["colleen"].id
    response = _post(p["browser"], path, {f"target-{p['carla'].id}": str(p["kristen"].id),
                                          f"target-{bea.id}": str(p["dana"].id)})
    assert response.status_code == 302
    assert not fresh(p["colleen"]).active
    assert _holder(p["thread"]) == p["kristen"].id
    assert care.orphaned_threads() == []


def test_the_old_one_click_deactivation_of_a_therapist_with_conversations_is_refused(practice):
    p = practice
    page = f"/admin/users/{p['colleen'].id}"
    token = csrf_from(p["browser"].get(page).get_data(as_text=True))
    response = p["browser"].post(f"{page}/deactivate", data={"csrf_token": token},
                                 buffered=True)
    html = p["browser"].get(response.location).get_data(as_text=True)
    assert "would have nobody to answer it" in html
    assert fresh(p["colleen"]).active


def test_deactivating_a_client_needs_a_reason_from_the_list(practice):
    p = practice
    path = f"/admin/users/{p['carla'].id}/deactivate/confirm"
    html = p["browser"].get(path).get_data(as_text=True)
    assert "Safety or security" in html and 'name="reason"' in html
    for bad in ({}, {"reason": "she is moving to Ohio"}):
        response = _post(p["browser"], path, bad)
        assert response.status_code == 422
        assert "Choose why this account is being deactivated." in response.get_data(
            as_text=True)
        assert fresh(p["carla"]).active
    response = _post(p["browser"], path, {"reason": "client_asked"})
    assert response.status_code == 302
    assert not fresh(p["carla"]).active
    actions = list(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.target_id == str(p["carla"].id))))
    assert "account.deactivation_reason.client_asked" in actions
    assert not db.session.get(User, p["carla"].id).active


def test_estimates_in_progress_are_shown_at_stake(practice):
    p = practice
    start_draft(p["colleen"], db.session.get(User, p["carla"].id))
    db.session.commit()
    path = f"/admin/users/{p['carla'].id}/unassign/{p['colleen'].id}"
    html = p["browser"].get(path).get_data(as_text=True)
    assert "<strong>1</strong> Good Faith Estimate in progress" in html
    html = p["browser"].get(f"/admin/users/{p['carla'].id}/unassign/{p['zoe'].id}").get_data(
        as_text=True)
    assert "in progress (drafts)" not in html  # Zoe has none
