"""Back up, restore into a fresh database, and read every message back with the same keys.

Runs on the suite's database: SQLite (online backup API), or PostgreSQL when
TEST_DATABASE_URL is set (pg_dump, then pg_restore into a second database made for it).
"""

import contextlib
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.accounts.identity import email_of, name_of
from portal.accounts.models import User
from portal.extensions import db
from portal.messaging import sending
from portal.messaging.models import Message, Thread
from tests.messaging.conftest import PDF, PNG, assign, make_user
from tests.ops.support import build_app, read_all, second_postgres_database
from tests.ops.test_health import OTHER_KEY


def seed_conversations() -> None:
    """Two clients, two therapists, conversations with replies and attachments."""
    alex, blake = make_user("client", "Alex Rivera"), make_user("client", "Zoë Nguyễn-Ōtsuka")
    colleen, kristen = make_user("therapist", "Colleen Xu"), make_user("therapist", "Kristen Y")
    assign(alex, colleen)
    assign(blake, kristen)
    for client, therapist in ((alex, colleen), (blake, kristen)):
        for n in range(3):
            thread, _ = sending.start_thread(
                client, counterpart_id=therapist.id, subject=f"Week {n} — how it went",
                body=f"First message {n} from {uuid.uuid4()} ✓\nsecond line",
                files=[("notes è.pdf", PDF), ("drawing.png", PNG)] if n == 1 else [],
                notify=False)
            sending.reply(therapist, thread.id, body=f"Reply {n}: thank you 🌱", notify=False)
            sending.reply(client, thread.id, body="One more thing\x7f…", notify=False)


@contextlib.contextmanager
def fresh_database(app, tmp_path: Path):
    """An empty database of the suite's kind; yields its URL."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored.db'}"
    else:
        with second_postgres_database(url) as second:
            yield second


def identities() -> dict:
    return {u.id: (name_of(u), email_of(u)) for u in db.session.scalars(select(User))}


def test_backup_then_restore_into_a_fresh_database_reads_every_message_back(app, runner,
                                                                            tmp_path):
    seed_conversations()
    before, people = read_all(), identities()
    assert len(before.bodies) == 18 and len(before.attachments) == 4

    target = tmp_path / "backups" / "portal.backup"
    result = runner.invoke(args=["portal", "backup", "--to", str(target)])
    assert result.exit_code == 0, result.output
    method = "sqlite online backup API" if db.engine.dialect.name == "sqlite" else "pg_dump"
    assert method in result.output
    assert "master keys are not in this file" in result.output

    with fresh_database(app, tmp_path) as url:
        restored = build_app(url, tmp_path / "restored")
        with restored.app_context():
            try:
                out = restored.test_cli_runner().invoke(
                    args=["portal", "restore", "--from", str(target)])
                assert out.exit_code == 0, out.output
                after = read_all()
                assert after == before  # every subject, body and file, opened with the keys
                assert identities() == people
                verify = restored.test_cli_runner().invoke(args=["portal", "audit-verify"])
                assert verify.exit_code == 0 and "audit chain OK" in verify.output
            finally:
                db.session.remove()
                db.engine.dispose()

        # Keys are never in a backup: another master key cannot open the restored copy.
        with pytest.raises(SystemExit, match="does not match this database"):
            build_app(url, tmp_path / "other", PORTAL_MASTER_KEYS=f"test1:{OTHER_KEY}")


def test_restore_refuses_a_database_that_is_not_empty(app, runner, tmp_path):
    seed_conversations()
    target = tmp_path / "portal.backup"
    assert runner.invoke(args=["portal", "backup", "--to", str(target)]).exit_code == 0
    thread = db.session.scalar(select(Thread).limit(1))
    sending.reply(db.session.get(User, thread.client_id), thread.id,
                  body="written after the backup", notify=False)
    count = db.session.scalar(select(func.count()).select_from(Message))
    db.session.commit()

    result = runner.invoke(args=["portal", "restore", "--from", str(target)])
    assert result.exit_code == 1
    assert "not empty" in result.output
    db.session.remove()
    assert db.session.scalar(select(func.count()).select_from(Message)) == count
    assert "written after the backup" in read_all().bodies.values()


def test_backup_never_overwrites_a_file(app, runner, tmp_path):
    target = tmp_path / "portal.backup"
    target.write_bytes(b"an older backup")
    result = runner.invoke(args=["portal", "backup", "--to", str(target)])
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert target.read_bytes() == b"an older backup"
