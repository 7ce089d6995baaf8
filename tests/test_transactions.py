"""write_transaction: commits or rolls back as one, and `durable=False` relaxes only its own
commit (SQLite synchronous=NORMAL, PostgreSQL synchronous_commit=off)."""

import pytest
from sqlalchemy import func, select, text

from portal.audit import record
from portal.audit.models import AuditEvent
from portal.db.transactions import write_transaction


def _events(db) -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent))


def _commit_setting(db) -> str:
    if db.engine.dialect.name == "sqlite":
        return {0: "off", 1: "normal", 2: "full", 3: "extra"}[
            db.session.execute(text("PRAGMA synchronous")).scalar()]
    return db.session.execute(text("SHOW synchronous_commit")).scalar()


def test_the_block_commits_once_at_the_end(app, db):
    before = _events(db)
    with write_transaction():
        record("test.written")
    db.session.rollback()  # nothing pending: the block committed
    assert _events(db) == before + 1


def test_an_error_rolls_the_whole_block_back(app, db):
    before = _events(db)
    with pytest.raises(RuntimeError), write_transaction():
        record("test.written")
        raise RuntimeError("refused")
    assert _events(db) == before


def test_durable_is_the_default_and_non_durable_lasts_one_transaction(app, db):
    strict = "full" if db.engine.dialect.name == "sqlite" else "on"
    with write_transaction():
        assert _commit_setting(db) == strict
    with write_transaction(durable=False):
        assert _commit_setting(db) in ("normal", "off")
        record("test.viewed")
    assert _commit_setting(db) == strict  # the next transaction waits for the disk again
    db.session.rollback()


def test_what_the_read_loaded_stays_loaded(app, db):
    record("test.loaded")
    db.session.commit()
    event = db.session.scalars(select(AuditEvent)).first()
    with write_transaction(durable=False):
        assert "action" in event.__dict__  # not expired: no refresh query under the lock
