"""The client's message journey with the keyboard alone: Tab, Shift+Tab, Enter and Space.

No clicks and no `fill`: the only way into the pages is the address bar (`goto` once), and
every other step is a key press. On the way, the skip link must work and every control that
takes focus must show it (a computed outline, not `none`).
"""

import re

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from tests.messaging.conftest import PASSWORD, assign, make_user

pytestmark = pytest.mark.e2e

SUBJECT = "Moving Thursday's session"
BODY = "Hi Colleen, could we move Thursday to Friday?"
MAX_TABS = 60

FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  return {
    tag: el.tagName.toLowerCase(), id: el.id, name: el.getAttribute('name') || '',
    type: el.getAttribute('type') || '', text: (el.innerText || el.value || '').trim(),
    label: el.labels && el.labels.length ? el.labels[0].innerText.trim() : '',
    outline: style.outlineStyle, outlineWidth: parseFloat(style.outlineWidth) || 0,
    visible: box.width > 0 && box.height > 0 && box.bottom > 0 && box.right > 0
             && box.top < innerHeight && box.left < innerWidth,
  };
}"""


@pytest.fixture
def keyboard_client(app):
    """A client with one therapist and the policies accepted, ready to write."""
    from portal.policies import service as policies

    therapist = make_user("therapist", "Colleen Demo")
    client = make_user("client", "Alex Rivera")
    assign(client, therapist)
    policies.ensure_defaults()
    policies.accept(client, [v.id for v in policies.pending_for(client)])
    db.session.commit()
    return client


def focused(page) -> dict | None:
    return page.evaluate(FOCUSED)


def assert_focus_visible(info: dict) -> None:
    """A focused control shows it: an outline that is not `none` and has a width."""
    assert info["outline"] != "none" and info["outlineWidth"] > 0, \
        f"focus is not visible on {info}"


def tab_to(page, matches, *, backwards: bool = False, seen: list | None = None) -> dict:
    """Press Tab (or Shift+Tab) until the focused element matches; check focus on the way."""
    key = "Shift+Tab" if backwards else "Tab"
    for _ in range(MAX_TABS):
        page.keyboard.press(key)
        info = focused(page)
        if info is None:
            continue
        assert_focus_visible(info)
        if seen is not None:
            seen.append(info)
        if matches(info):
            return info
    raise AssertionError(f"{key} never reached the element; last focus: {info}")


def by_label(text: str):
    return lambda info: info["label"].startswith(text)


def by_text(text: str):
    return lambda info: info["text"] == text


def test_a_client_sends_a_message_with_the_keyboard_alone(page, keyboard_client):
    page.goto("/sign-in")
    keyboard = page.keyboard

    # The first Tab lands on the skip link, shown while focused; Enter moves focus to main.
    keyboard.press("Tab")
    skip = focused(page)
    assert skip["text"] == "Skip to main content", skip
    assert skip["visible"], "the skip link stays off-screen when focused"
    assert_focus_visible(skip)
    keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/sign-in#main$"))
    assert page.evaluate("document.activeElement.id") == "main"

    # From main, the next Tab is inside the page's content: the email field comes first.
    seen: list[dict] = []
    info = tab_to(page, by_label("Email address"), seen=seen)
    assert len(seen) == 1, f"focus wandered before the form: {seen}"
    keyboard.type(keyboard_client.email_address)
    tab_to(page, by_label("Password"))
    keyboard.type(PASSWORD)
    # Shift+Tab goes back to the email, which kept what was typed; Tab returns.
    info = tab_to(page, by_label("Email address"), backwards=True)
    assert page.evaluate("document.activeElement.value") == keyboard_client.email_address
    info = tab_to(page, by_text("Sign in"))
    assert info["tag"] == "button"
    keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/messages$"))

    # The inbox: reach "New message" and follow it with Enter.
    tab_to(page, by_text("New message"))
    keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/messages/new$"))
    expect(page.get_by_text("Colleen Demo")).to_be_visible()  # the only therapist: preset

    # Compose: subject, body (Shift+Tab back to check the subject), then Space on Send.
    tab_to(page, by_label("Subject"))
    keyboard.type(SUBJECT)
    tab_to(page, by_label("Your message"))
    keyboard.type(BODY)
    tab_to(page, by_label("Subject"), backwards=True)
    assert page.evaluate("document.activeElement.value") == SUBJECT
    send = tab_to(page, by_text("Send message"))
    assert send["tag"] == "button"
    keyboard.press("Space")

    # The thread: the message is there, and the page is still usable from the keyboard.
    expect(page).to_have_url(re.compile(r"/messages/[0-9a-f-]{36}"))
    expect(page.get_by_text("Your message was sent.")).to_be_visible()
    expect(page.locator(".message__body")).to_have_text(BODY)
    expect(page.get_by_role("heading", level=1)).to_contain_text(SUBJECT)
    tab_to(page, by_label("Your message"))
    assert focused(page)["tag"] == "textarea"


def test_every_control_on_the_journey_pages_shows_focus(page, keyboard_client):
    """Tab through each page of the journey from top to bottom: every stop is visible."""
    page.goto("/sign-in")
    page.get_by_label("Email address").fill(keyboard_client.email_address)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/messages$"))
    for path in ("/messages", "/messages/new", "/account"):
        page.goto(path)
        stops = []
        for _ in range(MAX_TABS):
            page.keyboard.press("Tab")
            info = focused(page)
            if info is None or (stops and info == stops[0]):
                break
            assert_focus_visible(info)
            stops.append(info)
        assert len(stops) >= 5, (path, stops)


def test_the_focus_check_catches_a_hidden_focus_ring(page, keyboard_client):
    """With the focus ring styled away, the check above fails (it is not vacuous)."""
    def without_outlines(route):
        css = route.fetch().text() + "\n*:focus, *:focus-visible { outline: none !important; }"
        route.fulfill(body=css, content_type="text/css")

    page.route("**/static/css/portal.css", without_outlines)
    page.goto("/sign-in")
    with pytest.raises(AssertionError, match="focus is not visible"):
        tab_to(page, by_label("Password"))
