"""A client signs in after updated terms were published, reads what changed, and accepts."""

from urllib.parse import urlsplit

import pytest
from flask import url_for
from sqlalchemy import select

from portal import practice
from portal.accounts.models import User
from portal.extensions import db
from portal.main.views import START
from portal.policies import service
from portal.policies.models import PolicyAcceptance
from tests.support.people import PASSWORD, make_user

pytestmark = pytest.mark.e2e

EMAIL = "robin-journey@example.org"
SUMMARY = "Replies now come within 2 business days, and we explain the Quick exit button."
NEW_TERMS = (
    "# Terms of Service\n\n"
    "## If you are in crisis\n\n"
    "The portal is **not for emergencies**. Call or text [988](tel:988), or call "
    "[911](tel:911).\n\n"
    "## When to expect a reply\n\n"
    "Your therapist usually replies within 2 business days.\n"
)


def _client_who_accepted_the_first_versions() -> User:
    """Create a client who accepted version 1 of every policy that asked for it."""
    user = make_user("client", "Robin Journey", email=EMAIL)
    service.ensure_defaults()
    service.accept(user, [v.id for v in service.pending_for(user)])
    return user


def _home_path(app) -> str:
    with app.test_request_context():
        endpoint = next((e for e in START["client"] if e in app.view_functions),
                        "accounts.settings")
        return url_for(endpoint)


def test_client_accepts_updated_terms_at_sign_in(app, page, live_server):
    user = _client_who_accepted_the_first_versions()
    new_terms = service.publish(None, slug="terms", text=NEW_TERMS,
                                effective_date=practice.today(), summary=SUMMARY,
                                requires_acceptance=True)
    new_terms_hash = new_terms.text_hash
    db.session.commit()

    page.goto("/sign-in")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url("**/policies/accept**")
    assert page.get_by_role("heading", level=1).inner_text() == "We have updated a policy"
    assert page.get_by_role("heading", name="Terms of Service").is_visible()
    assert page.get_by_text(SUMMARY).is_visible()
    assert page.get_by_text("Version 2, effective").is_visible()
    assert page.get_by_role("heading", name="Privacy Policy").count() == 0

    # The full text is one click away on the same page, and on its own page.
    page.get_by_text("Read the full Terms of Service here").click()
    assert page.get_by_text("Your therapist usually replies within 2 business days.").is_visible()
    link = page.get_by_role("link", name="Open the Terms of Service on its own page")
    assert urlsplit(link.get_attribute("href")).path == "/policies/terms/v/2"

    page.get_by_role("button", name="Accept and continue").click()
    page.wait_for_url(lambda url: "/policies/accept" not in url)
    assert urlsplit(page.url).path == _home_path(app)
    assert page.get_by_text("Thank you. You agreed to the Terms of Service.").is_visible()

    rows = list(db.session.scalars(select(PolicyAcceptance)
                                   .where(PolicyAcceptance.user_id == user.id,
                                          PolicyAcceptance.slug == "terms")
                                   .order_by(PolicyAcceptance.number)))
    assert [(r.number, r.text_hash) for r in rows] == [
        (1, service.get_version("terms", 1).text_hash), (2, new_terms_hash)]
    db.session.commit()  # end the read: SQLite transactions take the write lock

    # Nothing asks again: the account page lists what was accepted.
    page.goto("/account")
    assert urlsplit(page.url).path == "/account"
    section = page.locator("section", has=page.get_by_role("heading",
                                                           name="What you agreed to or received"))
    assert section.get_by_role("link", name="Terms of Service").count() == 2


def test_client_acknowledges_receipt_of_the_updated_privacy_notice(app, page, live_server):
    """45 CFR 164.520(c)(2)(ii): after Privacy Policy version 2 reaches a database that had
    version 1 (`portal policies init`), the client is asked to acknowledge receipt, on a
    phone-sized screen, and nothing asks them to agree to it."""
    user = make_user("client", "Robin Journey", email=EMAIL)
    for slug in ("terms", "privacy"):
        first = service.STANDARD[slug][0]
        version = service.publish(None, slug=slug, text=first.text,
                                  effective_date=practice.today(), summary=first.summary,
                                  requires_acceptance=True)
        service.accept(user, [version.id])
    published = service.ensure_defaults()
    assert ("privacy", 2) in {(v.slug, v.number) for v in published}
    db.session.commit()

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/sign-in")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url("**/policies/accept**")
    assert page.get_by_role("heading", name="Privacy Policy").is_visible()
    assert page.get_by_text("What changed since the version you received").is_visible()
    button = page.get_by_role("button", name="Acknowledge receipt and continue")
    assert page.get_by_role("button", name="Accept and continue").count() == 0
    assert page.get_by_role("button", name="Not now, sign me out").count() == 1
    statement = page.locator(".acceptance__statement").inner_text()
    assert "confirm that you have received the Notice of Privacy Practices" in statement
    assert "does not mean you agree with it" in statement
    button.click()
    page.wait_for_url(lambda url: "/policies/accept" not in url)
    assert page.get_by_text("Thank you. You confirmed that you received the Privacy "
                            "Policy.").is_visible()
    rows = db.session.scalars(select(PolicyAcceptance.number)
                              .where(PolicyAcceptance.user_id == user.id,
                                     PolicyAcceptance.slug == "privacy")
                              .order_by(PolicyAcceptance.number)).all()
    assert rows == [1, 2]
    db.session.commit()
