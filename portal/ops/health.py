"""Readiness checks, each answering ok plus a short reason without secrets or PHI."""

from pathlib import Path

from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from portal.crypto import KeyConfigError, check_canaries
from portal.extensions import db

MIGRATIONS = Path(__file__).resolve().parent.parent.parent / "migrations"


def _head_revisions() -> set[str]:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return set(ScriptDirectory.from_config(config).get_heads())


def check_database() -> dict:
    try:
        db.session.execute(text("SELECT 1"))
        return {"ok": True}
    except SQLAlchemyError as exc:
        db.session.rollback()
        return {"ok": False, "reason": f"database unreachable ({type(exc).__name__})"}


def check_migrations() -> dict:
    try:
        rows = db.session.execute(text("SELECT version_num FROM alembic_version")).scalars()
        current = set(rows)
    except SQLAlchemyError:
        db.session.rollback()
        return {"ok": False, "reason": "no migrations applied"}
    heads = _head_revisions()
    if current != heads:
        return {"ok": False, "reason": "database is not at the latest migration"}
    return {"ok": True}


def check_keys() -> dict:
    try:
        check_canaries()
        return {"ok": True}
    except KeyConfigError:
        # Which key is wrong is in the start-up line and the logs, not on a public endpoint.
        return {"ok": False, "reason": "a configured key does not match this database"}
    except SQLAlchemyError as exc:
        db.session.rollback()
        return {"ok": False, "reason": f"could not read the key canary ({type(exc).__name__})"}


def readiness() -> dict[str, dict]:
    database = check_database()
    if not database["ok"]:
        skipped = {"ok": False, "reason": "skipped: database unreachable"}
        return {"database": database, "migrations": skipped, "keys": skipped}
    result = {"database": database, "migrations": check_migrations(), "keys": check_keys()}
    db.session.rollback()
    return result
