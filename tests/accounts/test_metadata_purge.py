"""The deliver-mail loop purges sessions and sign-in attempts older than
METADATA_RETENTION_DAYS (issue 17), in batches, once each when several loops run it."""

import threading
from datetime import date, timedelta

from sqlalchemy import func, select

from portal import hooks
from portal.accounts import housekeeping, sessions
from portal.accounts.models import SignInAttempt, UserSession
from portal.db import new_id, utcnow
from portal.extensions import db
from portal.mail.cli import run_worker_tasks
from tests.support.clock import freeze

from .support import make_user

DAY = date(2026, 9, 14)


def _session(person, *, last_seen) -> UserSession:
    row = UserSession(id=new_id(), token_hash=new_id().bytes * 2, user_id=person.id,
                      created_at=last_seen, last_seen_at=last_seen)
    row.ip_sealed = sessions.seal_optional(person.id, UserSession.ip_sealed, row.id,
                                           "192.0.2.8")
    db.session.add(row)
    return row


def _attempt(person, *, at) -> SignInAttempt:
    row = SignInAttempt(id=new_id(), user_id=person.id, at=at, outcome="failure")
    row.ip_sealed = sessions.seal_optional(person.id, SignInAttempt.ip_sealed, row.id,
                                           "192.0.2.8")
    db.session.add(row)
    return row


def _left(model) -> set:
    db.session.expire_all()
    found = set(db.session.scalars(select(model.id)))
    db.session.commit()
    return found


def test_rows_older_than_the_period_go_and_younger_ones_stay(app, monkeypatch):
    clock = freeze(monkeypatch, DAY)
    now = clock.now
    person = make_user()
    old_session_id = _session(person, last_seen=now - timedelta(days=90, minutes=1)).id
    kept_session = _session(person, last_seen=now - timedelta(days=89, hours=23))
    # A session that began long ago but was active lately is kept (its last activity counts).
    active = _session(person, last_seen=now - timedelta(days=2))
    active.created_at = now - timedelta(days=200)
    old_attempts = [_attempt(person, at=now - timedelta(days=91 + n)).id for n in range(7)]
    kept_attempt = _attempt(person, at=now - timedelta(days=89))
    db.session.commit()
    kept_session_id, active_id, kept_attempt_id = kept_session.id, active.id, kept_attempt.id
    assert housekeeping.purge_old(now=now, batch=3) == 1 + 7
    assert _left(UserSession) == {kept_session_id, active_id}
    assert _left(SignInAttempt) == {kept_attempt_id}
    assert old_session_id not in _left(UserSession)
    assert set(old_attempts) & _left(SignInAttempt) == set()
    # Nothing left to do: a second round (or another loop) deletes nothing.
    assert housekeeping.purge_old(now=now) == 0
    # Ninety days on, the rest are old too.
    assert housekeeping.purge_old(now=now + timedelta(days=90)) == 3
    assert _left(UserSession) == set() and _left(SignInAttempt) == set()


def test_the_period_is_a_setting(app, monkeypatch):
    now = freeze(monkeypatch, DAY).now
    person = make_user()
    _attempt(person, at=now - timedelta(days=31))
    _attempt(person, at=now - timedelta(days=29))
    db.session.commit()
    assert app.config["METADATA_RETENTION_DAYS"] == 90
    assert housekeeping.purge_old(now=now) == 0
    app.config["METADATA_RETENTION_DAYS"] = 30
    assert housekeeping.purge_old(now=now) == 1
    assert len(_left(SignInAttempt)) == 1


def test_several_loops_at_once_delete_each_row_once(app, monkeypatch):
    now = freeze(monkeypatch, DAY).now
    people = [make_user() for _ in range(3)]
    for person in people:
        for n in range(20):
            _attempt(person, at=now - timedelta(days=100 + n))
            _session(person, last_seen=now - timedelta(days=95, minutes=n))
        _attempt(person, at=now)
    db.session.commit()
    counts: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def loop() -> None:
        try:
            with app.app_context():
                start.wait()
                counts.append(housekeeping.purge_old(now=now, batch=7))
                db.session.remove()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=loop) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(counts) == 3 * 20 * 2  # every old row, each counted by the loop that took it
    assert db.session.scalar(select(func.count()).select_from(UserSession)) == 0
    assert db.session.scalar(select(func.count()).select_from(SignInAttempt)) == 3


def test_the_deliver_mail_loop_runs_the_purge(app, monkeypatch):
    assert "sign-in metadata purge" in {task.name for task in hooks.worker_tasks}
    person = make_user()
    _attempt(person, at=utcnow() - timedelta(days=91))  # the loop runs on the real clock
    db.session.commit()
    monkeypatch.setattr(housekeeping, "_last_run", {})
    done = run_worker_tasks()
    assert done["sign-in metadata purge"] == 1
    assert _left(SignInAttempt) == set()
    # At most every EVERY_SECONDS per process: the next round does not scan again.
    _attempt(person, at=utcnow() - timedelta(days=91))
    db.session.commit()
    assert run_worker_tasks()["sign-in metadata purge"] == 0
    assert len(_left(SignInAttempt)) == 1
