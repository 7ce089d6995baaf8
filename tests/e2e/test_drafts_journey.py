"""Nothing typed is lost, in a real browser: typing through the idle warning keeps every
character and the session; a draft survives an idle sign-out and is back, on the same form,
after signing in again."""

import re
import time
import uuid
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from portal.accounts.models import UserSession
from portal.extensions import db
from portal.messaging import sending
from portal.messaging.models import Draft
from tests.messaging.conftest import PASSWORD, assign, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_server_errors")]


@pytest.fixture
def conversation(app):
    """A client and their therapist, and a conversation the client will reply in."""
    client = make_user("client", "Alex Rivera")
    therapist = make_user("therapist", "Colleen Demo")
    assign(client, therapist)
    thread, _ = sending.start_thread(therapist, counterpart_id=client.id,
                                     subject="Checking in", body="How was the week?",
                                     notify=False)
    db.session.commit()
    found = Person(client.email_address, client.id), thread.id
    db.session.rollback()  # reading the ids began a transaction: on SQLite it holds the lock
    return found


@dataclass(frozen=True)
class Person:
    email_address: str
    id: uuid.UUID


def _sign_in(page: Page, email: str) -> None:
    page.get_by_label("Email address").fill(email)
    page.get_by_label(re.compile(r"^Password")).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")


def _drafts() -> list[tuple[str, uuid.UUID, bytes]]:
    rows = [tuple(row) for row in db.session.execute(
        select(Draft.form_key, Draft.owner_id, Draft.content_sealed)).all()]
    db.session.rollback()  # end the read: the server's writes must not wait for it
    return rows


def _sessions_of(user) -> int:
    count = db.session.scalar(select(func.count()).select_from(UserSession)
                              .where(UserSession.user_id == user.id))
    db.session.rollback()
    return count


def _phone(browser, live_server):
    context = browser.new_context(base_url=live_server, viewport={"width": 390, "height": 844},
                                  is_mobile=True, has_touch=True)
    context.set_default_timeout(10_000)
    return context


def test_typing_through_the_idle_warning_loses_no_character(app, browser, live_server,
                                                            conversation):
    app.config["SESSION_IDLE_MINUTES"] = 0.3  # 18 seconds; the warning from 9 seconds
    client, thread_id = conversation
    context = _phone(browser, live_server)
    page = context.new_page()
    csp_errors: list[str] = []
    page.on("console", lambda msg: csp_errors.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text else None)
    page.goto(f"/messages/{thread_id}")
    _sign_in(page, client.email_address)
    expect(page).to_have_url(re.compile(rf"/messages/{thread_id}$"))  # `next` brought us back
    box = page.get_by_label("Your message")
    box.click()

    # Typing for longer than the idle timeout: keep-alives as typed, no warning at all.
    first = "Thursday was hard, but I managed to go for a walk every single day. "
    started = time.monotonic()
    page.keyboard.type(first * 4, delay=70)
    assert time.monotonic() - started > 18
    expect(box).to_have_value(first * 4)
    expect(page.locator("#idle-dialog")).to_be_hidden()

    # A long pause to think: the warning comes as a notice, and focus stays in the text box.
    notice = page.get_by_role("status").filter(has_text="Are you still there?")
    expect(notice).to_be_visible(timeout=16_000)
    expect(page.get_by_role("alertdialog")).to_have_count(0)
    expect(box).to_be_focused()
    # Typing on: every key goes into the text (a space never presses "Stay signed in").
    more = "And then  space, Enter\nand more words."
    page.keyboard.type(more, delay=60)
    expect(box).to_have_value(first * 4 + more)
    expect(notice).to_be_hidden()
    expect(box).to_be_focused()

    # The keystrokes kept the session: well past the old deadline, the page is still here and
    # the server still knows us.
    time.sleep(10)
    expect(page).to_have_url(re.compile(rf"/messages/{thread_id}$"))
    page.reload()
    expect(page.get_by_role("heading", name="Checking in")).to_be_visible()
    # What was typed came back from the server's sealed draft.
    expect(page.get_by_label("Your message")).to_have_value(first * 4 + more)
    expect(page.get_by_text("Draft restored")).to_be_visible()
    context.close()
    assert not csp_errors, csp_errors


def test_a_draft_survives_an_idle_sign_out(app, page: Page, conversation):
    app.config["SESSION_IDLE_MINUTES"] = 0.2  # 12 seconds
    client, thread_id = conversation
    page.goto("/sign-in")
    _sign_in(page, client.email_address)
    page.goto(f"/messages/{thread_id}")
    words = "I have been thinking about what you said, and"
    page.get_by_label("Your message").click()
    page.keyboard.type(words, delay=30)
    # Saved on the server about 1.5 s after typing stops, sealed.
    deadline = time.monotonic() + 8
    while not _drafts() and time.monotonic() < deadline:
        time.sleep(0.25)
    ((form_key, owner_id, sealed),) = _drafts()
    assert form_key == f"reply:{thread_id}" and owner_id == client.id
    assert words.encode() not in bytes(sealed)

    # Nothing more happens: the idle sign-out, to sign-in with the way back.
    expect(page).to_have_url(re.compile(
        r"/sign-in\?reason=idle&next=" + re.escape(quote(f"/messages/{thread_id}", safe=""))
        + "$"), timeout=25_000)
    expect(page.get_by_text("You were signed out after a while without activity")).to_be_visible()
    assert _sessions_of(client) == 0  # the server ended it too

    _sign_in(page, client.email_address)
    expect(page).to_have_url(re.compile(rf"/messages/{thread_id}$"))
    expect(page.get_by_label("Your message")).to_have_value(words)
    expect(page.get_by_text("Draft restored")).to_be_visible()

    # Sent: the draft is gone, and the reply box is empty next time.
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_text("Your message was sent.")).to_be_visible()
    assert _drafts() == []
    page.reload()
    expect(page.get_by_label("Your message")).to_have_value("")
