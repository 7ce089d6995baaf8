"""Migrations go up to head and down to base, and the models match head exactly."""

import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from portal import create_app
from portal.extensions import db

MIGRATIONS = os.path.join(os.path.dirname(__file__), "..", "..", "migrations")


@pytest.fixture
def bare_app(tmp_path):
    """An app on an empty database (no create_all), for migrations to build."""
    url = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'mig.db'}"
    app = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": url,
                      "INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        _drop_everything()
        yield app
        db.session.remove()
        _drop_everything()
        db.engine.dispose()


def _drop_everything() -> None:
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))


def _diff() -> list:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_upgrade_to_head_matches_the_models(bare_app):
    upgrade(directory=MIGRATIONS)
    tables = set(inspect(db.engine).get_table_names())
    assert set(db.metadata.tables) <= tables
    assert _diff() == []


def test_downgrade_to_base_removes_every_table(bare_app):
    upgrade(directory=MIGRATIONS)
    downgrade(directory=MIGRATIONS, revision="base")
    left = set(inspect(db.engine).get_table_names()) - {"alembic_version"}
    assert left == set()


def test_upgrade_downgrade_upgrade_is_repeatable(bare_app):
    upgrade(directory=MIGRATIONS)
    downgrade(directory=MIGRATIONS, revision="base")
    upgrade(directory=MIGRATIONS)
    assert _diff() == []


def test_migrated_audit_table_refuses_update_and_delete(bare_app):
    from sqlalchemy.exc import DBAPIError

    from portal.audit import record

    upgrade(directory=MIGRATIONS)
    record("test.event")
    db.session.commit()
    for statement in ("UPDATE audit_events SET action = 'x.y'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))


def test_a_database_with_conversations_migrates_down_and_up(bare_app):
    """SQLite rebuilds a table to alter it; rows pointing at it must not stop that (#16)."""
    from sqlalchemy import func, select

    from portal.messaging import sending
    from portal.messaging.models import Message, Thread
    from tests.messaging.conftest import assign
    from tests.support.people import make_user

    upgrade(directory=MIGRATIONS)
    with bare_app.test_request_context():
        client, therapist = make_user("client", "Pat Example"), make_user("therapist", "Dr T")
        assign(client, therapist)
        sending.start_thread(client, counterpart_id=therapist.id, subject="Hello",
                             body="A first message", notify=False)
        db.session.commit()
        db.session.remove()
    downgrade(directory=MIGRATIONS, revision="-1")  # rebuilds message_threads on SQLite
    upgrade(directory=MIGRATIONS)
    assert db.session.scalar(select(func.count()).select_from(Thread)) == 1
    assert db.session.scalar(select(func.count()).select_from(Message)) == 1
    db.session.remove()
    assert _diff() == []
    if db.engine.dialect.name == "sqlite":
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
