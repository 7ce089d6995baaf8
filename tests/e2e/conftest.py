"""Browser journeys: a real server on a free loopback port, driven by Debian's Chromium."""

import os
import threading
import time

import pytest
from werkzeug.serving import make_server

from portal.extensions import db

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture
def live_server(app):
    """Serve the test app on 127.0.0.1 in a background thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    port = server.server_port
    app.config["PORTAL_BASE_URL"] = f"http://127.0.0.1:{port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(timeout=5)
    _wait_for_requests_to_finish()


def _wait_for_requests_to_finish(timeout: float = 5.0) -> None:
    """Let request threads Chromium left behind (a download, a dropped fetch) hand their
    connection back before the app fixture disposes the pool: a connection returned after
    that is never closed, and PostgreSQL's driver warns when it is collected later."""
    deadline = time.monotonic() + timeout
    while db.engine.pool.checkedout() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture(scope="session")
def browser():
    """Launch headless Chromium once per test session."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed (/usr/bin/chromium): "
                    "run `apt-get install chromium` or `make test` as root")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context (no cookies) with a page."""
    context = browser.new_context(base_url=live_server, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors
