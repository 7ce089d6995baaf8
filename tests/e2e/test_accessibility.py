"""axe-core in a real Chromium on every page of the three journeys, as each role, at desktop
and phone widths: no serious or critical violation. And the accessibility statement: a public
policy page, linked from every page's footer.
"""

import re
from dataclasses import dataclass

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from portal.extensions import db
from tests.messaging.conftest import PASSWORD, PDF, assign, make_user

pytestmark = pytest.mark.e2e

AXE = Axe()
BLOCKING = frozenset({"serious", "critical"})
VIEWPORTS = {"desktop": {"width": 1200, "height": 900}, "phone": {"width": 390, "height": 844}}


@dataclass
class Journey:
    client: object
    therapist: object
    admin: object
    thread_id: str
    estimate_id: str
    draft_id: str
    client_id: str
    therapist_id: str


@pytest.fixture
def journey(app) -> Journey:
    """A client (with policies to accept), their therapist and an administrator (both with
    two-step sign-in), a conversation with an attachment, an issued estimate and a draft."""
    from portal import practice
    from portal.estimates import drafting, issuing
    from portal.messaging import sending as messaging
    from portal.policies import service as policies
    from tests.estimates.conftest import complete_draft

    therapist = make_user("therapist", "Colleen Demo")
    admin = make_user("admin", "Morgan Avery")
    client = make_user("client", "Zoë Nguyễn-Ōtsuka")
    assign(client, therapist)
    policies.ensure_defaults(admin)  # terms and privacy: the client accepts them at sign-in
    thread, _ = messaging.start_thread(
        client, counterpart_id=therapist.id, subject="Moving Thursday's session",
        body="Hi Colleen,\nCould we move Thursday to Friday?",
        files=[("intake-form.pdf", PDF)], notify=False)
    messaging.reply(therapist, thread.id, body="Friday at 10 works.", notify=False)
    today = practice.today()
    issued = drafting.create_draft(therapist, client)
    drafting.save_draft(therapist, issued, complete_draft(today))
    issued = issuing.issue(therapist, issued.id)
    draft = drafting.create_draft(therapist, client)
    drafting.save_draft(therapist, draft, complete_draft(today))
    found = Journey(client, therapist, admin, str(thread.id), str(issued.id), str(draft.id),
                    str(client.id), str(therapist.id))
    # Ids are read above, before the commit: reading an expired attribute afterwards would open
    # a transaction, and on SQLite that holds the write lock the server needs.
    db.session.commit()
    return found


def violations(page, where: str) -> list[str]:
    """Run axe on the page as shown, at each width; return the serious and critical findings."""
    page.wait_for_load_state("load")
    found = []
    original = page.viewport_size
    for name, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        results = AXE.run(page)
        for violation in results.response["violations"]:
            if violation["impact"] in BLOCKING:
                targets = "; ".join(" ".join(node["target"]) for node in violation["nodes"][:4])
                found.append(f"{where} ({name}) {violation['id']} [{violation['impact']}]: "
                             f"{violation['help']} -> {targets}")
    page.set_viewport_size(original)
    return found


def visit(page, path: str, title: str | None = None) -> None:
    """Open a page and make sure it is the page meant (not a redirect or an error)."""
    response = page.goto(path)
    assert response is not None and response.status == 200, (path, response and response.status)
    if title:
        expect(page).to_have_title(re.compile(title))


def sign_in(page, user) -> None:
    """Sign in through the form; staff stop on the code page (checked by the caller)."""
    page.goto("/sign-in")
    page.get_by_label("Email address").fill(user.email_address)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def enter_code(page, user) -> None:
    page.locator("#code").fill(user.totp.now())
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()


def test_the_axe_check_finds_violations_when_there_are_some(page):
    page.set_content('<html><body><img src="x.png"><button></button>'
                     '<input type="text"></body></html>')
    found = violations(page, "broken page")
    assert any("image-alt" in line for line in found), found
    assert any("button-name" in line for line in found), found


def test_public_pages_have_no_serious_violations(page, journey):
    found = []
    for path in ("/sign-in", "/forgot-password", "/policies", "/policies/accessibility",
                 "/policies/terms", "/signed-out"):
        visit(page, path)
        found += violations(page, path)
    page.goto("/no-such-page")
    found += violations(page, "404 page")
    # A form sent back with errors: the messages are tied to their fields.
    page.goto("/sign-in")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".field-error").first).to_be_visible()
    found += violations(page, "sign-in with errors")
    assert not found, "\n".join(found)


