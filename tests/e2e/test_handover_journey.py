"""The handover journey in a real browser: an administrator removes a client's therapist and
chooses who takes the conversation over; the new therapist finds it at the top of their
dashboard marked "Handed over from ..."; the client reads who answers now."""

import re

import pytest
from playwright.sync_api import expect

from portal.messaging import sending
from tests.e2e.support import new_page, sign_in_as
from tests.messaging.conftest import assign, make_user

pytestmark = pytest.mark.e2e


@pytest.fixture
def people(app, db):
    carla = make_user("client", "Carla Client")
    colleen = make_user("therapist", "Colleen Demo")
    kristen = make_user("therapist", "Kristen Young")
    ada = make_user("admin", "Ada Admin")
    assign(carla, colleen)
    other = make_user("client", "Olive Other")
    assign(other, kristen)
    sending.start_thread(other, counterpart_id=kristen.id, subject="Olive's question",
                         body="A question", notify=False)
    thread, _ = sending.start_thread(carla, counterpart_id=colleen.id,
                                     subject="Thursday", body="Can we talk on Thursday?",
                                     notify=False)
    found = dict(carla=carla, kristen=kristen, ada=ada, carla_id=carla.id,
                 thread=thread.id)  # plain values: reading a model later opens a transaction
    db.session.commit()  # on SQLite an open transaction here would block the server
    return found


def test_admin_hands_over_new_therapist_sees_marker_client_sees_who_answers(
        browser, live_server, people):
    def fresh_page():
        return new_page(browser, live_server, 1200)

    # The administrator removes Colleen, and must choose who takes the conversation over.
    context, page = fresh_page()
    sign_in_as(page, people["ada"])
    page.goto(f"/admin/users/{people['carla_id']}")
    page.get_by_role("link", name="Remove… Colleen Demo").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Remove Colleen Demo from Carla Client\u2019s care")
    expect(page.get_by_text("open conversation")).to_be_visible()
    choice = page.get_by_label("Who takes these conversations over?")
    page.get_by_role("button", name="Hand over and remove Colleen Demo").click()
    assert choice.evaluate("el => el.validity.valueMissing")  # the browser asks first
    expect(page).to_have_url(re.compile(r"/unassign/"))
    choice.select_option(label="Kristen Young")
    page.get_by_role("button", name="Hand over and remove Colleen Demo").click()
    expect(page.get_by_text("1 conversation is now with Kristen Young")).to_be_visible()
    context.close()

    # Kristen finds it first on her dashboard, marked, and opening it clears the marker.
    context, page = fresh_page()
    sign_in_as(page, people["kristen"])
    page.goto("/dashboard")
    first_row = page.locator("table.dashboard-table tbody tr").first
    expect(first_row).to_contain_text("Carla Client")
    expect(first_row).to_contain_text("Handed over from Colleen Demo")
    first_row.get_by_role("link", name="Thursday").click()
    expect(page.get_by_text("Handed over to Kristen Young from Colleen Demo")).to_be_visible()
    page.get_by_role("link", name="Home").first.click()
    expect(page.get_by_text("Handed over from Colleen Demo")).to_have_count(0)
    context.close()

    # Carla reads who answers now, in the conversation itself.
    context, page = fresh_page()
    sign_in_as(page, people["carla"])
    page.goto(f"/messages/{people['thread']}")
    expect(page.get_by_text(re.compile(
        r"Kristen Young answers this conversation now \(since .+\)"))).to_be_visible()
    expect(page.get_by_label(re.compile("reply|message", re.I)).first).to_be_visible()
    context.close()
