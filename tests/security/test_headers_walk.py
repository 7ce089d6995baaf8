"""Security headers and cookie flags on every route, with real records, as every role.

tests/test_security.py checks the headers with placeholder ids (so most feature pages answer
404 there) and the CSP constant itself. This walk uses a world with real conversations,
attachments, estimates, bills, grants and policy versions, so the feature pages, downloads and
redirects themselves are checked: GET and HEAD for every GET route, and POST for every POST
route (refused for want of a token), as anonymous and as each signed-in role. It then checks
the session cookie's flags as set by signing in through the real forms (with the two-step
code for staff), in the test configuration and in the production configuration over HTTPS.
"""

import re

import pyotp
import pytest
from flask import current_app

import config as config_module
from portal import create_app
from portal.extensions import db
from portal.pages import CACHEABLE, PUBLIC, endpoints_marked
from tests.security.support import (
    PASSWORD,
    ROLES,
    build_url,
    csrf_from,
    real_value,
    routes,
    signed_in_client,
)

CSP = ("default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
PERMISSIONS = ("camera=(), microphone=(), geolocation=(), payment=(), usb=(), "
               "interest-cohort=(), browsing-topics=()")
# Downloads may add a sandbox, so a file opened in the browser cannot act as the portal.
DOWNLOADS = frozenset({"messaging.attachment", "estimates.download"})


def header_problems(response, endpoint: str, *, signed_in: bool) -> list[str]:
    """Return what is missing or wrong in one response's security headers."""
    headers = response.headers
    problems = []
    csp = headers.get("Content-Security-Policy")
    if csp != CSP and not (endpoint in DOWNLOADS and csp == f"{CSP}; sandbox"):
        problems.append(f"Content-Security-Policy: {csp!r}")
    expected = {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": PERMISSIONS,
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    for name, value in expected.items():
        if headers.get(name) != value:
            problems.append(f"{name}: {headers.get(name)!r}")
    if "unsafe-inline" in headers.get("Content-Security-Policy", ""):
        problems.append("CSP allows unsafe-inline")
    if len(headers.getlist("Content-Security-Policy")) != 1:
        problems.append("more than one CSP header")
    private = endpoint != "static" and (
        signed_in or endpoint not in endpoints_marked(current_app, CACHEABLE))
    if private and headers.get("Cache-Control") != "no-store":
        problems.append(f"Cache-Control: {headers.get('Cache-Control')!r} (want no-store)")
    if endpoint == "static" and "no-store" in headers.get("Cache-Control", ""):
        problems.append("a static file is no-store")
    if "Strict-Transport-Security" in headers:
        problems.append("HSTS outside production")
    if endpoint in DOWNLOADS and response.status_code == 200 and \
            not headers.get("Content-Disposition", "").startswith("attachment;"):
        problems.append(f"download not an attachment: {headers.get('Content-Disposition')}")
    for cookie in headers.getlist("Set-Cookie"):
        problems += cookie_problems(cookie, secure=False)
    return problems


def cookie_problems(cookie: str, *, secure: bool) -> list[str]:
    """Return what is wrong with one Set-Cookie header."""
    name = cookie.split("=", 1)[0]
    flags = {part.strip().split("=", 1)[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    problems = []
    prefix = "__Host-" if secure else ""
    # The session, and the remembered browser (accounts.sessions.remember_device).
    if name not in (f"{prefix}coeo_session", f"{prefix}coeo_device"):
        problems.append(f"unexpected cookie {name!r}")
    if "httponly" not in flags:
        problems.append(f"{name} without HttpOnly")
    if flags.get("samesite", "").lower() != "samesite=lax":
        problems.append(f"{name} without SameSite=Lax")
    if flags.get("path") != "Path=/":
        problems.append(f"{name} without Path=/")
    if "domain" in flags:
        problems.append(f"{name} with a Domain")
    if secure and "secure" not in flags:
        problems.append(f"{name} without Secure")
    if not secure and "secure" in flags:
        problems.append(f"{name} Secure outside production (would not be sent over http)")
    return problems


def _urls(world, rule) -> list[str]:
    """Real URLs for a rule: drafts and issued estimates, open and closed conversations."""
    base = {a: real_value(world, rule, a) for a in rule.arguments}
    urls = [build_url(rule, base)]
    if "estimate_id" in base and rule.endpoint in ("estimates.show", "estimates.download"):
        urls.append(build_url(rule, {**base, "estimate_id": str(world.ids["draft_id"])}))
    if "thread_id" in base:
        urls.append(build_url(rule, {**base, "thread_id": str(world.ids["closed_thread_id"])}))
    return urls


@pytest.mark.parametrize("role", ROLES)
def test_every_response_carries_the_security_headers(world, role):
    client, _ = signed_in_client(world.app, world.user_for(role))
    signed_in = role != "anonymous"
    problems, statuses = [], {}
    for rule in routes(world.app):
        if rule.endpoint in ("accounts.invitation_link", "accounts.reset_link"):
            continue  # these sign a visitor out; checked below, with their own client
        for url in _urls(world, rule):
            for method in sorted(rule.methods & {"GET", "HEAD", "POST"}):
                response = client.open(url, method=method)
                statuses[(method, url)] = response.status_code
                problems += [f"{role} {method} {url}: {p}" for p in
                             header_problems(response, rule.endpoint, signed_in=signed_in)]
                if method == "POST" and response.status_code != 400:
                    problems.append(f"{role} POST {url} without a token: "
                                    f"{response.status_code}")
    assert not problems, "\n".join(problems[:40])
    pages = [key for key, status in statuses.items() if key[0] == "GET" and status == 200]
    # The walk reaches real pages, not just redirects and 404s.
    assert len(pages) >= {"anonymous": 8, "client": 15, "therapist": 15, "admin": 15,
                         "guardian": 10}[role], \
        sorted(pages)


@pytest.mark.parametrize("role", ROLES)
def test_links_from_emails_carry_the_headers(world, role):
    for kind in ("invitation", "reset"):
        client, _ = signed_in_client(world.app, world.user_for(role))
        for path in (f"/{kind}/{world.tokens[kind]}", f"/{kind}/not-a-real-token", f"/{kind}"):
            response = client.get(path)
            endpoint = world.app.url_map.bind("localhost").match(path)[0]
            problems = header_problems(response, endpoint, signed_in=False)
            assert not problems, (role, path, problems)
            assert response.headers["Cache-Control"] == "no-store"


def test_static_files_are_cacheable_and_never_set_cookies(world):
    for role in ROLES:
        client, _ = signed_in_client(world.app, world.user_for(role))
        for path in ("/static/css/portal.css", "/static/js/idle-timeout.js",
                     "/static/img/couch.svg"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert not header_problems(response, "static", signed_in=role != "anonymous")
            assert "Set-Cookie" not in response.headers, path


def test_signing_in_through_the_forms_sets_only_a_flagged_session_cookie(world):
    for role in ("client", "therapist", "admin"):
        user = world.users[role]
        client = world.app.test_client()
        cookies = _sign_in(client, user, base_url="http://localhost")
        assert cookies, role
        for cookie in cookies:
            assert not cookie_problems(cookie, secure=False), (role, cookie)
        response = client.get("/account")
        assert response.status_code == 200, role
        assert response.headers["Cache-Control"] == "no-store"
        token = csrf_from(response.get_data(as_text=True))
        response = client.post("/sign-out", data={"csrf_token": token})
        assert response.headers["Clear-Site-Data"] == '"cache", "cookies", "storage"'
        for cookie in response.headers.getlist("Set-Cookie"):
            assert not cookie_problems(cookie, secure=False), (role, cookie)


def _sign_in(client, user, *, base_url: str, headers: dict | None = None) -> list[str]:
    """Sign in through the forms (password, then the code for staff); return Set-Cookies."""
    from sqlalchemy import update

    from portal.accounts.models import User

    headers = headers or {}
    cookies: list[str] = []
    page = client.get("/sign-in", base_url=base_url)
    cookies += page.headers.getlist("Set-Cookie")
    response = client.post("/sign-in", base_url=base_url, headers=headers, data={
        "csrf_token": csrf_from(page.get_data(as_text=True)),
        "email": user.email_address, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    cookies += response.headers.getlist("Set-Cookie")
    if user.totp is not None:
        db.session.execute(update(User).where(User.id == user.id).values(totp_last_step=None))
        db.session.commit()
        page = client.get("/sign-in/verify", base_url=base_url)
        response = client.post("/sign-in/verify", base_url=base_url, headers=headers, data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "code": pyotp.TOTP(user.totp.secret).now()})
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        assert not response.location.startswith("/sign-in"), response.location
        cookies += response.headers.getlist("Set-Cookie")
    return cookies


@pytest.fixture
def production(world, monkeypatch):
    """The production configuration on the world's database, served over HTTPS."""
    for key in [*config_module.ENV_SETTINGS, "DATABASE_URL", "PORTAL_ENV"]:
        monkeypatch.delenv(key, raising=False)
    db.session.commit()
    app = create_app({
        "ENV_NAME": "production", "SECRET_KEY": "p" * 48, "MAIL_SERVER": "smtp.example.org",
        "MAIL_USE_TLS": True,
        "SQLALCHEMY_DATABASE_URI": world.app.config["SQLALCHEMY_DATABASE_URI"],
        "INSTANCE_PATH": world.app.instance_path, "LOG_JSON": False,
        "PORTAL_MASTER_KEYS": config_module.TestingConfig.PORTAL_MASTER_KEYS,
        "PORTAL_INDEX_KEY": config_module.TestingConfig.PORTAL_INDEX_KEY,
        "RATELIMIT_ENABLED": False})
    app.test_client_class = world.app.test_client_class
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("role", ["client", "therapist", "admin"])
def test_production_cookies_are_secure_host_only_and_sign_in_works_without_a_referrer(
        world, production, role):
    # Browsers send no Referer under our own Referrer-Policy: no-referrer, so a CSRF check
    # that insists on one over HTTPS would refuse every form in production.
    client = production.test_client()
    cookies = _sign_in(client, world.users[role], base_url="https://localhost")
    assert cookies
    for cookie in cookies:
        assert not cookie_problems(cookie, secure=True), cookie
    response = client.get("/account", base_url="https://localhost")
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=63072000")
    assert response.headers["Cache-Control"] == "no-store"
    token = csrf_from(response.get_data(as_text=True))
    response = client.post("/sign-out", base_url="https://localhost",
                           data={"csrf_token": token})
    assert response.status_code == 302
    deleted = response.headers.getlist("Set-Cookie")
    assert deleted and all(re.search(r"Expires=Thu, 01 Jan 1970", c) for c in deleted)
    for cookie in deleted:
        assert not cookie_problems(cookie, secure=True), cookie


def test_production_still_refuses_a_post_without_a_token(world, production):
    client = production.test_client()
    client.get("/sign-in", base_url="https://localhost")
    response = client.post("/sign-in", base_url="https://localhost",
                           data={"email": "a@example.org", "password": "x" * 20})
    assert response.status_code == 400
    assert response.headers["Content-Security-Policy"] == CSP


def test_public_and_cacheable_endpoints_are_the_reviewed_ones(app):
    # The walk above trusts these sets; changing either is a decision to review here too.
    cacheable = endpoints_marked(app, CACHEABLE)
    assert {"policies.index", "policies.show", "policies.version", "policies.sitemap",
            "policies.robots", "static"} == set(cacheable)
    assert cacheable <= endpoints_marked(app, PUBLIC)
