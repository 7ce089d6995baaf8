"""The messaging journey in a real browser: a client writes with an attachment, the therapist
(signed in with two-step sign-in) finds it at the top of the dashboard, opens it and replies,
and the client sees the reply and the read receipt."""

import re
import time

import pytest
from playwright.sync_api import expect

from portal.mail.templates import SUBJECTS
from portal.messaging import crisis
from tests.e2e.support import sign_in
from tests.messaging.conftest import PASSWORD, PDF, assign, make_user
from tests.messaging.test_crisis import CALM_TEXTS, CRISIS_TEXTS

pytestmark = pytest.mark.e2e


@pytest.fixture
def journey_people(app, db):
    """A client and their therapist (with two-step sign-in), and an answered conversation
    with another client, which the new message must come above."""
    client = make_user("client", "Alex Rivera")
    therapist = make_user("therapist", "Colleen Demo")
    earlier = make_user("client", "Blake Earlier")
    assign(client, therapist)
    assign(earlier, therapist)
    from portal.messaging import sending
    older, _ = sending.start_thread(earlier, counterpart_id=therapist.id,
                                    subject="Older question", body="An older message",
                                    notify=False)
    sending.reply(therapist, older.id, body="Answered already", notify=False)
    people = {"client": (client.email_address, None), "therapist": (therapist.email_address,
                                                                    therapist.totp)}
    db.session.commit()  # on SQLite an open transaction here would block the server
    return people


