"""Browser journeys for accounts: invitation, two-step enrolment, idle timeout, quick exit."""

import re
import time

import pyotp
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from portal.accounts import mfa, service
from portal.accounts.models import UserSession
from portal.extensions import db
from tests.accounts.support import PASSWORD, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_server_errors")]


def _goto(page: Page, url: str) -> None:
    """Navigate once the current page has finished loading, and wait for the next one.

    Leaving a page while its stylesheets still load drops connections mid-file, which the
    development server reports as unclosed files (errors under filterwarnings=error).
    """
    page.wait_for_load_state("load")
    page.goto(url)
    page.wait_for_load_state("load")


def _sign_in(page: Page, email: str, password: str) -> None:
    _goto(page, "/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_label(re.compile(r"^Password")).fill(password)
    page.get_by_role("button", name="Sign in").click()


def _code_after(seed: str, used: str | None) -> str:
    """Return the current code, or the next step's when the current one was just used."""
    totp = pyotp.TOTP(seed)
    now = time.time()
    code = totp.at(now)
    return totp.at(now + mfa.STEP_SECONDS) if code == used else code


def test_invited_client_sets_a_password_and_signs_in(app, page: Page, live_server):
    _, link = service.create_user(None, role="client", name="Robin Example",
                                     email="robin.example@example.org")
    _goto(page, link)
    expect(page).to_have_url(f"{live_server}/invitation")  # the token left the address bar
    expect(page.get_by_role("heading", name="Welcome, Robin Example")).to_be_visible()
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("Type it again").fill(PASSWORD)
    page.get_by_role("button", name="Save password and continue").click()
    expect(page.get_by_role("heading", name="Add a second lock to your account?")).to_be_visible()
    expect(page.get_by_text("Welcome. Your password is set and you are signed in.")).to_be_visible()
    page.get_by_role("button", name="Not now").click()
    page.get_by_role("button", name="Sign out").first.click()
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    _sign_in(page, "robin.example@example.org", PASSWORD)
    _goto(page, "/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_text("robin.example@example.org")).to_be_visible()
    # The link is spent.
    _goto(page, link)
    expect(page.get_by_role("heading", name="This link was already used")).to_be_visible()


def test_therapist_enrols_in_two_step_sign_in_and_signs_in_with_a_code(app, page: Page):
    person = make_user("therapist", mfa_on=False, name="Terry Therapist")
    _sign_in(page, person.email, person.password)
    expect(page.get_by_role("heading", name="Set up two-step sign-in")).to_be_visible()
    expect(page.locator(".qr svg")).to_be_visible()
    key = page.locator("#totp-key").inner_text().replace(" ", "")
    page.get_by_label("Your password").fill(person.password)
    enrol_code = pyotp.TOTP(key).now()
    page.get_by_label("6-digit code from your app").fill(enrol_code)
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    expect(page.get_by_role("heading", name="Two-step sign-in is on")).to_be_visible()
    assert page.locator(".key-grid li").count() == 10
    page.get_by_role("button", name="Sign out").first.click()
    _sign_in(page, person.email, person.password)
    expect(page.get_by_role("heading", name="One more step")).to_be_visible()
    page.get_by_label("6-digit code from your app, or a recovery code").fill(
        _code_after(key, enrol_code))
    page.get_by_role("button", name="Continue").click()
    _goto(page, "/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_text("On since")).to_be_visible()


def test_idle_timeout_warns_then_signs_the_user_out(app, page: Page):
    app.config["SESSION_IDLE_MINUTES"] = 0.1  # six seconds; the warning comes at half-time
    person = make_user()
    _sign_in(page, person.email, person.password)
    _goto(page, "/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    dialog = page.get_by_role("alertdialog", name="Are you still there?")
    expect(dialog).to_be_visible(timeout=9_000)
    expect(page.get_by_role("button", name="Stay signed in")).to_be_focused()
    # The way back comes along as `next` (checked on the server: a local path only).
    expect(page).to_have_url(re.compile(r"/sign-in\?reason=idle&next=%2Faccount$"),
                             timeout=12_000)
    expect(page.get_by_text("You were signed out after a while without activity")).to_be_visible()
    _goto(page, "/account")
    expect(page).to_have_url(re.compile(r"/sign-in"))


def test_stay_signed_in_keeps_the_session(app, page: Page):
    app.config["SESSION_IDLE_MINUTES"] = 0.2  # twelve seconds; the warning at six
    person = make_user()
    _sign_in(page, person.email, person.password)
    _goto(page, "/account")
    expect(page.get_by_role("alertdialog")).to_be_visible(timeout=12_000)
    page.get_by_role("button", name="Stay signed in").click()
    expect(page.get_by_role("alertdialog")).to_be_hidden()
    _goto(page, "/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()


@pytest.mark.parametrize("how", ["button", "escape twice"])
def test_quick_exit_leaves_the_site_and_the_back_button_does_not_return(app, page: Page, how):
    page.route("https://www.weather.gov/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<title>Weather</title><h1>Forecast</h1>"))
    _goto(page, "/sign-in")
    if how == "button":
        page.get_by_role("link", name="Quick exit").click()
    else:
        page.locator("body").press("Escape")
        page.locator("body").press("Escape")
    expect(page).to_have_url("https://www.weather.gov/")
    expect(page.get_by_role("heading", name="Forecast")).to_be_visible()
    page.go_back()
    assert "Sign in" not in page.content()


def _sessions_left(person) -> int:
    count = db.session.scalar(select(func.count()).select_from(UserSession)
                              .where(UserSession.user_id == person.id))
    db.session.commit()
    return count


@pytest.mark.parametrize("how", ["button", "escape twice"])
def test_quick_exit_signs_out_so_back_and_a_copied_cookie_find_only_sign_in(
        app, browser, live_server, page: Page, how):
    page.route("https://www.weather.gov/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<title>Weather</title><h1>Forecast</h1>"))
    person = make_user()
    _sign_in(page, person.email, person.password)
    expect(page.get_by_role("heading", name="Messages")).to_be_visible()
    _goto(page, "/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    _goto(page, "/messages")
    expect(page.get_by_role("heading", name="Messages")).to_be_visible()
    expect(page.get_by_text("Or press Esc twice")).to_be_visible()
    expect(page.get_by_role("link", name="Quick exit")).to_have_accessible_description(
        "Or press Esc twice")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "coeo_session"]
    assert _sessions_left(person) == 1
    if how == "button":
        page.get_by_role("link", name="Quick exit").click()
    else:
        page.locator("body").press("Escape")
        page.locator("body").press("Escape")
    expect(page).to_have_url("https://www.weather.gov/")
    for _ in range(50):  # the beacon runs alongside the navigation
        if _sessions_left(person) == 0:
            break
        time.sleep(0.1)
    assert _sessions_left(person) == 0
    # Back reloads the page before the inbox (signed-in pages are not stored): sign-in.
    page.go_back()
    page.wait_for_load_state("load")
    expect(page).to_have_url(re.compile(r"/sign-in"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("heading", name="Your account")).to_have_count(0)
    expect(page.get_by_role("heading", name="Messages")).to_have_count(0)
    assert person.email not in page.content()
    # A copy of the cookie taken before the exit opens nothing.
    thief = browser.new_context(base_url=live_server)
    try:
        thief.add_cookies([cookie])
        other = thief.new_page()
        other.goto("/messages")
        other.wait_for_load_state("load")
        expect(other).to_have_url(re.compile(r"/sign-in"))
        expect(other.get_by_role("heading", name="Messages")).to_have_count(0)
    finally:
        thief.close()
    db.session.remove()


def test_every_refusal_on_the_sign_in_page_reads_the_same(app, page: Page):
    person = make_user()
    _sign_in(page, person.email, "not the right password")
    # The words, not their layout: inner_text() follows line wrapping, which varies with
    # when the page's font arrives ("Error:\nThat ..." once, "Error: That ..." the next).
    def refusal() -> str:
        return " ".join(page.locator("#password-error").text_content().split())

    first = refusal()
    assert "Error:" in first and "password" in first
    _sign_in(page, "nobody-here@example.org", "not the right password")
    assert refusal() == first
    expect(page.get_by_label(re.compile(r"^Password"))).to_have_attribute(
        "aria-describedby", re.compile("password-error"))
    db.session.remove()