def test_client_journey_has_no_serious_violations(page, journey):
    found = []
    page.goto("/sign-in")
    found += violations(page, "sign-in")
    sign_in(page, journey.client)
    expect(page).to_have_url(re.compile(r"/policies/accept"))
    found += violations(page, "policy acceptance")
    page.get_by_role("button", name=re.compile("^(Accept|Agree)")).click()
    expect(page).to_have_url(re.compile(r"/messages$"))
    found += violations(page, "inbox")
    for path, where in (("/messages/new", "compose"),
                        (f"/messages/{journey.thread_id}", "thread"),
                        ("/estimates/", "estimates list"),
                        (f"/estimates/{journey.estimate_id}", "estimate"),
                        ("/account", "account"),
                        ("/account/access-log", "access log"),
                        ("/account/password", "change password")):
        visit(page, path)
        found += violations(page, where)
    # The compose form sent back with errors.
    visit(page, "/messages/new")
    page.get_by_role("button", name="Send message").click()
    expect(page.locator(".field-error").first).to_be_visible()
    found += violations(page, "compose with errors")
    assert not found, "\n".join(found)


def test_therapist_journey_has_no_serious_violations(page, journey):
    found = []
    sign_in(page, journey.therapist)
    expect(page).to_have_url(re.compile(r"/sign-in/verify"))
    found += violations(page, "two-step code")
    enter_code(page, journey.therapist)
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    found += violations(page, "dashboard")
    for path, where in ((f"/messages/{journey.thread_id}", "thread"),
                        ("/estimates/practice", "estimates"),
                        (f"/estimates/{journey.draft_id}/edit", "estimate builder"),
                        (f"/estimates/{journey.draft_id}/review", "estimate review"),
                        (f"/estimates/{journey.estimate_id}", "issued estimate"),
                        ("/clients", "clients"),
                        ("/clients/invite", "invite a client")):
        visit(page, path)
        found += violations(page, where)
    assert not found, "\n".join(found)


def test_admin_journey_has_no_serious_violations(page, journey):
    found = []
    sign_in(page, journey.admin)
    expect(page).to_have_url(re.compile(r"/sign-in/verify"))
    enter_code(page, journey.admin)
    expect(page).to_have_url(re.compile(r"/admin/users$"))
    found += violations(page, "people")
    for path, where in (("/admin/users/invite", "invite"),
                        (f"/admin/users/{journey.client_id}", "user detail (client)"),
                        (f"/admin/users/{journey.therapist_id}", "user detail (therapist)"),
                        ("/admin/policies", "policies admin"),
                        ("/admin/policies/terms/publish", "publish a policy"),
                        ("/admin/policies/terms/v/1", "policy version"),
                        ("/admin/audit", "audit")):
        visit(page, path)
        found += violations(page, where)
    assert not found, "\n".join(found)


# --- the accessibility statement ----------------------------------------------------------

def test_the_accessibility_statement_is_public_and_says_what_it_must(client):
    response = client.get("/policies/accessibility")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<h1" in html and "Accessibility" in html
    assert "WCAG" in html and "2.1" in html and "level AA" in html
    assert 'href="mailto:team@coeocommunity.com"' in html  # how to report a problem
    assert 'href="tel:+12153603308"' in html


@pytest.mark.parametrize("path", ["/sign-in", "/policies/terms", "/no-such-page"])
def test_every_footer_links_to_the_accessibility_statement(client, path):
    html = client.get(path).get_data(as_text=True)
    footer = html[html.index('<footer class="site-footer">'):]
    assert re.search(r'<a href="/policies/accessibility">Accessibility</a>', footer), path


def test_signed_in_footers_link_to_the_accessibility_statement(app, journey):
    from tests.messaging.conftest import sign_in as sign_in_client
    from tests.security.support import IsolatedClient

    app.test_client_class = IsolatedClient  # each request in its own context, as served
    for person, path in ((journey.therapist, "/dashboard"), (journey.admin, "/admin/users")):
        browser_like = app.test_client()
        sign_in_client(browser_like, person)
        html = browser_like.get(path).get_data(as_text=True)
        assert "<h1" in html, path
        footer = html[html.index('<footer class="site-footer">'):]
        assert '<a href="/policies/accessibility">Accessibility</a>' in footer, path


def test_the_statement_is_reachable_from_the_footer_in_the_browser(page, journey):
    page.goto("/sign-in")
    page.get_by_role("navigation", name="Policies").get_by_role(
        "link", name="Accessibility").click()
    expect(page).to_have_url(re.compile(r"/policies/accessibility$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Accessibility")
    expect(page.get_by_role("link", name="team@coeocommunity.com").first).to_be_visible()
