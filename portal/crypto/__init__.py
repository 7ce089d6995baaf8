"""Encryption at rest: master keys, per-client data keys, sealed fields, rotation.

Features call `seal` / `open_text` / `open_bytes` with a `Context` naming table, column and
row id; templates use `open_text_safe`. Anything that will not open is a `DecryptionError`.
"""

from flask import Flask
from sqlalchemy import inspect, literal, select
from sqlalchemy import table as sql_table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import configure_mappers

from portal.crypto.blind_index import email_index, normalize_email
from portal.crypto.canary import check_canaries, ensure_canaries
from portal.crypto.envelope import forget_keys, preload_keys
from portal.crypto.errors import DecryptionError, KeyConfigError
from portal.crypto.fields import context_for, sealed_column
from portal.crypto.keyring import CryptoState, KeyProvider, LocalKeyProvider, build_state
from portal.crypto.models import DataKey, KeyCanary
from portal.crypto.registry import SealedField, register_sealed, sealed_fields, unregister_sealed
from portal.crypto.sealing import (
    UNREADABLE,
    Context,
    blob_key_id,
    open_bytes,
    open_text,
    open_text_or_none,
    open_text_safe,
    seal,
)
from portal.extensions import db
from portal.hooks import decrypt_failure as on_decrypt_failure
from portal.hooks import key_event as on_key_event

__all__ = [
    "UNREADABLE",
    "Context",
    "CryptoState",
    "DataKey",
    "DecryptionError",
    "KeyCanary",
    "KeyConfigError",
    "KeyProvider",
    "LocalKeyProvider",
    "SealedField",
    "blob_key_id",
    "check_canaries",
    "context_for",
    "email_index",
    "ensure_canaries",
    "forget_keys",
    "init_app",
    "normalize_email",
    "on_decrypt_failure",
    "on_key_event",
    "open_bytes",
    "open_text",
    "open_text_or_none",
    "open_text_safe",
    "preload_keys",
    "register_sealed",
    "seal",
    "sealed_column",
    "sealed_fields",
    "unregister_sealed",
]


def init_app(app: Flask) -> None:
    """Load the keys into `app.extensions["portal_crypto"]` and check them against the database.

    A key problem stops the app with one line (SystemExit), never a traceback. The check runs
    only once the key_canaries table exists (before migrations there is nothing to check) and
    not at all when PORTAL_SKIP_KEY_CHECK is set.
    """
    configure_mappers()  # registers every declared sealed column (portal.crypto.fields)
    try:
        app.extensions["portal_crypto"] = build_state(
            app.config, app.instance_path, holds_data=lambda kind: _holds_data(app, kind))
    except KeyConfigError as exc:
        with app.app_context():
            db.engine.dispose()  # _holds_data may have opened a connection
        raise SystemExit(str(exc)) from None


def check_at_startup(app: Flask) -> None:
    """Check the keys against the database (the factory calls it once every feature has
    plugged in, since creating a canary may ask a feature to void older values)."""
    if not app.config.get("PORTAL_SKIP_KEY_CHECK"):
        _startup_check(app)


def _holds_data(app: Flask, kind: str) -> bool:
    """Whether the database holds data under a key of `kind` ("master": data keys, "index":
    users), asked only before a development key file would be created."""
    table = "data_keys" if kind == "master" else "users"
    with app.app_context():
        try:
            if not inspect(db.engine).has_table(table):
                return False
            return db.session.execute(
                select(literal(1)).select_from(sql_table(table)).limit(1)).first() is not None
        except SQLAlchemyError:
            return False  # unreachable: the start-up check says so in its own line
        finally:
            db.session.remove()


def _startup_check(app: Flask) -> None:
    with app.app_context():
        problem = None
        try:
            if not inspect(db.engine).has_table(KeyCanary.__tablename__):
                return
            check_canaries()
            ensure_canaries()
        except KeyConfigError as exc:
            problem = str(exc)
        except SQLAlchemyError as exc:
            problem = ("coeo portal: could not check the master keys against the database "
                       f"({type(exc).__name__})")
        finally:
            db.session.remove()
        if problem:
            db.engine.dispose()  # the app will not be used: close its connections now
            raise SystemExit(problem)
