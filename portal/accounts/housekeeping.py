"""The accounts feature's timer in the deliver-mail loop: old sign-in metadata goes.

Sessions last active, and sign-in attempts made, more than METADATA_RETENTION_DAYS ago (90 by
default) are deleted with their sealed IP addresses and user agents. (A session ends long
before that, after SESSION_ABSOLUTE_HOURS; its row stays only until this purge, or until its
cookie comes back.) Sent mail is deleted each round once it is delivered (mail.purge_delivered).

Batches of BATCH rows, one short transaction each, so the SQLite write lock and PostgreSQL's
row locks are held briefly. Safe when several loops run at once: each batch is one
`DELETE ... WHERE id IN (SELECT id ... WHERE <old> LIMIT n)`, so a row goes once, whichever
loop gets it, and one loop's deletes never count another's (rowcount is what this statement
deleted). The outer statement does not test the age again: an attempt's time never changes,
and a session idle that long cannot be touched (it ended after SESSION_ABSOLUTE_HOURS); with
the test there, SQLite walked every old row through the time index on each batch (10 s for
49,000 old rows of 100,000 instead of well under a second).
"""

import time
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select

from portal.accounts.models import SignInAttempt, UserSession
from portal.db import utcnow
from portal.db.connections import scrub_deleted
from portal.extensions import db

BATCH = 200  # about 30 ms of SQLite write lock per batch on a 100,000-row table
# The purge runs at most this often per process (the loop's rounds are 30 s apart).
EVERY_SECONDS = 600.0
_last_run: dict[str, float] = {}


def cutoff(now: datetime | None = None) -> datetime:
    """Rows older than this are purged."""
    return (now or utcnow()) - timedelta(days=int(current_app.config["METADATA_RETENTION_DAYS"]))


def purge_old(now: datetime | None = None, *, batch: int = BATCH) -> int:
    """Delete sessions and sign-in attempts older than the retention period; returns how many
    (owns its transactions; `now` for a frozen clock)."""
    before = cutoff(now)
    purged = (_purge(UserSession, UserSession.last_seen_at, before, batch)
              + _purge(SignInAttempt, SignInAttempt.at, before, batch))
    if purged:
        scrub_deleted(db.engine)  # no older copy of the rows left in SQLite's WAL or file
    return purged


def _purge(model, when, before: datetime, batch: int) -> int:
    total = 0
    while True:
        some = select(model.id).where(when < before).limit(batch).scalar_subquery()
        try:
            count = db.session.execute(
                delete(model).where(model.id.in_(some))
                .execution_options(synchronize_session=False)).rowcount or 0
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        total += count
        if count < batch:
            return total


def scheduled() -> int:
    """The deliver-mail loop's entry: `purge_old` at most every EVERY_SECONDS per process."""
    now = time.monotonic()
    last = _last_run.get("purge")
    if last is not None and now - last < EVERY_SECONDS:
        return 0
    _last_run["purge"] = now
    return purge_old()
