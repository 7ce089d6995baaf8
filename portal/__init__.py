"""coeo portal: the application factory."""

import logging
import os
import secrets
import sqlite3
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

import config as config_module
from portal import transactions
from portal.extensions import csrf, db, limiter, login_manager, migrate
from portal.sqlite_writers import BUSY_SECONDS

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

    from portal import crypto
    crypto.init_app(app)

    from portal import mail
    mail.init_app(app)

    from portal.ops import logs
    logs.init_app(app)

    from portal import security
    security.init_app(app)

    from portal import errors
    errors.init_app(app)

    from portal import templating
    templating.init_app(app)

    _register_blueprints(app)

    from portal.cli import portal_cli
    app.cli.add_command(portal_cli)

    if app.config.get("PROXY_FIX_HOPS"):
        from werkzeug.middleware.proxy_fix import ProxyFix
        hops = app.config["PROXY_FIX_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    return app


def _register_blueprints(app: Flask) -> None:
    from portal.accounts.views import bp as accounts_bp
    from portal.admin.views import bp as admin_bp
    from portal.main.views import bp as main_bp
    from portal.ops.views import bp as ops_bp

    for bp in (main_bp, accounts_bp, admin_bp, ops_bp):
        app.register_blueprint(bp)
    for name in ("messaging", "estimates", "policies"):
        try:
            module = __import__(f"portal.{name}.views", fromlist=["bp"])
        except ModuleNotFoundError as exc:
            if exc.name != f"portal.{name}.views":
                raise
            continue
        app.register_blueprint(module.bp)


def _prepare_development(app: Flask) -> None:
    """Give `make run` a SQLite database and a secret key under instance/ without set-up."""
    if app.config["ENV_NAME"] != "development":
        return
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'portal.db'}"
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
    if app.config.get("DEBUG"):
        problems.append("DEBUG must be off")
    if problems:
        raise SystemExit("coeo portal will not start in production: " + "; ".join(problems))


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """Turn on foreign keys and WAL for SQLite, which ignores foreign keys otherwise."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
        cursor.close()


logging.getLogger("portal").addHandler(logging.NullHandler())
