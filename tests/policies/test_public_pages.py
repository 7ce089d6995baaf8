"""Public policy pages: readable signed out, indexable, versioned, listed in the sitemap."""

import re
from datetime import UTC, date, datetime
from xml.etree import ElementTree

import pytest
import time_machine

from portal import practice
from portal.policies import service
from portal.policies.rendering import POLICY_TITLES
from tests.policies.conftest import make_user, publish, sign_in

SLUGS = list(POLICY_TITLES)
NOINDEX = re.compile(r'<meta name="robots"[^>]*noindex', re.IGNORECASE)


def test_index_lists_every_policy_signed_out(client, defaults):
    response = client.get("/policies")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for slug, title in POLICY_TITLES.items():
        assert f'href="/policies/{slug}"' in html
        assert title in html
    assert "Version 1, effective" in html


@pytest.mark.parametrize("slug", SLUGS)
def test_each_policy_page_works_signed_out_and_shows_version_and_date(client, defaults, slug):
    response = client.get(f"/policies/{slug}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'<h1 id="policy-title">{POLICY_TITLES[slug]}</h1>' in html
    assert "Version 1" in html
    today = practice.today()
    assert f"Effective {today:%B} {today.day}, {today.year}" in html
    assert "<h2" in html  # the rendered text
    assert "team@coeocommunity.com" in html


@pytest.mark.parametrize("path", ["/policies", "/policies/terms", "/policies/privacy/v/1"])
def test_public_pages_are_indexable_and_cacheable_for_anonymous_visitors(client, defaults,
                                                                         path):
    response = client.get(path)
    assert response.status_code == 200
    assert not NOINDEX.search(response.get_data(as_text=True))
    assert "no-store" not in response.headers.get("Cache-Control", "")


def test_policy_pages_are_not_cached_for_signed_in_people(client, defaults):
    user = make_user()
    service.accept(user, [defaults["terms"].id, defaults["privacy"].id])
    sign_in(client, user)
    response = client.get("/policies/terms")
    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]


def test_the_current_page_names_its_canonical_url(client, defaults, app):
    app.config["PORTAL_BASE_URL"] = "https://portal.coeocommunity.com/"
    html = client.get("/policies/terms").get_data(as_text=True)
    assert '<link rel="canonical" href="https://portal.coeocommunity.com/policies/terms">' in html


def test_older_versions_stay_readable_and_say_they_were_replaced(client, app):
    with time_machine.travel(datetime(2026, 11, 1, 15, tzinfo=UTC), tick=False):
        publish("privacy", number_text="# Privacy Policy\n\nThe old words.\n",
                effective=date(2026, 11, 1))
        publish("privacy", number_text="# Privacy Policy\n\nThe new words.\n",
                effective=date(2026, 12, 1), summary="We explain the audit trail.")
    with time_machine.travel(datetime(2026, 12, 5, 15, tzinfo=UTC), tick=False):
        current = client.get("/policies/privacy").get_data(as_text=True)
        old = client.get("/policies/privacy/v/1").get_data(as_text=True)
    assert "The new words." in current
    assert "What changed in version 2" in current
    assert "We explain the audit trail." in current
    assert 'href="/policies/privacy/v/1"' in current
    assert "The old words." in old
    assert "earlier version, in effect until December 1, 2026" in old
    assert "Replaced" in old
    assert "canonical" not in old


def test_an_upcoming_version_is_announced_and_readable_before_it_takes_effect(client, app):
    with time_machine.travel(datetime(2026, 11, 1, 15, tzinfo=UTC), tick=False):
        publish("terms", number_text="# Terms of Service\n\nNow.\n", effective=date(2026, 11, 1))
        publish("terms", number_text="# Terms of Service\n\nSoon.\n", effective=date(2027, 1, 1))
        current = client.get("/policies/terms").get_data(as_text=True)
        upcoming = client.get("/policies/terms/v/2").get_data(as_text=True)
    assert "Now." in current
    assert "Soon." not in current
    assert "An updated version takes effect on January 1, 2027" in current
    assert "Soon." in upcoming
    assert "This version takes effect on January 1, 2027" in upcoming


def test_an_unpublished_policy_shows_the_standard_text(client, app):
    response = client.get("/policies/accessibility")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Accessibility Statement" in html
    assert "has not been published" in html


@pytest.mark.parametrize("path", [
    "/policies/cookies",
    "/policies/..%2Fpyproject",
    "/policies/terms/v/2",
    "/policies/terms/v/0",
    "/policies/terms/v/-1",
    "/policies/terms/v/abc",
    "/policies/terms/v/99999999999999999999999",
    "/policies/nope/v/1",
])
def test_unknown_policies_and_versions_are_404(client, defaults, path):
    assert client.get(path).status_code == 404


def test_public_pages_render_sanitized_html(client, app):
    publish("terms", number_text=(
        "# Terms of Service\n\n<script>alert('x')</script>\n\n"
        "[click](javascript:alert(1))\n\n<p onclick=\"alert(2)\">Hi</p>\n"))
    html = client.get("/policies/terms").get_data(as_text=True)
    assert "alert" not in html
    assert "javascript:" not in html
    assert "Hi" in html


def test_sitemap_lists_the_public_policy_urls_absolutely(client, defaults, app):
    app.config["PORTAL_BASE_URL"] = "https://portal.coeocommunity.com"
    response = client.get("/sitemap.xml")
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    assert "no-store" not in response.headers.get("Cache-Control", "")
    tree = ElementTree.fromstring(response.data)  # noqa: S314 - our own response
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    locs = [el.text for el in tree.findall("s:url/s:loc", ns)]
    assert locs == ["https://portal.coeocommunity.com/policies"] + [
        f"https://portal.coeocommunity.com/policies/{slug}" for slug in SLUGS]
    lastmods = [el.text for el in tree.findall("s:url/s:lastmod", ns)]
    assert lastmods == [practice.today().isoformat()] * 5


def test_sitemap_works_before_anything_is_published(client, app):
    response = client.get("/sitemap.xml")
    assert response.status_code == 200
    assert b"/policies/terms</loc>" in response.data


def test_robots_allows_policies_and_disallows_the_rest(client, app):
    app.config["PORTAL_BASE_URL"] = "https://portal.coeocommunity.com"
    response = client.get("/robots.txt")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    lines = response.get_data(as_text=True).splitlines()
    assert "User-agent: *" in lines
    assert "Allow: /policies" in lines
    assert "Disallow: /policies/accept" in lines
    assert "Disallow: /" in lines
    assert "Sitemap: https://portal.coeocommunity.com/sitemap.xml" in lines


def test_every_page_footer_links_the_policy_pages(client, defaults):
    html = client.get("/sign-in").get_data(as_text=True)
    for slug in SLUGS:
        assert f'href="/policies/{slug}"' in html


def test_policy_pages_carry_the_print_friendly_stylesheet(client, defaults):
    html = client.get("/policies/terms").get_data(as_text=True)
    assert "/static/css/policies.css" in html
    with client.get("/static/css/policies.css") as response:
        assert response.status_code == 200
