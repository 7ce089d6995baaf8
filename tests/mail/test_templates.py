"""Mail templates: every one renders, says nothing clinical, and is plain, safe HTML."""

import re
from pathlib import Path

import pytest

from portal.mail import SUBJECTS, OutboxMessage, enqueue
from portal.mail.service import render
from portal.mail.templates import TEMPLATES
from tests.support.people import make_user, unique_email

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates" / "mail"
LINK = "https://portal.example.org/somewhere?a=1&b=2"
SAMPLE = {"link": LINK, "hours_valid": 72, "minutes_valid": 30, "minutes": 15,
          "staff_name": "Colleen Demo", "when": "Wed Dec 2, 2026, 9:14 am"}
FORBIDDEN = re.compile(r"therap|counsel", re.IGNORECASE)
# Told, with nothing to follow: the old address of an email change (a call is the way back).
NO_LINK = {"email_change_notice"}


def _context(name: str, *, optional: bool = True) -> dict:
    spec = TEMPLATES[name]
    keys = spec.required + (spec.optional if optional else ())
    return {key: SAMPLE[key] for key in keys}


def test_every_template_has_a_subject_and_both_files():
    on_disk = {path.stem for path in TEMPLATE_DIR.iterdir() if not path.name.startswith("_")}
    assert on_disk == set(SUBJECTS) == set(TEMPLATES)
    for name in SUBJECTS:
        assert (TEMPLATE_DIR / f"{name}.txt").is_file()
        assert (TEMPLATE_DIR / f"{name}.html").is_file()


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_subject_is_fixed_and_discreet(name):
    subject = SUBJECTS[name]
    assert not FORBIDDEN.search(subject)
    assert 0 < len(subject) <= 200 and "{" not in subject


@pytest.mark.parametrize("optional", [True, False])
@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template_renders_with_its_context(app, name, optional):
    context = _context(name, optional=optional)
    text, html = render(name, **context)
    practice = app.config["PRACTICE"]
    for body in (text, html):
        assert not FORBIDDEN.search(body)
        assert practice["name"] in body and practice["phone"] in body
        assert "This is an automated message; replies are not read." in body
        assert "{{" not in body and "{%" not in body
    if "link" in context:
        assert LINK in text
        assert LINK.replace("&", "&amp;") in html  # escaped in HTML
    elif name in NO_LINK:
        assert "http" not in text and "href" not in html
    else:
        assert app.config["PORTAL_BASE_URL"] in text  # falls back to the portal itself
    for key in ("hours_valid", "minutes_valid", "minutes"):
        if key in context:
            assert str(context[key]) in text and str(context[key]) in html


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_html_is_simple_with_no_images_scripts_or_tracking(app, name):
    _, html = render(name, **_context(name))
    lowered = html.lower()
    for banned in ("<img", "<script", "<link", "<iframe", "src=", "url(", "@import",
                   "<form", "javascript:"):
        assert banned not in lowered
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs or name in NO_LINK
    assert all(h.replace("&amp;", "&") in (LINK, app.config["PORTAL_BASE_URL"]) for h in hrefs)


def test_html_escapes_what_it_is_given(app):
    _, html = render("new_message", link='https://x.example/"><script>alert(1)</script>')
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_new_message_mail_says_nothing_about_the_message(app):
    text, _ = render("new_message", link=LINK)
    assert "You have a new secure message in your coeo portal" in text
    assert SUBJECTS["new_message"] == "You have a new secure message"


@pytest.fixture
def user(db):
    """Return a saved client account."""
    return make_user("client", "Pat Example", email=unique_email("p"), password=None)


def test_enqueue_refuses_an_unknown_template(db, user):
    with pytest.raises(ValueError):
        enqueue(user, "weekly_digest", to_address="a@example.org")


def test_enqueue_refuses_missing_context(db, user):
    with pytest.raises(TypeError, match="hours_valid"):
        enqueue(user, "invitation", to_address="a@example.org", link=LINK)


def test_enqueue_refuses_context_a_template_does_not_take(db, user):
    """Message text or a name cannot be passed into a mail by accident."""
    with pytest.raises(TypeError, match="message_text"):
        enqueue(user, "new_message", to_address="a@example.org", link=LINK,
                message_text="I had a hard week")


@pytest.mark.parametrize("address", ["", "not-an-address", "a@example.org\r\nBcc: b@example.org",
                                     "Pat <a@example.org>"])
def test_enqueue_refuses_an_unusable_address(db, user, address):
    with pytest.raises(ValueError) as caught:
        enqueue(user, "new_message", to_address=address, link=LINK)
    assert "example.org" not in str(caught.value)


def test_enqueue_reads_the_address_from_the_account_when_not_given(db, user):
    row = enqueue(user, "password_changed")
    db.session.commit()
    assert isinstance(row, OutboxMessage) and row.user_id == user.id
    assert row.subject == SUBJECTS["password_changed"]


def test_enqueue_works_inside_a_request_too(app, db, user):
    with app.test_request_context("/"):
        row = enqueue(user, "new_message", to_address="a@example.org", link=LINK)
    db.session.commit()
    assert row.template == "new_message"
