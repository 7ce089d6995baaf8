"""No plaintext at rest: subjects, bodies, file names, file bytes and reasons are all sealed."""

import os
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from portal.messaging import access, emergency, reading, sending
from portal.messaging.models import Attachment, Message, Thread

MARKER = "ZQX-marker-7731"
POSTGRES = bool(os.environ.get("TEST_DATABASE_URL"))


def _write_everything(people, db):
    db.session.commit()
    thread, _ = sending.start_thread(
        people.client_a, counterpart_id=people.therapist_x.id, subject=f"Subject {MARKER}",
        body=f"Body {MARKER}\nsecond line",
        files=[(f"name-{MARKER}.txt", f"content {MARKER}\n".encode())])
    sending.reply(people.therapist_x, thread.id, body=f"Reply {MARKER}")
    emergency.grant(people.admin, client_id=people.client_a.id,
                    reason=f"Reason {MARKER}: cannot reach the therapist today")
    return thread


@pytest.mark.skipif(POSTGRES, reason="reads the SQLite files; PostgreSQL is checked below")
def test_marker_is_not_in_the_sqlite_files(app, db, people):
    _write_everything(people, db)
    path = Path(db.engine.url.database)
    files = [path, Path(f"{path}-wal")]
    assert files[1].exists()  # WAL mode: recent pages live here until a checkpoint
    needles = [MARKER.encode(), MARKER.encode("utf-16-le"), MARKER.encode().hex().encode()]
    for file in files:
        data = file.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle!r} found in {file.name}"


def test_marker_is_in_no_row_of_any_table(app, db, people):
    _write_everything(people, db)
    with db.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()  # noqa: S608
            for row in rows:
                for value in row:
                    raw = bytes(value) if isinstance(value, bytes | memoryview) else (
                        str(value).encode())
                    assert MARKER.encode() not in raw, table
                    assert MARKER.encode().hex().encode() not in raw, table


def test_the_app_still_reads_it_all(app, db, people):
    thread = _write_everything(people, db)
    page = reading.view_thread(people.client_a,
                               access.thread_access(people.client_a, thread.id))
    assert page.subject == f"Subject {MARKER}"
    assert [m.body for m in page.messages] == [f"Body {MARKER}\nsecond line",
                                               f"Reply {MARKER}"]
    attachment = db.session.scalars(select(Attachment)).one()
    found = reading.download(people.client_a, attachment.id)
    assert found.name == f"name-{MARKER}.txt"
    assert found.data == f"content {MARKER}\n".encode()


def test_rotation_finds_every_sealed_messaging_column(app, db, people):
    from portal.crypto import sealed_fields
    from portal.crypto.rotation import count_sealed_values, reencrypt

    labels = {f.label for f in sealed_fields()}
    assert {"message_threads.subject", "messages.body", "message_attachments.name",
            "message_attachments.content", "emergency_access_grants.reason"} <= labels
    thread = _write_everything(people, db)
    before = count_sealed_values(people.client_a.id)
    # subject, two bodies, a name, a file, a reason, plus the client's own name and email
    assert before >= 6
    reencrypt(people.client_a.id)
    db.session.commit()
    from portal.crypto import forget_keys
    forget_keys()
    page = reading.view_thread(people.client_a,
                               access.thread_access(people.client_a, thread.id))
    assert page.subject == f"Subject {MARKER}"
    assert all(MARKER in m.body for m in page.messages)
    assert db.session.scalar(select(Thread.id)) == thread.id
    assert len(db.session.scalars(select(Message)).all()) == 2
