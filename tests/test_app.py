"""The application factory: production refuses to start unsafely; cookie flags per config."""

import pytest

import config as config_module
from portal import create_app
from portal.extensions import db
from tests.accounts.support import (  # noqa: F401 - fixtures
    guarded_requests,
    make_user,
    sign_in,
)

GOOD_SECRET = "s" * 48


@pytest.fixture
def clean_environment(monkeypatch):
    """Remove every setting the factory would read from the environment."""
    for key in [*config_module.ENV_SETTINGS, "DATABASE_URL", "PORTAL_ENV"]:
        monkeypatch.delenv(key, raising=False)


def _production(tmp_path, **overrides):
    settings = {"ENV_NAME": "production", "SECRET_KEY": GOOD_SECRET,
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'prod.db'}",
                "MAIL_SERVER": "smtp.example.org", "MAIL_USE_TLS": True,
                "INSTANCE_PATH": str(tmp_path),
                "PORTAL_MASTER_KEYS": config_module.TestingConfig.PORTAL_MASTER_KEYS,
                "PORTAL_INDEX_KEY": config_module.TestingConfig.PORTAL_INDEX_KEY}
    settings.update(overrides)
    return create_app(settings)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"SECRET_KEY": None}, "SECRET_KEY is missing or shorter than 32 characters"),
    ({"SECRET_KEY": "short-key"}, "SECRET_KEY is missing or shorter than 32 characters"),
    ({"SQLALCHEMY_DATABASE_URI": None}, "DATABASE_URL is not set"),
    ({"MAIL_SERVER": None}, "MAIL_SERVER is not set"),
    ({"DEBUG": True}, "DEBUG must be off"),
])
def test_production_refuses_to_start_with_one_clear_line(clean_environment, tmp_path,
                                                         overrides, message):
    with pytest.raises(SystemExit) as stopped:
        _production(tmp_path, **overrides)
    text = str(stopped.value.code)
    assert text.startswith("coeo portal will not start in production: ")
    assert message in text
    assert "\n" not in text


def test_production_names_every_missing_setting_at_once(clean_environment, tmp_path):
    with pytest.raises(SystemExit) as stopped:
        _production(tmp_path, SECRET_KEY=None, MAIL_SERVER=None)
    assert "SECRET_KEY" in str(stopped.value.code) and "MAIL_SERVER" in str(stopped.value.code)


def test_production_reads_its_settings_from_the_environment(clean_environment, monkeypatch,
                                                           tmp_path):
    monkeypatch.setenv("SECRET_KEY", GOOD_SECRET)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'prod.db'}")
    monkeypatch.setenv("MAIL_SERVER", "smtp.example.org")
    monkeypatch.setenv("MAIL_USE_TLS", "true")
    monkeypatch.setenv("DEBUG", "true")
    with pytest.raises(SystemExit) as stopped:
        create_app({"ENV_NAME": "production", "INSTANCE_PATH": str(tmp_path)})
    assert str(stopped.value.code) == "coeo portal will not start in production: DEBUG must be off"


def test_production_cookie_is_secure_with_the_host_prefix(clean_environment, tmp_path, app):
    prod = _production(tmp_path, SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with prod.test_client() as client:
            response = client.get("/sign-in", base_url="https://portal.example.org")
            cookie = response.headers["Set-Cookie"]
    finally:
        with prod.app_context():
            db.session.remove()
            db.engine.dispose()
    assert cookie.startswith("__Host-coeo_session=")
    for flag in ("Secure", "HttpOnly", "Path=/", "SameSite=Lax"):
        assert flag in cookie
    assert "Domain" not in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_development_and_test_cookies_are_httponly_and_lax(client):
    response = client.get("/sign-in")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("coeo_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie


def test_signed_in_cookie_keeps_the_flags(app):
    client = app.test_client()
    response = sign_in(client, make_user())
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_factory_takes_a_mapping_of_overrides(app):
    assert app.config["ENV_NAME"] == "testing"
    assert app.config["TESTING"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
