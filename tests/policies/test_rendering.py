"""Policy rendering: sanitized HTML, stable hashes, and complete default texts."""

import re

import pytest

from portal.policies.rendering import (
    POLICY_TITLES,
    load_default,
    render_markdown,
    text_hash,
)

SLUGS = ["terms", "privacy", "good-faith-estimate", "accessibility"]


# --- sanitizing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert('x')</script>",
        "Hello <script src='https://evil.example/x.js'></script>",
        "<SCRIPT>alert(1)</SCRIPT>",
    ],
)
def test_render_strips_script_tags_and_their_content(source):
    html = render_markdown(source)
    assert "<script" not in html.lower()
    assert "alert" not in html


@pytest.mark.parametrize(
    "source",
    [
        '<img src="x" onerror="alert(1)">',
        '<p onclick="alert(1)">Hi</p>',
        '<a href="https://example.com" onmouseover="alert(1)">link</a>',
        '<h2 onfocus="alert(1)">Title</h2>',
    ],
)
def test_render_strips_inline_event_handlers(source):
    html = render_markdown(source)
    assert not re.search(r"\son\w+\s*=", html, flags=re.IGNORECASE)
    assert "alert" not in html


@pytest.mark.parametrize(
    "source",
    [
        "[click](javascript:alert(1))",
        "[click](JavaScript:alert(1))",
        '<a href="javascript:alert(1)">click</a>',
        '<a href=" javascript:alert(1)">click</a>',
        '<a href="jav&#x09;ascript:alert(1)">click</a>',
        "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        '<a href="data:text/html,hi">click</a>',
        '<a href="vbscript:msgbox(1)">click</a>',
    ],
)
def test_render_drops_unsafe_link_schemes(source):
    html = render_markdown(source)
    assert "click" in html
    assert "href" not in html
    assert "javascript" not in html.lower()
    assert "data:" not in html


def test_render_strips_style_attributes_and_style_elements():
    html = render_markdown(
        '<p style="position:fixed;top:0">Hi</p>\n\n<style>body { display: none }</style>'
    )
    assert "style" not in html
    assert "display" not in html
    assert "<p>Hi</p>" in html


@pytest.mark.parametrize(
    "source",
    [
        '<iframe src="https://evil.example"></iframe>',
        '<object data="x.swf"></object>',
        '<embed src="x.swf">',
        '<form action="https://evil.example"><input name="password"></form>',
        '<svg onload="alert(1)"><circle r="1"/></svg>',
    ],
)
def test_render_strips_embedded_content_and_forms(source):
    html = render_markdown(source)
    for tag in ("<iframe", "<object", "<embed", "<form", "<input", "<svg", "<circle"):
        assert tag not in html.lower()
    assert "evil.example" not in html


def test_render_strips_images_and_comments():
    html = render_markdown("![tracker](https://evil.example/pixel.png)\n\n<!-- secret -->")
    assert "<img" not in html
    assert "secret" not in html


def test_render_keeps_headings_lists_and_emphasis():
    html = render_markdown(
        "# Title\n\n## Section\n\n### Part\n\n#### Detail\n\n"
        "Some **bold** and *soft* words.\n\n- one\n- two\n\n1. first\n2. second\n\n"
        "> quoted\n\n---\n\n    code\n"
    )
    assert re.search(r"<h1[^>]*>Title</h1>", html)
    assert re.search(r"<h2[^>]*>Section</h2>", html)
    assert re.search(r"<h3[^>]*>Part</h3>", html)
    assert re.search(r"<h4[^>]*>Detail</h4>", html)
    assert "<strong>bold</strong>" in html
    assert "<em>soft</em>" in html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html
    assert "<ol>\n<li>first</li>\n<li>second</li>\n</ol>" in html
    assert "<blockquote>" in html
    assert "<hr>" in html
    assert "<pre><code>code\n</code></pre>" in html


@pytest.mark.parametrize(
    ("source", "href"),
    [
        ("[site](https://www.cms.gov/nosurprises)", "https://www.cms.gov/nosurprises"),
        ("[old](http://example.com)", "http://example.com"),
        ("[mail](mailto:team@coeocommunity.com)", "mailto:team@coeocommunity.com"),
        ("[call](tel:+12153603308)", "tel:+12153603308"),
    ],
)
def test_render_keeps_safe_links_with_rel_noopener(source, href):
    html = render_markdown(source)
    assert f'href="{href}"' in html
    assert 'rel="noopener noreferrer"' in html


