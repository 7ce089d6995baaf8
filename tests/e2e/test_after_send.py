"""After sending, on a 390 x 844 phone: the page opens at the sent message with "Sent to
Colleen" beside it, not at the empty reply box; a crisis-worded message also shows the
follow-up with its tappable tel: and sms: links, in view."""

import re

import pytest
from playwright.sync_api import expect

from tests.messaging.conftest import PASSWORD, assign, make_user

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
EARLIER = 12  # enough earlier messages that the page is several screens long


@pytest.fixture
def conversation(app, db):
    """A client and their therapist Colleen, with a long conversation between them."""
    from portal.messaging import sending

    client = make_user("client", "Alex Rivera")
    therapist = make_user("therapist", "Colleen Xu")
    assign(client, therapist)
    thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                     subject="This week", body="Hello Colleen.", notify=False)
    for n in range(EARLIER):
        author = therapist if n % 2 == 0 else client
        sending.reply(author, thread.id, notify=False,
                      body=f"Message {n}: a few lines about the week, so that the page "
                           "grows long enough to need scrolling on a phone.\nAnd a second "
                           "line.")
    found = client.email_address, thread.id  # read before the commit expires them
    db.session.commit()  # on SQLite an open transaction here would block the server
    return found


@pytest.fixture
def phone(browser, live_server):
    """A fresh browser context with a phone-sized viewport."""
    context = browser.new_context(base_url=live_server, viewport=PHONE, is_mobile=True,
                                  has_touch=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors


def _sign_in_and_open(page, email: str, thread_id) -> None:
    page.goto("/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/messages$"))
    page.goto(f"/messages/{thread_id}")


def _in_view(page, locator) -> dict:
    """Assert the element is wholly inside the viewport; return its box."""
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    assert box is not None
    assert box["y"] >= 0, box
    assert box["y"] + box["height"] <= PHONE["height"], box
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    return box


def _send(page, text: str) -> None:
    page.get_by_label("Your message").fill(text)
    page.get_by_role("button", name="Send reply").click()
    page.wait_for_url(re.compile(r"/messages/[0-9a-f-]+#m-[0-9a-f-]+$"))
    page.wait_for_load_state()


def test_after_a_reply_the_sent_message_and_sent_to_are_in_view(phone, conversation):
    email, thread_id = conversation
    _sign_in_and_open(phone, email, thread_id)
    _send(phone, "Thank you, see you on Thursday.")

    sent = phone.locator(".message--just-sent")
    expect(sent).to_have_count(1)
    expect(sent.locator(".message__body")).to_have_text("Thank you, see you on Thursday.")
    anchor = phone.url.rsplit("#", 1)[1]
    assert sent.get_attribute("id") == anchor  # the page opened at this message
    _in_view(phone, sent.locator(".message__body"))
    confirmation = sent.locator(".message__sent")
    expect(confirmation).to_have_text("Sent to Colleen · not read yet")
    _in_view(phone, confirmation)
    assert phone.evaluate("window.scrollY") > 0  # scrolled there, past the earlier messages
    # The empty reply box is not what the page opened at: it starts below the confirmation.
    reply_box = phone.get_by_label("Your message").bounding_box()
    assert reply_box["y"] > confirmation.bounding_box()["y"]
    expect(phone.locator(".crisis-follow-up")).to_have_count(0)  # nothing was flagged

    phone.reload()  # the confirmation is for right after sending, once
    expect(phone.locator(".message__sent")).to_have_count(0)


def test_after_a_crisis_worded_reply_the_follow_up_is_in_view(phone, conversation):
    email, thread_id = conversation
    _sign_in_and_open(phone, email, thread_id)
    _send(phone, "I don't want to be here anymore.")

    sent = phone.locator(".message--just-sent")
    _in_view(phone, sent.locator(".message__sent"))
    expect(sent.locator(".message__sent")).to_have_text("Sent to Colleen · not read yet")
    follow_up = phone.locator(".crisis-follow-up")
    expect(follow_up).to_have_count(1)
    _in_view(phone, follow_up.locator("h2"))
    for href in ("tel:988", "sms:988", "tel:911"):
        _in_view(phone, follow_up.locator(f'a[href="{href}"]'))
    expect(follow_up.locator('a[href^="sms:678678"]')).to_have_count(1)


def test_a_long_crisis_worded_message_still_leaves_the_follow_up_in_view(phone,
                                                                         conversation):
    email, thread_id = conversation
    _sign_in_and_open(phone, email, thread_id)
    long_text = "I want to die.\n" + "\n".join(
        f"Line {n} of everything that happened this week." for n in range(40))
    _send(phone, long_text)

    follow_up = phone.locator(".crisis-follow-up")
    _in_view(phone, phone.locator(".message--just-sent .message__sent"))
    _in_view(phone, follow_up.locator("h2"))
    _in_view(phone, follow_up.locator('a[href="tel:988"]'))
    _in_view(phone, follow_up.locator('a[href="sms:988"]'))


def test_a_new_crisis_worded_message_opens_at_it_with_the_follow_up(phone, conversation):
    email, thread_id = conversation
    _sign_in_and_open(phone, email, thread_id)
    phone.goto("/messages/new")
    phone.get_by_label("Subject").fill("Tonight")
    phone.get_by_label("Your message").fill("Feeling suicidal tonight")
    phone.get_by_role("button", name="Send message").click()
    phone.wait_for_url(re.compile(r"/messages/[0-9a-f-]+#m-[0-9a-f-]+$"))

    sent = phone.locator(".message--just-sent")
    assert sent.get_attribute("id") == phone.url.rsplit("#", 1)[1]
    expect(sent.locator(".message__sent")).to_have_text("Sent to Colleen · not read yet")
    _in_view(phone, sent.locator(".message__sent"))
    follow_up = phone.locator(".crisis-follow-up")
    _in_view(phone, follow_up.locator('a[href="tel:988"]'))
    _in_view(phone, follow_up.locator('a[href="sms:988"]'))
