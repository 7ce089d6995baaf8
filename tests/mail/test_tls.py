"""Mail in transit: production refuses to start without TLS to the mail server, unless a
one-line reason allows plain text to a relay on this machine; delivery really uses STARTTLS or
implicit TLS against real aiosmtpd servers, and never falls back to plain text."""

import logging
import smtplib
import ssl

import pytest

import config as config_module
from portal import create_app
from portal.extensions import db
from portal.mail import deliver_pending, enqueue
from portal.mail import service as mail_service
from tests.mail.test_smtp_security import _self_signed
from tests.support.people import make_user, unique_email
from tests.support.smtp import SMTPServer

LINK = "https://portal.example.org/reset/tls-check"
PREFIX = "coeo portal will not start in production: "
REASON = "Postfix on this host relays to our provider over TLS"


@pytest.fixture
def clean_environment(monkeypatch):
    for key in [*config_module.ENV_SETTINGS, "DATABASE_URL", "PORTAL_ENV"]:
        monkeypatch.delenv(key, raising=False)


def _production(tmp_path, **overrides):
    settings = {"ENV_NAME": "production", "SECRET_KEY": "s" * 48,
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'prod.db'}",
                "MAIL_SERVER": "smtp.example.org", "INSTANCE_PATH": str(tmp_path),
                "PORTAL_MASTER_KEYS": config_module.TestingConfig.PORTAL_MASTER_KEYS,
                "PORTAL_INDEX_KEY": config_module.TestingConfig.PORTAL_INDEX_KEY}
    settings.update(overrides)
    app = create_app(settings)
    with app.app_context():
        db.engine.dispose()
    return app


def _refusal(tmp_path, **overrides) -> str:
    with pytest.raises(SystemExit) as stopped:
        _production(tmp_path, **overrides)
    text = str(stopped.value.code)
    assert text.startswith(PREFIX)
    assert "\n" not in text
    return text[len(PREFIX):]


# --- starting in production --------------------------------------------------------------------

def test_production_refuses_plain_text_mail_and_says_what_to_set(clean_environment, tmp_path):
    message = _refusal(tmp_path)
    assert message == (
        "mail to smtp.example.org would travel without TLS: set MAIL_USE_TLS=true "
        "(STARTTLS, port 587) or MAIL_USE_SSL=true (implicit TLS, port 465), or for a relay "
        "on this machine MAIL_ALLOW_PLAINTEXT_LOOPBACK to a one-line reason")


@pytest.mark.parametrize("setting", [{"MAIL_USE_TLS": True}, {"MAIL_USE_SSL": True}])
def test_production_starts_with_starttls_or_implicit_tls(clean_environment, tmp_path, setting):
    app = _production(tmp_path, **setting)
    assert app.config["ENV_NAME"] == "production"


def test_production_refuses_both_tls_settings_at_once(clean_environment, tmp_path):
    assert _refusal(tmp_path, MAIL_USE_TLS=True, MAIL_USE_SSL=True) == (
        "MAIL_USE_TLS (STARTTLS) and MAIL_USE_SSL (implicit TLS) are both on: choose one")


@pytest.mark.parametrize("server", ["127.0.0.1", "::1", "localhost", "[::1]", "127.0.0.2"])
def test_plain_text_is_allowed_to_a_loopback_relay_with_a_reason(clean_environment, tmp_path,
                                                                 server):
    app = _production(tmp_path, MAIL_SERVER=server, MAIL_ALLOW_PLAINTEXT_LOOPBACK=REASON)
    assert config_module.plaintext_mail_reason(app.config) == REASON


@pytest.mark.parametrize("server", ["smtp.example.org", "10.0.0.5", "192.168.1.20",
                                    "localhost.example.org", "::2"])
def test_the_allowance_never_covers_a_server_elsewhere(clean_environment, tmp_path, server):
    message = _refusal(tmp_path, MAIL_SERVER=server, MAIL_ALLOW_PLAINTEXT_LOOPBACK=REASON)
    assert message.startswith("MAIL_ALLOW_PLAINTEXT_LOOPBACK allows plain text only to a "
                              "relay on this machine")
    assert f"not {server}: set MAIL_USE_TLS=true or MAIL_USE_SSL=true" in message


@pytest.mark.parametrize("value", ["1", "true", "yes", "ok", "two\nlines of reason here"])
def test_the_allowance_must_be_a_one_line_reason_not_a_flag(clean_environment, tmp_path,
                                                            value):
    message = _refusal(tmp_path, MAIL_SERVER="127.0.0.1", MAIL_ALLOW_PLAINTEXT_LOOPBACK=value)
    assert message.startswith("MAIL_ALLOW_PLAINTEXT_LOOPBACK must be a one-line reason")


def test_the_settings_come_from_the_environment(clean_environment, monkeypatch, tmp_path):
    monkeypatch.setenv("MAIL_SERVER", "127.0.0.1")
    monkeypatch.setenv("MAIL_ALLOW_PLAINTEXT_LOOPBACK", REASON)
    monkeypatch.setenv("MAIL_USE_SSL", "false")
    settings = config_module.from_environment()
    assert settings["MAIL_ALLOW_PLAINTEXT_LOOPBACK"] == REASON
    assert settings["MAIL_USE_SSL"] is False
    assert config_module.mail_transport_problems(settings) == []


