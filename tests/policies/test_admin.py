"""Admin screens: the policy list, publishing with a preview, and who accepted what."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import practice
from portal.extensions import db
from portal.policies import service
from portal.policies.models import PolicyVersion
from portal.policies.rendering import load_default
from tests.policies.conftest import csrf_from, make_user, sign_in

PUBLISH = "/admin/policies/terms/publish"
NEW_TEXT = "# Terms of Service\n\n## Replies\n\nWe reply within 2 business days.\n"


def _count() -> int:
    return db.session.scalar(select(func.count()).select_from(PolicyVersion))


def _form(client, **values) -> dict:
    page = client.get(PUBLISH)
    data = {"csrf_token": csrf_from(page.data), "text": NEW_TEXT,
            "summary": "Reply times are now 2 business days.",
            "effective_date": practice.today().isoformat(), "action": "preview"}
    data.update(values)
    return data


def _hash_in(html: str) -> str:
    return re.search(r'name="preview_hash" type="hidden" value="([0-9a-f]*)"', html).group(1)


@pytest.fixture
def admin_client(client, admin_user):
    """A test client signed in as an admin."""
    sign_in(client, admin_user)
    return client


@pytest.mark.parametrize("role", ["client", "therapist"])
@pytest.mark.parametrize("path", ["/admin/policies", PUBLISH, "/admin/policies/terms/v/1"])
def test_only_admins_reach_the_policy_admin(client, defaults, role, path):
    person = make_user(role)
    if role == "client":
        service.accept(person, [defaults["terms"].id, defaults["privacy"].id])
    sign_in(client, person)
    assert client.get(path).status_code == 404


def test_the_admin_list_shows_versions_and_acceptance_counts(admin_client, defaults):
    for _ in range(2):
        person = make_user("client")
        service.accept(person, [defaults["terms"].id])
    html = admin_client.get("/admin/policies").get_data(as_text=True)
    assert "Terms of Service" in html
    assert "Good Faith Estimate Notice" in html
    assert 'href="/admin/policies/terms/v/1"' in html
    assert 'data-label="Accepted by" class="num">2</td>' in html
    assert "2 of 2 active clients have accepted the current version" in html
    assert "Informational: clients are not asked to accept it." in html


def test_the_admin_list_offers_to_publish_the_standard_texts(admin_client, admin_user):
    html = admin_client.get("/admin/policies").get_data(as_text=True)
    assert "4 policies have no published version yet" in html
    response = admin_client.post("/admin/policies/standard-texts",
                                 data={"csrf_token": csrf_from(html)})
    assert response.status_code == 302
    assert service.missing_defaults() == []
    assert service.current_version("terms").published_by_id == admin_user.id
    html = admin_client.get("/admin/policies").get_data(as_text=True)
    assert "no published version yet" not in html
    assert ("Published the standard texts: Terms of Service version 1, Privacy Policy version 1, "
            "Privacy Policy version 2") in html


def test_the_publish_form_starts_from_the_latest_text(admin_client, defaults):
    html = admin_client.get(PUBLISH).get_data(as_text=True)
    assert "Terms of Service: version 2" in html
    assert "If you are in crisis" in html  # the standard text, escaped in the textarea
    assert 'value="preview"' in html
    assert 'value="publish"' not in html


def test_previewing_shows_the_rendered_text_and_publishes_nothing(admin_client, defaults):
    response = admin_client.post(PUBLISH, data=_form(admin_client))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Preview: this is what clients will see" in html
    assert "<h2 id=\"policy-replies\">Replies</h2>" in html
    assert "What changed in version 2" in html
    assert 'value="publish"' in html
    assert _hash_in(html)
    assert _count() == 4


def test_the_preview_is_sanitized(admin_client, defaults):
    text = "# Terms of Service\n\n<script>alert(1)</script>\n\n[x](javascript:alert(2))\n"
    html = admin_client.post(PUBLISH, data=_form(admin_client, text=text)).get_data(
        as_text=True)
    preview = html.split('class="preview__frame', 1)[1].split("</section>", 1)[0]
    assert "<script" not in preview
    assert "javascript:" not in preview


def test_publishing_after_the_preview_creates_the_next_version(admin_client, defaults,
                                                               admin_user):
    data = _form(admin_client, requires_acceptance="y")
    html = admin_client.post(PUBLISH, data=data).get_data(as_text=True)
    data.update(action="publish", preview_hash=_hash_in(html))
    response = admin_client.post(PUBLISH, data=data)
    assert response.status_code == 302
    assert response.location == "/admin/policies/terms/v/2"
    version = service.get_version("terms", 2)
    assert version.text == NEW_TEXT
    assert version.summary == "Reply times are now 2 business days."
    assert version.requires_acceptance is True
    assert version.published_by_id == admin_user.id
    assert service.get_version("terms", 1).text == load_default("terms")  # untouched
    page = admin_client.get(response.location).get_data(as_text=True)
    assert "Published Terms of Service version 2" in page


def test_publishing_without_a_preview_only_previews(admin_client, defaults):
    response = admin_client.post(PUBLISH, data=_form(admin_client, action="publish"))
    assert response.status_code == 200
    assert b"Preview: this is what clients will see" in response.data
    assert _count() == 4


@pytest.mark.parametrize("change", [{"text": NEW_TEXT + "\nMore.\n"},
                                    {"summary": "Something else entirely."},
                                    {"requires_acceptance": "y"}])
def test_anything_changed_after_the_preview_needs_a_new_preview(admin_client, defaults,
                                                               change):
    data = _form(admin_client)
    html = admin_client.post(PUBLISH, data=data).get_data(as_text=True)
    data.update(action="publish", preview_hash=_hash_in(html), **change)
    response = admin_client.post(PUBLISH, data=data)
    assert response.status_code == 200
    assert b"Something changed after the preview" in response.data
    assert _count() == 4


@pytest.mark.parametrize(("values", "message"), [
    ({"summary": ""}, "Say in a sentence or two what changed."),
    ({"text": ""}, "Write the policy text."),
    ({"effective_date": "2027-13-45"}, "Enter a real date, such as 2027-01-01."),
    ({"effective_date": ""}, "Choose the date this version takes effect."),
    ({"effective_date": "2001-01-01"}, "cannot take effect in the past"),
    ({"text": load_default("terms")}, "same as version 1"),
    ({"summary": "x" * 501}, "under 500 characters"),
])
def test_bad_input_is_shown_inline_and_publishes_nothing(admin_client, defaults, values,
                                                         message):
    for action in ("preview", "publish"):
        response = admin_client.post(PUBLISH, data=_form(admin_client, action=action,
                                                         **values))
        assert response.status_code == 422
        html = response.get_data(as_text=True)
        assert message in html
        assert 'class="field-error"' in html
        assert 'value="publish"' not in html
    assert _count() == 4


def test_a_version_with_a_later_date_is_shown_as_upcoming(admin_client, defaults):
    later = (practice.today() + timedelta(days=20)).isoformat()
    data = _form(admin_client, effective_date=later)
    html = admin_client.post(PUBLISH, data=data).get_data(as_text=True)
    data.update(action="publish", preview_hash=_hash_in(html))
    admin_client.post(PUBLISH, data=data)
    html = admin_client.get("/admin/policies").get_data(as_text=True)
    assert "Upcoming" in html


def test_unknown_policies_and_versions_are_404_for_admins(admin_client, defaults):
    assert admin_client.get("/admin/policies/cookies/publish").status_code == 404
    assert admin_client.get("/admin/policies/terms/v/9").status_code == 404
    assert admin_client.get("/admin/policies/cookies/v/1").status_code == 404


def test_the_version_page_lists_who_accepted_it_by_name(admin_client, defaults):
    alex = make_user("client", name="Alex Rivera")
    zoe = make_user("client", name="Zoë Nguyễn-Ōtsuka")
    make_user("client", name="Sam Okafor")
    service.accept(alex, [defaults["terms"].id], ip="203.0.113.7")
    service.accept(zoe, [defaults["terms"].id])
    html = admin_client.get("/admin/policies/terms/v/1").get_data(as_text=True)
    assert "Alex Rivera" in html
    assert "Zoë Nguyễn-Ōtsuka" in html
    assert "Sam Okafor" not in html
    assert "203.0.113.7" in html
    assert defaults["terms"].text_hash in html
    assert "2 people" in html


def test_the_version_page_survives_a_silly_page_number(admin_client, defaults):
    for page in ("0", "-3", "999999", "abc"):
        assert admin_client.get(f"/admin/policies/terms/v/1?page={page}").status_code == 200
