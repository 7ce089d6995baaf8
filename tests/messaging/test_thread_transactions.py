"""A thread page reads without SQLite's write lock, then records the view in a short write
transaction of its own; the page is only shown once the view is on the audit trail."""

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from portal.audit.models import AuditEvent
from portal.messaging import lists, reading, sending
from tests.messaging.conftest import StatementCounter


@pytest.fixture
def thread_id(db, people):
    thread, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                     subject="Sleep", body="A private sentence.", notify=False)
    sending.reply(people.therapist_x, thread.id, body="Thank you for writing.", notify=False)
    return thread.id


def _transactions(statements: list[str]) -> list[list[str]]:
    """Split statements into transactions, each starting with its BEGIN."""
    found: list[list[str]] = []
    for statement in statements:
        if statement.startswith("BEGIN"):
            found.append([])
        if found:
            found[-1].append(" ".join(statement.split()))
    return found


def test_the_page_reads_deferred_and_writes_only_under_a_short_lock(app, db, people,
                                                                     thread_id, login):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("BEGIN IMMEDIATE is SQLite's; PostgreSQL locks rows, not the database")
    client = login(people.client_a)
    client.get(f"/messages/{thread_id}")
    with StatementCounter(db.engine) as counter:
        response = client.get(f"/messages/{thread_id}")
    assert response.status_code == 200
    transactions = _transactions(counter.statements)
    reads = [t for t in transactions if any("FROM messages" in s for s in t)]
    writes = [t for t in transactions if t[0] == "BEGIN IMMEDIATE"]
    assert len(reads) == 1 and reads[0][0] == "BEGIN"  # decrypting holds no write lock
    assert len(writes) == 1  # one short transaction: the audit row (and read receipts)
    assert any(s.startswith("INSERT INTO audit_events") for s in writes[0])
    assert not any("FROM messages" in s for s in writes[0])
    assert transactions.index(reads[0]) < transactions.index(writes[0])


def test_reading_marks_the_other_sides_messages_read_in_the_write(app, db, people,
                                                                   thread_id, login):
    client = login(people.client_a)
    assert lists.unread_count(people.client_a) == 1
    html = client.get(f"/messages/{thread_id}").get_data(as_text=True)
    assert "Thank you for writing." in html
    db.session.expire_all()
    assert lists.unread_count(people.client_a) == 0


def test_no_audit_row_means_no_page(app, db, people, thread_id, login, monkeypatch):
    client = login(people.client_a)
    before = db.session.scalar(select(func.count()).select_from(AuditEvent))

    def failing_record(*args, **kwargs):
        raise OperationalError("INSERT INTO audit_events", {}, Exception("disk I/O error"))

    monkeypatch.setattr(reading, "record", failing_record)
    response = client.get(f"/messages/{thread_id}")
    html = response.get_data(as_text=True)
    assert response.status_code >= 500
    assert "Thank you for writing." not in html and "A private sentence." not in html
    assert "Traceback" not in html
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == before
    assert lists.unread_count(people.client_a) == 1  # the read receipt rolled back too


def test_writes_on_a_read_only_page_take_the_lock_up_front(app, db, people, thread_id, login,
                                                             monkeypatch):
    """A deferred transaction whose first statement writes fails at once with "database is
    locked" (SQLITE_BUSY_SNAPSHOT) if another worker wrote since it began: the session touch
    on a read-only page must start BEGIN IMMEDIATE, which waits its turn instead."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("BEGIN IMMEDIATE is SQLite's; PostgreSQL locks rows, not the database")
    from datetime import timedelta

    from portal.accounts import sessions

    client = login(people.client_a)
    monkeypatch.setattr(sessions, "TOUCH_EVERY", timedelta(0))
    for path in (f"/messages/{thread_id}", "/messages", "/account/access-log"):
        with StatementCounter(db.engine) as counter:
            assert client.get(path).status_code == 200
        for transaction in _transactions(counter.statements):
            writes = [s for s in transaction if s.split()[0] in ("INSERT", "UPDATE", "DELETE")]
            assert not writes or transaction[0] == "BEGIN IMMEDIATE", (path, transaction)


def test_an_emergency_view_waits_for_the_disk_and_a_participants_view_does_not(
        app, db, people, thread_id, login):
    """A client's or therapist's view only records a read; a view under emergency access
    is a high-severity event the client is shown, committed like any other change."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("checks SQLite's synchronous setting; PostgreSQL is covered in "
                    "tests/test_transactions.py")
    from portal.messaging import emergency

    emergency.grant(people.admin, client_id=people.client_a.id,
                    reason="Her sister called: not heard from since Friday, therapist away")
    views = {}
    for who in ("client_a", "admin"):
        client = login(getattr(people, who))
        client.get(f"/messages/{thread_id}")
        with StatementCounter(db.engine) as counter:
            assert client.get(f"/messages/{thread_id}").status_code == 200
        audit_writes = [t for t in _transactions(counter.statements)
                        if any(s.startswith("INSERT INTO audit_events") for s in t)]
        assert len(audit_writes) == 1
        before = counter.statements[:counter.statements.index(audit_writes[0][0])]
        settings = [s for s in before if s.startswith("PRAGMA synchronous")]
        views[who] = settings[-1] if settings else "PRAGMA synchronous=FULL"
    assert views == {"client_a": "PRAGMA synchronous=NORMAL",
                     "admin": "PRAGMA synchronous=FULL"}


def test_a_message_that_arrives_while_the_page_is_read_stays_unread(app, db, people,
                                                                    thread_id, login,
                                                                    monkeypatch):
    """Reading and recording the read are two transactions now: a reply landing between
    them was not on screen, so it must not be marked read or lose its notice count."""
    from portal.accounts.models import User
    from portal.messaging.models import Message

    client = login(people.client_a)
    therapist_id = people.therapist_x.id
    build_page = reading._thread_page

    def page_then_a_reply(*args, **kwargs):
        page = build_page(*args, **kwargs)
        sending.reply(db.session.get(User, therapist_id), thread_id, body="Arrived just now.",
                      notify=False)
        return page

    monkeypatch.setattr(reading, "_thread_page", page_then_a_reply)
    html = client.get(f"/messages/{thread_id}").get_data(as_text=True)
    assert "Thank you for writing." in html and "Arrived just now." not in html
    db.session.expire_all()
    read = [m.read_at is not None for m in db.session.scalars(
        select(Message).where(Message.thread_id == thread_id,
                              Message.sender_id == therapist_id)
        .order_by(Message.created_at))]
    assert read == [True, False]  # the one on screen, and the one that arrived after
    assert lists.unread_count(people.client_a) == 1