def test_render_replaces_an_authors_rel_and_target():
    html = render_markdown('<a href="https://example.com" rel="opener" target="_blank">x</a>')
    assert 'rel="noopener noreferrer"' in html
    assert html.count("rel=") == 1
    assert "target" not in html


def test_render_gives_headings_prefixed_ids_and_points_fragment_links_at_them():
    html = render_markdown("## Your rights\n\nSee [your rights](#your-rights).")
    assert '<h2 id="policy-your-rights">Your rights</h2>' in html
    assert 'href="#policy-your-rights"' in html


def test_render_prefixes_ids_written_in_raw_html():
    html = render_markdown('<h2 id="csrf_token">Sneaky</h2>')
    assert 'id="csrf_token"' not in html
    assert 'id="policy-csrf_token"' in html


def test_render_does_not_expand_toc_marker():
    html = render_markdown("## One\n\n[TOC]\n\n## Two")
    assert "<div" not in html
    assert "[TOC]" in html


def test_render_keeps_tables_with_only_safe_alignment():
    html = render_markdown("| When | Estimate |\n|:-----|-------:|\n| 3 days | 1 day |")
    assert "<table>" in html
    assert "<thead>" in html
    assert '<th align="left">When</th>' in html
    assert '<td align="right">1 day</td>' in html
    assert "style" not in html
    unsafe = render_markdown('<table><tr><td align="javascript">x</td></tr></table>')
    assert "align" not in unsafe


def test_render_escapes_text_that_looks_like_markup():
    html = render_markdown("Fees are < $100 & > $0")
    assert "&lt;" in html
    assert "&amp;" in html


# --- hashing ----------------------------------------------------------------------------------


def test_text_hash_is_sha256_hex_and_stable():
    first = text_hash("# Terms\n\nHello.")
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert text_hash("# Terms\n\nHello.") == first
    # Known value, so the fingerprint never drifts between releases.
    assert text_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_text_hash_changes_when_text_changes():
    assert text_hash("# Terms\n\nHello.") != text_hash("# Terms\n\nHello!")
    assert text_hash("a") != text_hash("a ")


def test_text_hash_ignores_line_ending_style():
    unix = text_hash("one\ntwo\n")
    assert text_hash("one\r\ntwo\r\n") == unix
    assert text_hash("one\rtwo\r") == unix


def test_text_hash_hashes_utf8():
    assert text_hash("café") != text_hash("cafe")
    assert re.fullmatch(r"[0-9a-f]{64}", text_hash("coeo 🛋️"))


# --- default texts ----------------------------------------------------------------------------


def test_policy_titles_cover_every_slug():
    assert POLICY_TITLES == {
        "terms": "Terms of Service",
        "privacy": "Privacy Policy",
        "good-faith-estimate": "Good Faith Estimate Notice",
        "accessibility": "Accessibility Statement",
    }


def test_load_default_refuses_unknown_slugs():
    for slug in ("nope", "../pyproject", "terms.md", ""):
        with pytest.raises(KeyError):
            load_default(slug)


@pytest.mark.parametrize("slug", SLUGS)
def test_default_text_starts_with_its_title_as_h1(slug):
    text = load_default(slug)
    assert text.splitlines()[0] == f"# {POLICY_TITLES[slug]}"
    assert sum(1 for line in text.splitlines() if line.startswith("# ")) == 1
    assert "\n## " in text


@pytest.mark.parametrize("slug", SLUGS)
def test_default_text_renders_cleanly(slug):
    text = load_default(slug)
    html = render_markdown(text)
    assert f">{POLICY_TITLES[slug]}</h1>" in html
    assert "<h2" in html
    assert "<ul>" in html
    # Rendering a default text must not lose anything: sanitizing should be a no-op.
    assert "&lt;" not in html


