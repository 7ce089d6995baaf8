"""Download my record in a real browser (#15): from the Account page, a wrong password is
refused on the field, the right one gives a download link, the ZIP arrives and reads back,
and the link works once. The pages fit a phone's width.

The right of access to one's own record: 45 CFR 164.524.
"""

import json
import zipfile

import pytest
from playwright.sync_api import expect

from portal.messaging import sending
from tests.e2e.support import sign_in_as
from tests.messaging.conftest import PNG, assign, make_user

pytestmark = pytest.mark.e2e


@pytest.fixture
def people(app, db):
    carla = make_user("client", "Carla Núñez")
    colleen = make_user("therapist", "Colleen Demo")
    assign(carla, colleen)
    sending.start_thread(carla, counterpart_id=colleen.id, subject="Sleep",
                         body="Hello Colleen — a photo of my notes", files=[("notes.png", PNG)],
                         notify=False)
    db.session.commit()  # on SQLite an open transaction here would block the server
    return {"carla": carla}


@pytest.mark.parametrize("width", [390, 1280])
def test_a_client_downloads_their_record(browser, live_server, people, db, width, tmp_path):
    context = browser.new_context(base_url=live_server, viewport={"width": width, "height": 900},
                                  accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    sign_in_as(page, people["carla"])
    page.goto("/account")
    section = page.locator("section", has=page.get_by_role("heading", name="Download my record"))
    expect(section).to_be_visible()
    section.get_by_role("link", name="Download my record").click()
    expect(page.get_by_role("heading", name="Download my record", level=1)).to_be_visible()

    page.get_by_label("Your password").fill("not my password")
    page.get_by_role("button", name="Prepare the download").click()
    expect(page.get_by_text("That is not your current password.")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at {width}px"

    page.get_by_label("Your password").fill(people["carla"].password)
    page.get_by_role("button", name="Prepare the download").click()
    expect(page.get_by_role("heading", name="Your download is ready")).to_be_visible()
    link = page.get_by_role("link", name="Download the ZIP file")
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename.startswith("coeo-record-")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        (record_json,) = [n for n in names if n.endswith("/record.json")]
        data = json.loads(archive.read(record_json))
        (message,) = data["conversations"][0]["messages"]
        assert message["body"] == "Hello Colleen — a photo of my notes"
        top = names[0].split("/")[0]
        assert archive.read(f"{top}/{message['attachments'][0]['file']}") == PNG
        assert any(n.endswith("/MANIFEST.txt") for n in names)

    # the link worked once: following it again asks to confirm again
    page.goto(link.get_attribute("href"))
    expect(page.get_by_role("heading", name="This download link has been used")).to_be_visible()
    context.close()