def test_client_writes_therapist_replies_client_sees_receipt(browser, live_server, page,
                                                              journey_people):
    # The client writes a new message with a PDF attached.
    email, _ = journey_people["client"]
    sign_in(page, email, PASSWORD)
    page.wait_for_load_state()
    expect(page).to_have_url(re.compile(r"/messages$"))
    expect(page).to_have_title("Messages · coeo")
    page.get_by_role("link", name="New message").click()
    expect(page.get_by_text("Messages here are not for emergencies.")).to_be_visible()
    page.get_by_label("Subject").fill("Moving Thursday's session")
    page.get_by_label("Your message").fill("Hi Colleen,\nCould we move Thursday to Friday?")
    expect(page.locator("#crisis-alert")).to_be_hidden()
    page.locator("#attachments").set_input_files(
        files=[{"name": "intake-form.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    expect(page.locator("#attachments-chosen")).to_contain_text("intake-form.pdf")
    page.get_by_role("button", name="Send message").click()
    expect(page.get_by_text("Your message was sent.")).to_be_visible()
    expect(page.locator(".message__body")).to_have_text(
        "Hi Colleen,\nCould we move Thursday to Friday?")
    expect(page.get_by_role("link", name="intake-form.pdf")).to_be_visible()
    expect(page.locator(".message__receipt")).to_have_text("Sent to Colleen · not read yet")

    # The therapist signs in with a code and finds it at the top of the dashboard.
    therapist_context = browser.new_context(base_url=live_server,
                                            viewport={"width": 1200, "height": 900})
    therapist_context.set_default_timeout(10_000)
    therapist_page = therapist_context.new_page()
    csp_errors: list[str] = []
    therapist_page.on("console", lambda msg: csp_errors.append(msg.text)
                      if msg.type == "error" and "Content Security Policy" in msg.text
                      else None)
    email, totp = journey_people["therapist"]
    sign_in(therapist_page, email, PASSWORD, totp.secret)
    therapist_page.wait_for_load_state()
    expect(therapist_page).to_have_url(re.compile(r"/dashboard$"))
    first_row = therapist_page.locator(".dashboard-table tbody tr").first
    expect(first_row).to_contain_text("Alex Rivera")
    expect(first_row).to_contain_text("Moving Thursday's session")
    expect(first_row.locator(".pill")).to_have_text("1")
    expect(therapist_page.locator(".site-nav .pill")).to_contain_text("1")

    # ... opens it, sees the attachment, and replies.
    first_row.get_by_role("link", name="Moving Thursday's session").click()
    expect(therapist_page.locator(".message__body")).to_contain_text(
        "Could we move Thursday to Friday?")
    with therapist_page.expect_download() as download_info:
        therapist_page.get_by_role("link", name="intake-form.pdf").click()
    download = download_info.value
    assert download.suggested_filename == "intake-form.pdf"
    with open(download.path(), "rb") as handle:
        assert handle.read() == PDF
    therapist_page.get_by_label("Your message").fill("Friday at 10 works. See you then.")
    therapist_page.get_by_role("button", name="Send reply").click()
    expect(therapist_page.get_by_text("Your message was sent.")).to_be_visible()
    expect(therapist_page.locator(".message--mine .message__body")).to_have_text(
        "Friday at 10 works. See you then.")
    therapist_context.close()
    assert not csp_errors, csp_errors

    # The client sees the reply, the unread badge, and that their message was read.
    page.goto("/messages")
    expect(page.locator(".site-nav .pill")).to_contain_text("1")
    page.get_by_role("link", name=re.compile("Moving Thursday's session")).click()
    expect(page.locator(".message:not(.message--mine) .message__body")).to_have_text(
        "Friday at 10 works. See you then.")
    expect(page.locator(".message--mine .message__receipt")).to_have_text(
        re.compile(r"^Read by your therapist, \w{3} \d{1,2}:\d{2} (am|pm)$"))

    # Crisis words bring the numbers back before sending, without blocking the send.
    box = page.get_by_label("Your message")
    box.fill("Some days I don't want to be here anymore")
    expect(page.locator("#crisis-alert")).to_be_visible()
    expect(page.locator("#crisis-alert").get_by_role("link", name="Call 988")).to_be_visible()
    box.fill("Thanks, Friday works")
    expect(page.locator("#crisis-alert")).to_be_hidden()
    expect(page.get_by_role("button", name="Send reply")).to_be_enabled()


def test_browser_and_server_agree_on_crisis_language(page, journey_people):
    email, _ = journey_people["client"]
    sign_in(page, email, PASSWORD)
    page.wait_for_load_state()
    page.goto("/messages/new")
    page.wait_for_selector("form[data-crisis-ready]")
    phrases = page.evaluate(
        "async (url) => (await (await fetch(url)).json()).phrases",
        page.locator("form[data-crisis-check]").get_attribute("data-crisis-check"))
    for text in CRISIS_TEXTS + CALM_TEXTS:
        in_browser = page.evaluate(
            "([text, phrases]) => window.coeoCrisis.matches([text], "
            "phrases.map((p) => window.coeoCrisis.normalize(p).trim()))", [text, phrases])
        assert in_browser == crisis.matches(text), text


def test_the_therapist_is_emailed_a_notice_once_the_page_has_answered(
        app, page, journey_people, smtp_server):
    """Through a real server: the page does not wait for the mail server, and the notice
    that follows says nothing but that there is a message."""
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    email, _ = journey_people["client"]
    sign_in(page, email, PASSWORD)
    page.wait_for_load_state()
    page.goto("/messages/new")
    page.get_by_label("Subject").fill("Private subject for the notice test")
    page.get_by_label("Your message").fill("Private words for the notice test")
    page.get_by_role("button", name="Send message").click()
    expect(page.get_by_text("Your message was sent.")).to_be_visible()
    for _ in range(100):  # sent by the server once it has closed the answer
        if smtp_server.envelopes:
            break
        time.sleep(0.05)
    (notice,) = smtp_server.envelopes
    therapist_email, _ = journey_people["therapist"]
    assert notice.rcpt_tos == (therapist_email,)
    assert notice.message["Subject"] == SUBJECTS["new_message"]
    content = notice.content.decode("utf-8", "replace")
    for private in ("Private", "Alex", "Rivera", "therapy"):
        assert private not in content
