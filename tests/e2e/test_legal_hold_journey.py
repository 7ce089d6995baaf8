"""The legal hold journey in a real browser: an administrator places a hold on a client's
record from their person page (a reason is required), sees it and its history, and releases
it; the record keeping section fits a phone's width.

Practice policy on record retention (45 CFR 164.316(b)(2)): a held record is never purged.
"""

import re

import pytest
from playwright.sync_api import expect

from portal.ops import holds
from tests.e2e.support import sign_in_as
from tests.messaging.conftest import assign, make_user

pytestmark = pytest.mark.e2e


@pytest.fixture
def people(app, db):
    carla = make_user("client", "Carla Client")
    colleen = make_user("therapist", "Colleen Demo")
    ada = make_user("admin", "Ada Admin")
    assign(carla, colleen)
    found = dict(ada=ada, carla_id=carla.id)  # plain values: a model later opens a transaction
    db.session.commit()  # on SQLite an open transaction here would block the server
    return found


@pytest.mark.parametrize("width", [390, 1280])
def test_admin_places_a_hold_sees_it_and_releases_it(browser, live_server, people, db, width):
    context = browser.new_context(base_url=live_server, viewport={"width": width, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    sign_in_as(page, people["ada"])
    page.goto(f"/admin/users/{people['carla_id']}")
    section = page.locator("section.record-keeping")
    expect(section.get_by_role("heading", name="Legal hold")).to_be_visible()
    expect(section.get_by_text("No legal hold.")).to_be_visible()

    # No reason chosen: the page says so on the field, and nothing is held.
    section.get_by_role("button", name="Place hold").click()
    expect(page.locator("#reason-error")).to_contain_text("Choose why the record is held.")
    db.session.remove()
    assert holds.open_hold(people["carla_id"]) is None
    db.session.remove()

    section = page.locator("section.record-keeping")
    section.get_by_label("A dispute").check()
    section.get_by_role("button", name="Place hold").click()
    expect(page.get_by_text("The record is on legal hold")).to_be_visible()
    section = page.locator("section.record-keeping")
    expect(section.get_by_text(re.compile(r"A dispute, since \w+ \d+, \d{4}"))).to_be_visible()
    expect(section.get_by_text(re.compile(r"placed .* by Ada Admin;\s+still open"))).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at {width}px"

    section.get_by_role("button", name="Release hold").click()
    expect(page.get_by_text("The hold is released.")).to_be_visible()
    section = page.locator("section.record-keeping")
    expect(section.get_by_text("No legal hold.")).to_be_visible()
    expect(section.get_by_role("button", name="Release hold")).to_have_count(0)
    expect(section.get_by_text(re.compile(r"released .* by Ada Admin\."))).to_be_visible()
    context.close()
    db.session.remove()
    [hold] = holds.history(people["carla_id"])
    assert hold.reason == "dispute" and hold.released_at is not None
    db.session.remove()
