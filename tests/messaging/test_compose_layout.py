"""The compose page puts the emergency numbers right under the message's text box, in the
markup, at every width: a client typing on a phone sees them while they write (not above the
form, scrolled away, nor in a side column)."""

from html.parser import HTMLParser

from tests.messaging.conftest import csrf_token


class ComposeOrder(HTMLParser):
    """Record, in document order, the safety notice and the parts of the compose form."""

    def __init__(self):
        super().__init__()
        self.order: list[str] = []
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "aside" and a.get("aria-labelledby") == "safety-notice-title":
            self.order.append("notice")
        elif tag == "form" and "composer-form" in classes:
            self._in_form = True
            self.order.append("form")
        elif self._in_form and tag == "textarea":
            self.order.append("text")
        elif self._in_form and (tag == "select"
                                or (tag == "input" and a.get("type") != "hidden")):
            self.order.append("field")
        elif self._in_form and tag == "button" and a.get("type") == "submit":
            self.order.append("submit")

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def _order(html: str) -> list[str]:
    parser = ComposeOrder()
    parser.feed(html)
    return parser.order


def _assert_notice_right_under_the_text_box(order: list[str]) -> None:
    assert order.count("notice") == 1 and order.count("text") == 1, order
    text, notice = order.index("text"), order.index("notice")
    assert order.index("form") < order.index("field") < text, order  # subject, then text
    assert notice == text + 1, order  # nothing between the text box and the numbers
    assert notice < order.index("submit"), order


def test_client_compose_page_shows_the_safety_notice_right_under_the_text_box(
        app, db, people, login):
    html = login(people.client_a).get("/messages/new").get_data(as_text=True)
    order = _order(html)
    _assert_notice_right_under_the_text_box(order)
    assert order[order.index("notice") + 1] == "field", order  # then the file input
    assert "tel:988" in html and "sms:988" in html and "tel:911" in html


def test_safety_notice_stays_under_the_text_box_when_the_form_comes_back_with_errors(
        app, db, people, login):
    client = login(people.client_a)
    token = csrf_token(client, "/messages/new")
    response = client.post("/messages/new", data={"csrf_token": token, "subject": "",
                                                  "body": ""})
    html = response.get_data(as_text=True)
    assert response.status_code in (200, 400, 422), response.status_code
    assert 'class="error-summary"' in html
    _assert_notice_right_under_the_text_box(_order(html))


def test_therapist_compose_page_has_no_client_safety_notice(app, db, people, login):
    html = login(people.therapist_x).get("/messages/new").get_data(as_text=True)
    order = _order(html)
    assert "notice" not in order and "submit" in order, order

