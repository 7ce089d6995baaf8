"""Production request logs: one JSON object per line, a request id, and nothing private."""

import io
import json
import logging
import re

import pytest

from portal.accounts import service as accounts
from portal.crypto import ensure_canaries
from portal.extensions import db as _db
from portal.ops.logs import JsonFormatter
from tests.conftest import POSTGRES_URL, _database_url, _reset_postgres
from tests.messaging.conftest import PASSWORD, assign, csrf_token, make_user
from tests.ops.support import build_app

LOGGERS = ("portal", "gunicorn.error", "werkzeug")
REQUEST_KEYS = {"time", "level", "request_id", "user_id", "route", "status", "duration_ms"}


@pytest.fixture
def app(tmp_path):
    """The test app with LOG_JSON on, as in production; logging is put back afterwards."""
    saved = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).level,
                    logging.getLogger(name).propagate, list(logging.getLogger(name).filters))
             for name in LOGGERS}
    app = build_app(_database_url(tmp_path), tmp_path, LOG_JSON=True)
    try:
        with app.app_context():
            if POSTGRES_URL:
                _reset_postgres()
            _db.create_all()
            ensure_canaries()
            yield app
            _db.session.remove()
            if POSTGRES_URL:
                _reset_postgres()
            _db.engine.dispose()
    finally:
        for name, (handlers, level, propagate, filters) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:], logger.filters[:] = handlers, filters
            logger.setLevel(level)
            logger.propagate = propagate


@pytest.fixture
def log_output(app):
    """Point the app's own JSON handler at a buffer; return the buffer."""
    handlers = logging.getLogger("portal").handlers
    assert len(handlers) == 1 and isinstance(handlers[0].formatter, JsonFormatter)
    buffer = io.StringIO()
    handlers[0].setStream(buffer)
    return buffer


def lines(buffer: io.StringIO) -> list[dict]:
    text = buffer.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]  # every line is one object


def request_lines(buffer: io.StringIO) -> list[dict]:
    return [entry for entry in lines(buffer) if entry.get("logger") == "portal.request"]


def test_every_request_is_one_json_line_with_the_fields_operators_need(app, client, log_output):
    client.get("/sign-in")
    client.get("/healthz")
    client.get("/no-such-page")
    entries = request_lines(log_output)
    assert [e["status"] for e in entries] == [200, 200, 404]
    for entry in entries:
        assert entry.keys() >= REQUEST_KEYS
        assert entry["level"] == "info"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["time"])
        assert isinstance(entry["duration_ms"], int | float) and entry["duration_ms"] >= 0
        assert entry["user_id"] is None
    assert [e["route"] for e in entries] == ["/sign-in", "/healthz", None]


def test_a_request_id_is_echoed_or_made_and_matches_the_log_line(app, client, log_output):
    given = client.get("/healthz", headers={"X-Request-ID": "edge-7f3a.1_b"})
    made = client.get("/healthz")
    refused = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    too_long = client.get("/healthz", headers={"X-Request-ID": "x" * 65})
    assert given.headers["X-Request-ID"] == "edge-7f3a.1_b"
    for response in (made, refused, too_long):
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    ids = [e["request_id"] for e in request_lines(log_output)]
    assert ids == [r.headers["X-Request-ID"] for r in (given, made, refused, too_long)]
    assert len(set(ids)) == 4


def test_logs_never_hold_an_email_name_subject_body_token_or_query_string(
        app, client, log_output, caplog):
    caplog.set_level(logging.DEBUG)
    person = make_user("client", "Quinn Logmarker-Name")
    therapist = make_user("therapist", "Tamsin Logmarker-Staff")
    assign(person, therapist)

    # A failed and a good sign-in: the email travels in the form body.
    token = csrf_token(client, "/sign-in?next=/messages%3Fq%3Dqs-secret-4411")
    client.post("/sign-in", data={"csrf_token": token, "email": person.email_address,
                                  "password": "not the password at all"})
    client.post("/sign-in", data={"csrf_token": csrf_token(client, "/sign-in"),
                                  "email": person.email_address, "password": PASSWORD})

    # A message with a marker subject and body.
    form = {"csrf_token": csrf_token(client, "/messages/new"), "recipient": str(therapist.id),
            "subject": "subject-marker-5531", "body": "body-marker-7729 my private words"}
    response = client.post("/messages/new", data=form)
    assert response.status_code == 302
    thread_path = response.headers["Location"].split("#")[0]
    assert client.get(thread_path).status_code == 200
    client.get("/messages?page=1&token=query-token-9931")

    # An invitation link carries its token in the path.
    _invited, link = accounts.create_user(None, role="client", name="Invitee Logmarker",
                                         email="invitee-logmarker@example.org")
    invitation_token = link.rsplit("/", 1)[1]
    visitor = app.test_client()
    assert visitor.get(f"/invitation/{invitation_token}?utm=query-utm-1234").status_code == 302
    assert visitor.get("/invitation/not-a-real-token-8812").status_code == 404
    client.get("/reset/reset-token-in-path-6613")

    output = log_output.getvalue()
    entries = request_lines(log_output)
    assert len(entries) >= 10
    signed_in = [e for e in entries if e["user_id"] == str(person.id)]
    assert {"/messages/new", "/messages/<uuid:thread_id>", "/messages"} <= {
        e["route"] for e in signed_in}
    assert {"/invitation/<token>", "/reset/<token>"} <= {e["route"] for e in entries}

    secrets = [person.email_address, therapist.email_address, "invitee-logmarker@example.org",
               "Logmarker", "subject-marker-5531", "body-marker-7729", "my private words",
               invitation_token, "not-a-real-token-8812", "reset-token-in-path-6613",
               "query-token-9931", "query-utm-1234", "qs-secret-4411", "page=1", PASSWORD,
               thread_path.rsplit("/", 1)[1]]
    for secret in secrets:
        assert secret not in output, secret
        assert secret not in caplog.text, secret
