"""Security headers, the sign-in requirement on every route, CSRF, `next`, error pages."""

import re
import uuid
from urllib.parse import urlsplit

import pytest
from flask import abort
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.routing import Rule

from portal.pages import PUBLIC, endpoints_marked, public
from portal.security import CSP, safe_next
from tests.accounts.support import (  # noqa: F401 - fixtures
    extra_app,
    guarded_requests,
    post_form,
    sign_in,
)
from tests.accounts.support import make_user as make_person  # for the sign-in pages' tests
from tests.support.auth import AuthActions, signed_in
from tests.support.guards import READINESS
from tests.support.people import csrf_from, make_user

EXPECTED_CSP = ("default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                "frame-ancestors 'none'")

# Every endpoint anyone may reach without signing in. Adding one is a decision: change both.
EXPECTED_PUBLIC = {
    "static", "main.home", "main.login",
    "accounts.sign_in", "accounts.mfa_challenge", "accounts.forgot_password",
    "accounts.invitation_link", "accounts.accept_invitation", "accounts.reset_link",
    "accounts.reset_password", "accounts.signed_out",
    "accounts.email_change_link", "accounts.confirm_email_change",
    "policies.index", "policies.show", "policies.version", "policies.sitemap", "policies.robots",
    "ops.healthz", "ops.readyz",
}


def _assert_security_headers(response, where: str) -> None:
    headers = response.headers
    assert headers["Content-Security-Policy"] == EXPECTED_CSP, where
    assert "unsafe-inline" not in headers["Content-Security-Policy"], where
    assert headers["X-Content-Type-Options"] == "nosniff", where
    assert headers["Referrer-Policy"] == "no-referrer", where
    policy = headers["Permissions-Policy"]
    for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()"):
        assert feature in policy, where
    assert headers["X-Frame-Options"] == "DENY", where


def _placeholder(converter) -> str:
    name = type(converter).__name__
    if name == "UUIDConverter":
        return str(uuid.uuid4())
    if name in ("IntegerConverter", "NumberConverter"):
        return "1"
    if name == "FloatConverter":
        return "1.0"
    if name == "AnyConverter":
        return re.search(r"\w+", converter.regex).group(0)
    return "placeholder"


def _url(rule: Rule) -> str:
    path = rule.rule
    for name, converter in rule._converters.items():
        path = re.sub(rf"<(?:[^<>]*:)?{name}>", _placeholder(converter), path)
    return path


def _routes(app):
    for rule in app.url_map.iter_rules():
        methods = sorted((rule.methods or set()) & {"GET", "POST"})
        yield rule, _url(rule), methods


def test_the_code_uses_the_exact_csp():
    assert CSP == EXPECTED_CSP


def test_public_endpoints_are_exactly_the_reviewed_allowlist(app):
    assert set(endpoints_marked(app, PUBLIC)) == EXPECTED_PUBLIC


def test_every_non_public_route_sends_anonymous_visitors_to_sign_in(app):
    checked = 0
    # CSRF off in this app only, so an anonymous POST reaches the sign-in check.
    with extra_app(app, WTF_CSRF_ENABLED=False) as open_app:
        client = open_app.test_client()
        for rule, url, methods in _routes(open_app):
            if rule.endpoint in endpoints_marked(open_app, PUBLIC):
                continue
            for method in methods:
                response = client.open(url, method=method)
                assert response.status_code == 302, f"{method} {url} -> {response.status_code}"
                assert response.location.startswith("/sign-in"), f"{method} {url}"
                checked += 1
    assert checked >= 20


CSRF_REFUSAL = "That page had expired"  # the 400 page's words for a missing or bad token


@pytest.mark.parametrize("role", [None, "client", "admin"])
def test_posts_without_a_csrf_token_are_refused_for_that_reason(app, role):
    """Every POST route refuses a token-less request with the CSRF page, whoever sends it:
    not a sign-in redirect (an anonymous POST) nor a role check (a signed-in one)."""
    client = app.test_client() if role is None else signed_in(app, make_user(role))
    checked = 0
    for _rule, url, methods in _routes(app):
        if "POST" in methods:
            response = client.post(url)
            assert response.status_code == 400, f"{role} POST {url} -> {response.status_code}"
            assert CSRF_REFUSAL in response.get_data(as_text=True), f"{role} POST {url}"
            checked += 1
    assert checked >= 30, checked


def test_the_csrf_refusal_is_what_stops_a_token_less_post(app):
    """The same POST with the session's token gets past the CSRF check (to the form's own
    validation), so the refusal above is the token's doing."""
    client = signed_in(app, make_user("client"))
    token = AuthActions(client).csrf("/messages/new")
    without = client.post("/messages/new", data={"subject": "", "body": ""})
    assert without.status_code == 400 and CSRF_REFUSAL in without.get_data(as_text=True)
    with_token = client.post("/messages/new", data={"subject": "", "body": "",
                                                    "csrf_token": token})
    assert with_token.status_code == 422, with_token.status_code
    assert CSRF_REFUSAL not in with_token.get_data(as_text=True)


def test_public_routes_answer_anonymous_visitors_without_an_error(app):
    client = app.test_client()
    checked = set()
    for rule, url, methods in _routes(app):
        if rule.endpoint in endpoints_marked(app, PUBLIC) and "GET" in methods:
            with client.get(url) as response:
                status = response.status_code
                assert status < 500 or (rule.endpoint, status) == READINESS, url
            checked.add(rule.endpoint)
    assert checked == EXPECTED_PUBLIC


def test_every_page_behind_sign_in_is_no_store(app):
    for role in ("client", "therapist", "admin"):
        client = signed_in(app, make_user(role))
        for rule, url, methods in _routes(app):
            if rule.endpoint in endpoints_marked(app, PUBLIC) or "GET" not in methods:
                continue
            response = client.get(url)
            assert response.headers.get("Cache-Control") == "no-store", f"{role} GET {url}"
            _assert_security_headers(response, f"{role} GET {url}")


@pytest.mark.parametrize("path", ["/sign-in", "/forgot-password", "/signed-out",
                                  "/no-such-page", "/invitation/not-a-real-token", "/"])
def test_security_headers_on_public_pages_redirects_and_error_pages(client, path):
    response = client.get(path)
    _assert_security_headers(response, path)
    assert response.headers["Cache-Control"] == "no-store"


def test_security_headers_on_static_files(client):
    with client.get("/static/css/portal.css") as response:
        assert response.status_code == 200
        _assert_security_headers(response, "static")
        assert "no-store" not in response.headers.get("Cache-Control", "")


def test_security_headers_on_405_and_csrf_400(client):
    _assert_security_headers(client.get("/sign-out"), "405")
    _assert_security_headers(client.post("/sign-in"), "400")


def test_hsts_only_in_production(app, client):
    assert "Strict-Transport-Security" not in client.get("/sign-in").headers
    app.config["HSTS"] = True
    assert client.get("/sign-in").headers["Strict-Transport-Security"].startswith(
        "max-age=63072000")


# --- CSRF ------------------------------------------------------------------------------

def test_csrf_protection_is_on_in_the_test_config(app):
    assert app.config.get("WTF_CSRF_ENABLED", True) is True


@pytest.mark.parametrize("token", [None, "", "forged-token", "ImFiYyI.aaaaaa.bbbbbbbb"])
def test_post_without_a_valid_csrf_token_is_a_friendly_400(app, client, auth, token):
    person = make_user()
    auth.login(person)
    data = {"current_password": person.password, "new_password": "x" * 20, "confirm": "x" * 20}
    if token is not None:
        data["csrf_token"] = token
    response = client.post("/account/password", data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "That page had expired" in html and "Nothing was sent." in html
    assert "Traceback" not in html and "CSRF" not in html
    _assert_security_headers(response, "csrf")


def test_token_from_another_session_is_refused(app):
    one, two = app.test_client(), app.test_client()
    token = csrf_from(one.get("/sign-in").get_data(as_text=True))
    two.get("/sign-in")
    response = two.post("/sign-in", data={"email": "a@example.org", "password": "p" * 20,
                                          "csrf_token": token})
    assert response.status_code == 400


# --- next -----------------------------------------------------------------------------

@pytest.mark.parametrize(("target", "followed"), [
    ("/account", "/account"),
    ("/account/password?from=menu", "/account/password?from=menu"),
    ("//evil.com", None),
    ("///evil.com", None),
    ("https://evil.com", None),
    ("http://evil.com/account", None),
    ("/\\evil.com", None),
    ("\\\\evil.com", None),
    ("javascript:alert(1)", None),
    ("/\t/evil.com", None),
    ("/\n/evil.com", None),
    ("evil.com", None),
    ("", None),
    (None, None),
])
def test_next_is_followed_only_for_relative_paths(target, followed):
    assert safe_next(target) == followed


@pytest.mark.parametrize(("target", "landing"), [
    ("/account/password", "/account/password"),
    ("//evil.com", "/"),
    ("https://evil.com", "/"),
    ("/\\evil.com", "/"),
    ("javascript:alert(1)", "/"),
])
def test_sign_in_honours_only_safe_next(app, target, landing):
    response = sign_in(app.test_client(), make_person(), next_url=target)
    assert response.status_code == 302
    assert response.location == landing


def test_anonymous_visit_comes_back_after_sign_in(app):
    client = app.test_client()
    person = make_person()
    response = client.get("/account/password?from=menu")
    assert response.location == "/sign-in?next=/account/password?from%3Dmenu"
    page = client.get(response.location).get_data(as_text=True)
    assert 'name="next" type="hidden" value="/account/password?from=menu"' in page
    assert sign_in(client, person, next_url="/account/password?from=menu").location == \
        "/account/password?from=menu"


def test_next_survives_the_two_step_code(app):
    person = make_person("therapist")
    response = sign_in(app.test_client(), person, next_url="/account/password")
    assert response.location == "/account/password"


# --- error pages -------------------------------------------------------------------------

@pytest.fixture
def broken_app(app, monkeypatch):
    """An app with routes that fail on purpose (a 403 and an unexpected exception)."""

    def forbidden():
        abort(403)

    def boom():
        raise RuntimeError("secret internal detail /srv/portal/x.py line 42")

    # Not the test's own app: its 500 guard would (rightly) fail on the deliberate 500.
    with extra_app(app) as broken:
        broken.add_url_rule("/test-forbidden", "test_forbidden", public(forbidden))
        broken.add_url_rule("/test-boom", "test_boom", public(boom))
        yield broken


@pytest.mark.parametrize(("path", "status", "heading"), [
    ("/test-forbidden", 403, "This page isn\u2019t available to you"),
    ("/no-such-page", 404, "We couldn\u2019t find that page"),
    ("/test-boom", 500, "Sorry, something went wrong on our side"),
])
def test_error_pages_are_friendly_and_show_no_technical_detail(broken_app, path, status,
                                                               heading):
    response = broken_app.test_client().get(path)
    html = response.get_data(as_text=True)
    assert response.status_code == status
    assert heading in html
    for leak in ("Traceback", "RuntimeError", "secret internal detail", "werkzeug"):
        assert leak not in html
    assert 'id="quick-exit"' in html
    _assert_security_headers(response, path)


def test_405_page_is_friendly_and_keeps_the_allow_header(client):
    response = client.get("/sign-out")
    assert response.status_code == 405
    assert "This page can\u2019t be used that way" in response.get_data(as_text=True)
    assert "POST" in response.headers["Allow"]


def test_request_larger_than_max_content_length_is_a_friendly_413(app):
    with extra_app(app, MAX_CONTENT_LENGTH=2 * 1024) as small:
        client = small.test_client()
        token = csrf_from(client.get("/sign-in").get_data(as_text=True))
        response = client.post("/sign-in", data={"email": "a@example.org",
                                                 "password": "p" * 5000, "csrf_token": token})
    html = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "That was too large to send" in html and "The limit is 2 KB" in html
    _assert_security_headers(response, "413")


def test_forms_that_are_not_uploads_are_held_to_the_form_memory_limit(app, client):
    # MAX_CONTENT_LENGTH is sized for attachments; a plain form is read into memory whole.
    assert app.config["MAX_FORM_MEMORY_SIZE"] < app.config["MAX_CONTENT_LENGTH"]
    token = csrf_from(client.get("/sign-in").get_data(as_text=True))
    response = client.post("/sign-in", data={"email": "a@example.org",
                                             "password": "p" * (600 * 1024),
                                             "csrf_token": token})
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    assert "That was too large to send" in html and "The limit is 500 KB" in html


@pytest.mark.parametrize("path", ["/sign-in", "/forgot-password", "/no-such-page"])
def test_quick_exit_is_on_public_and_error_pages(client, path):
    html = client.get(path).get_data(as_text=True)
    assert re.search(r'<a class="quick-exit" href="https://[^"]+" id="quick-exit"', html)


@pytest.mark.server_error_expected(503)
def test_database_trouble_is_a_friendly_503_even_for_a_signed_in_user(app, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from portal.extensions import login_manager

    client = signed_in(app, make_user())

    def unavailable(alt_id):
        raise OperationalError("SELECT 1", {}, Exception("database is locked"))

    monkeypatch.setattr(login_manager, "_user_callback", unavailable)
    response = client.get("/account")
    html = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "The portal is briefly unavailable" in html
    assert "database is locked" not in html and "SELECT" not in html
    _assert_security_headers(response, "503")
    assert response.headers["Cache-Control"] == "no-store"


@given(st.text(max_size=60) | st.sampled_from(["/", "//", "/\\", "\\", "https:", "/\t/", "%2F"])
       .flatmap(lambda start: st.text(max_size=30).map(lambda rest: start + rest)))
def test_whatever_next_is_followed_stays_on_this_site(target):
    followed = safe_next(target)
    if followed is None:
        return
    # What a browser would do with it: drop tabs and newlines, read backslashes as slashes.
    seen = re.sub(r"[\t\n\r]", "", followed).replace("\\", "/")
    parts = urlsplit(seen)
    assert parts.scheme == "" and parts.netloc == ""
    assert seen.startswith("/") and not seen.startswith("//")


def test_the_auth_helper_signs_in_as_the_sign_in_page_does_and_out_again(client, auth):
    """tests/support's injected session is a real one: the pages behind sign-in open, and
    signing out ends it (a two-step account's session counts as verified)."""
    therapist = make_user("therapist")
    auth.login(therapist)
    assert client.get("/account").status_code == 200
    assert auth.logout().status_code == 302
    assert client.get("/account").location.startswith("/sign-in")
