"""Generated input (hypothesis): beyond the fixed corpus, any text a person sends comes back
as the same text, never as markup; any policy Markdown renders to the allowed HTML only."""

import html
from html.parser import HTMLParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape

from portal.policies.rendering import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, render_markdown
from tests.security.support import Actor, csrf_from, escaping_problems

FRAGMENTS = ["<script>", "</script>", "<img src=x onerror=", "<svg/onload=", '"', "'", ">",
             "<", "&", "&#", "&lt;", "javascript:", "jav&#x09;ascript:", "data:text/html,",
             "](", "[", "](javascript:alert(1))", "<a href=", " onclick=", "{{", "}}", "{%",
             "<!--", "-->", "<![CDATA[", "\\", "`", "<style>", "<iframe", "\n", "\t", "%00",
             "<textarea>", "</textarea>", "<b", "=", "/", "coeo_xss(1)"]

hostile_text = st.lists(st.sampled_from(FRAGMENTS) | st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
    min_size=1, max_size=12).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=hostile_text)
def test_a_message_of_any_text_is_shown_as_that_text(world, text):
    if not text.strip():
        return
    actor = Actor(world, "client")
    thread = f"/messages/{world.ids['thread_id']}"
    response = actor.client.post(f"{thread}/reply", data={"csrf_token": actor.csrf,
                                                         "body": text})
    assert response.status_code in (302, 400), response.status_code
    page = actor.client.get(thread).get_data(as_text=True)
    assert not escaping_problems(page)
    if response.status_code == 302:
        # As sent, with line breaks normalized and blank lines at either end dropped.
        sent = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
        assert f'<p class="message__body">{escape(sent)}</p>' in page, (
            "the message is not shown exactly as sent")
    assert csrf_from(page)


class _Strict(HTMLParser):
    """Collect anything outside the policy renderer's allow-list."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"tag <{tag}>")
        for name, value in attrs:
            if name not in ALLOWED_ATTRIBUTES.get(tag, set()) | {"rel"}:
                self.problems.append(f"attribute {name} on <{tag}>")
            if name == "href":
                scheme = "".join(html.unescape(value or "").split()).lower().split(":", 1)
                if len(scheme) == 2 and scheme[0] not in ("http", "https", "mailto", "tel") \
                        and "/" not in scheme[0] and "#" not in scheme[0]:
                    self.problems.append(f"link scheme {scheme[0]}:")


@settings(max_examples=300, deadline=None)
@given(text=hostile_text)
def test_policy_markdown_renders_to_allowed_html_only(text):
    parser = _Strict()
    parser.feed(render_markdown(text))
    parser.close()
    assert not parser.problems, parser.problems