# --- delivery --------------------------------------------------------------------------------

@pytest.fixture
def person(db):
    return make_user("client", "Pat Example", email=unique_email("p"), password=None)


def _queue(person) -> None:
    enqueue(person, "password_reset", to_address="pat@example.org", link=LINK, minutes_valid=30)
    db.session.commit()


@pytest.fixture
def certificate(tmp_path, monkeypatch):
    """A self-signed certificate for 127.0.0.1 that the client trusts (SSL_CERT_FILE)."""
    cert_path, key_path = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
    return context


def _run(server: SMTPServer, app, **settings):
    server.start()
    app.config.update(MAIL_SERVER=server.host, MAIL_PORT=server.port, MAIL_TIMEOUT=5,
                      **settings)
    return server


def test_starttls_is_used_when_configured(app, db, person, certificate):
    """The server accepts mail only after STARTTLS (require_starttls): it arrived, so the
    connection was encrypted."""
    server = _run(SMTPServer(controller_kwargs={"tls_context": certificate,
                                                "require_starttls": True}), app,
                  MAIL_USE_TLS=True)
    try:
        _queue(person)
        report = deliver_pending()
    finally:
        server.stop()
    assert (report.sent, report.failed) == (1, 0)
    (received,) = server.envelopes
    assert LINK in received.text


def test_implicit_tls_is_used_when_configured(app, db, person, certificate):
    """MAIL_USE_SSL speaks TLS from the first byte (SMTPS, usually port 465)."""
    server = _run(SMTPServer(controller_kwargs={"ssl_context": certificate}), app,
                  MAIL_USE_SSL=True)
    try:
        _queue(person)
        report = deliver_pending()
    finally:
        server.stop()
    assert (report.sent, report.failed) == (1, 0)
    (received,) = server.envelopes
    assert LINK in received.text


def test_implicit_tls_to_a_plain_server_sends_nothing(app, db, person):
    server = _run(SMTPServer(), app, MAIL_USE_SSL=True)
    try:
        _queue(person)
        report = deliver_pending()
    finally:
        server.stop()
    assert (report.sent, report.failed, report.pending) == (0, 1, 1)
    assert server.envelopes == []


def test_starttls_is_never_skipped_when_the_server_does_not_offer_it(app, db, person):
    """A server (or someone in the middle) that leaves STARTTLS out of its EHLO answer gets
    nothing: the mail stays pending instead of going out in plain text."""
    server = _run(SMTPServer(), app, MAIL_USE_TLS=True)
    try:
        _queue(person)
        report = deliver_pending()
    finally:
        server.stop()
    assert (report.sent, report.failed, report.pending) == (0, 1, 1)
    assert server.envelopes == []


def test_an_untrusted_certificate_sends_nothing(app, db, person, tmp_path):
    """STARTTLS checks the certificate: one the client does not trust stops delivery."""
    cert_path, key_path = _self_signed(tmp_path)  # not put in SSL_CERT_FILE
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    server = _run(SMTPServer(controller_kwargs={"tls_context": context}), app,
                  MAIL_USE_TLS=True)
    try:
        _queue(person)
        report = deliver_pending()
    finally:
        server.stop()
    assert (report.sent, report.failed) == (0, 1)
    assert server.envelopes == []


def test_the_transport_calls_starttls_before_anything_is_sent(app, monkeypatch):
    calls = []

    class Recorder(smtplib.SMTP):
        def __init__(self, *args, **kwargs):  # no network
            calls.append(("connect", args[:2]))

        def ehlo(self, name=""):
            calls.append(("ehlo",))

        def starttls(self, **kwargs):
            calls.append(("starttls", isinstance(kwargs.get("context"), ssl.SSLContext)))

        def close(self):
            calls.append(("close",))

    monkeypatch.setattr(mail_service.smtplib, "SMTP", Recorder)
    config = {"MAIL_SERVER": "smtp.example.org", "MAIL_PORT": 587, "MAIL_USE_TLS": True}
    mail_service.Transport(config)._connect()
    assert calls == [("connect", ("smtp.example.org", 587)), ("ehlo",), ("starttls", True),
                     ("ehlo",)]


def test_plain_text_to_the_loopback_relay_is_logged_once_with_the_reason(app, db, person,
                                                                        caplog, monkeypatch):
    monkeypatch.setattr(mail_service, "_plaintext_noted", set())
    server = _run(SMTPServer(), app, MAIL_ALLOW_PLAINTEXT_LOOPBACK=REASON)
    try:
        with caplog.at_level(logging.WARNING, logger="portal.mail"):
            _queue(person)
            deliver_pending()
            _queue(person)
            deliver_pending()
    finally:
        server.stop()
    assert len(server.envelopes) == 2
    lines = [r.getMessage() for r in caplog.records if "without TLS" in r.getMessage()]
    assert lines == [f"mail: sending without TLS to the relay at 127.0.0.1:{server.port} "
                     f"(MAIL_ALLOW_PLAINTEXT_LOOPBACK: {REASON})"]
    assert "pat@example.org" not in caplog.text and LINK not in caplog.text
