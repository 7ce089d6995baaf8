"""coeo portal: the application factory."""

import logging
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

import config as config_module
from portal import audit, crypto, errors, mail, pages, security, templating
from portal.accounts import feature as accounts
from portal.admin import feature as admin
from portal.cli import portal_cli
from portal.db import (
    connections,  # every connection's set-up; the development database's file modes
    transactions,
)
from portal.estimates import feature as estimates
from portal.extensions import csrf, db, limiter, login_manager, migrate
from portal.guardians import feature as guardians
from portal.main import feature as main
from portal.messaging import feature as messaging
from portal.ops import feature as ops
from portal.ops import logs
from portal.policies import feature as policies
from portal.records import feature as records

# Every feature, registered explicitly: one that fails to import stops the app. In this
# order, the accounts gate (two-step enrolment) runs before the policy gate.
FEATURES = (main, accounts, guardians, admin, messaging, estimates, policies, records, ops)

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: type | dict[str, Any] | None = None) -> Flask:
    """Build the app from a config class or a mapping of overrides (flaskr's test_config)."""
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=(isinstance(config, dict) and config.get("INSTANCE_PATH"))
        or os.environ.get("PORTAL_INSTANCE_PATH") or str(ROOT / "instance"),
    )
    overrides: dict[str, Any] = {}
    if isinstance(config, type):
        cls = config
    else:
        cls = config_module.config_class(
            (config or {}).get("ENV_NAME") if isinstance(config, dict) else None
        )
        overrides = dict(config or {})
    app.config.from_object(cls)
    if cls is not config_module.TestingConfig:
        app.config.update(config_module.from_environment())
    app.config.update(overrides)

    _prepare_development(app)
    _check_production(app)

    transactions.configure(app)
    db.init_app(app)
    migrate.init_app(app, db, render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    transactions.install(app)

    crypto.init_app(app)
    audit.init_app(app)
    mail.init_app(app)
    logs.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    templating.init_app(app)
    pages.declare_static(app)
    for feature in FEATURES:
        feature.init_app(app)
    crypto.check_at_startup(app)
    app.cli.add_command(portal_cli)

    if app.config.get("PROXY_FIX_HOPS"):
        hops = app.config["PROXY_FIX_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    return app


def _prepare_development(app: Flask) -> None:
    """Give `make run` a SQLite database and a secret key under instance/ without set-up."""
    if app.config["ENV_NAME"] != "development":
        return
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'portal.db'}"
    # The database (and its -wal, -shm and lock files) readable by its owner only, also when
    # an earlier version or another umask made them wider.
    database = connections.sqlite_file(app.config["SQLALCHEMY_DATABASE_URI"], app.instance_path)
    if database:
        connections.make_private(database)
    if not app.config.get("SECRET_KEY"):
        key_file = instance / "secret_key"
        if not key_file.exists():
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        app.config["SECRET_KEY"] = key_file.read_text().strip()


def _check_production(app: Flask) -> None:
    """Refuse to start production with one clear line naming what is missing."""
    if app.config["ENV_NAME"] != "production":
        return
    problems = []
    key = app.config.get("SECRET_KEY") or ""
    if len(key) < 32:
        problems.append("SECRET_KEY is missing or shorter than 32 characters")
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        problems.append("DATABASE_URL is not set")
    if not app.config.get("MAIL_SERVER"):
        problems.append("MAIL_SERVER is not set")
    problems.extend(config_module.mail_transport_problems(app.config))
    if app.config.get("DEBUG"):
        problems.append("DEBUG must be off")
    if problems:
        raise SystemExit("coeo portal will not start in production: " + "; ".join(problems))


logging.getLogger("portal").addHandler(logging.NullHandler())