@pytest.mark.parametrize("slug", SLUGS)
def test_default_text_has_no_raw_html_version_or_hard_coded_date(slug):
    text = load_default(slug)
    assert not re.search(r"</?[a-zA-Z][^>]*>", text)
    assert not re.search(r"\bversion\s+\d", text, flags=re.IGNORECASE)
    assert not re.search(r"\b(19|20)\d\d\b", text)
    assert "effective date shown above" in text


@pytest.mark.parametrize("slug", SLUGS)
def test_default_text_writes_the_practice_name_in_lower_case(slug):
    text = load_default(slug)
    assert "coeo" in text
    assert "Coeo" not in text
    assert "COEO" not in text


@pytest.mark.parametrize("slug", SLUGS)
def test_default_text_gives_the_practice_contact_details(slug):
    text = load_default(slug)
    assert "team@coeocommunity.com" in text
    assert "(215) 360-3308" in text
    assert "555 2nd Ave, Suite C 650, Collegeville, PA 19426" in text


def test_terms_put_safety_first():
    text = load_default("terms")
    assert "988" in text
    assert "911" in text
    assert "emergency room" in text
    # The crisis information comes before anything else.
    assert text.index("988") < text.index("## Who can use")


def test_terms_cover_the_required_ground():
    text = load_default("terms")
    for phrase in (
        "invitation",
        "One person per account",
        "2 business days",
        "business hours",
        "Quick exit",
        "two-step sign-in",
        "private device",
        "Sign out",
        "cannot be edited or deleted",
        "clinical record",
        "maintenance",
        "suspend",
        "ask you to accept",
        "Pennsylvania",
    ):
        assert phrase in text, phrase


def test_privacy_notice_covers_uses_rights_and_the_complaint_route():
    text = load_default("privacy")
    for phrase in (
        "treatment",
        "payment",
        "health care operations",
        "psychotherapy notes",
        "marketing",
        "abuse",
        "court",
        "serious threat",
        "electronically",
        "correct",
        "accounting",
        "out of pocket, in full",
        "confidential communications",
        "paper copy",
        "power of attorney",
        "breach",
        "Office for Civil Rights",
        "www.hhs.gov/ocr/complaints",
        "1-877-696-6775",
        "200 Independence Avenue S.W., Washington, D.C. 20201",
        "retaliate",
        "privacy officer",
        "Pennsylvania",
    ):
        assert phrase in text, phrase


def test_privacy_notice_describes_portal_protections_honestly():
    text = load_default("privacy")
    for phrase in ("TLS", "AES-256", "emergency-access", "Who has seen my record", "access log"):
        assert phrase in text, phrase
    assert "never includes the content of a message" in text
    assert "server holds the keys" in text


def test_privacy_notice_never_claims_end_to_end_or_zero_access():
    lowered = load_default("privacy").lower()
    assert "zero-access" not in lowered
    assert "zero access" not in lowered
    for match in re.finditer(r"end[- ]to[- ]end", lowered):
        before = lowered[max(0, match.start() - 12) : match.start()]
        assert re.search(r"\bnot\s+$", before), f"unnegated claim near: {before!r}"


def test_good_faith_estimate_notice_follows_the_cms_model():
    text = load_default("good-faith-estimate")
    for phrase in (
        'You have the right to receive a "Good Faith Estimate" explaining how much your '
        "medical care will cost",
        "who don't have insurance or who are not using insurance",
        "non-emergency items or services",
        "www.cms.gov/nosurprises",
        "1-800-985-3059",
        "FederalPPDRQuestions@cms.hhs.gov",
        "$400",
        "120 calendar days",
        "1 business day",
        "3 business days",
        "10 business days",
        "save a copy or picture",
    ):
        assert phrase in text, phrase


def test_good_faith_estimate_notice_explains_the_portal():
    text = load_default("good-faith-estimate")
    assert "Estimates" in text
    assert "PDF" in text
    assert "Request an estimate" in text


def test_accessibility_statement_names_the_standard_and_how_to_report():
    text = load_default("accessibility")
    for phrase in (
        "WCAG",
        "2.1",
        "level AA",
        "keyboard",
        "Screen readers",
        "contrast",
        "without JavaScript",
        "200%",
        "Known limitations",
        "2 business days",
    ):
        assert phrase in text, phrase
