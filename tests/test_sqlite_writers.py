"""SQLite writers queue on a file lock, taken before BEGIN IMMEDIATE and released only once
COMMIT or ROLLBACK has returned."""

import sqlite3
import threading
import time

import pytest
from sqlalchemy import text

from portal.db.sqlite_writers import QueuedWriterConnection, lock_path
from portal.db.transactions import write_transaction


def _connect(path) -> QueuedWriterConnection:
    connection = sqlite3.connect(path, factory=QueuedWriterConnection, isolation_level=None,
                                 check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    return connection


@pytest.fixture()
def database(tmp_path):
    path = tmp_path / "queue.db"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE t (n INTEGER)")
    return path


def _begin(connection: QueuedWriterConnection, timeout: float = 5.0) -> None:
    connection.wait_to_write(timeout)
    connection.execute("BEGIN IMMEDIATE")


def test_a_second_writer_waits_then_gives_up_with_database_is_locked(database):
    first, second = _connect(database), _connect(database)
    _begin(first)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        second.wait_to_write(timeout=0.05)
    assert 0.05 <= time.monotonic() - started < 1.0
    first.rollback()
    second.close()
    first.close()


@pytest.mark.parametrize("finish", ["commit", "rollback", "close"])
def test_the_lock_is_released_when_the_transaction_ends(database, finish):
    first, second = _connect(database), _connect(database)
    _begin(first)
    first.execute("INSERT INTO t VALUES (1)")
    getattr(first, finish)()
    second.wait_to_write(timeout=0)  # free at once, without sleeping
    second.execute("BEGIN IMMEDIATE")
    second.rollback()
    second.close()
    if finish != "close":
        first.close()


def test_a_waiting_writer_starts_soon_after_the_lock_is_freed(database):
    first, second = _connect(database), _connect(database)
    _begin(first)
    released, started = [], []

    def write() -> None:
        _begin(second)
        started.append(time.monotonic())
        second.execute("INSERT INTO t VALUES (2)")
        second.commit()

    worker = threading.Thread(target=write)
    worker.start()
    time.sleep(0.15)  # SQLite's own busy handler would be sleeping 25 ms at a time by now
    assert not started
    first.execute("INSERT INTO t VALUES (1)")
    first.commit()
    released.append(time.monotonic())
    worker.join(5)
    assert started and started[0] - released[0] < 0.05  # it polls every 0.5 ms at most
    assert [n for (n,) in first.execute("SELECT n FROM t ORDER BY n")] == [1, 2]
    first.close()
    second.close()


def test_threads_of_one_process_queue_like_processes(database):
    connections = [_connect(database) for _ in range(4)]
    inside, most = [0], [0]
    guard = threading.Lock()

    def write(connection) -> None:
        for _ in range(20):
            _begin(connection)
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            connection.execute("INSERT INTO t VALUES (1)")
            with guard:
                inside[0] -= 1
            connection.commit()

    workers = [threading.Thread(target=write, args=(c,)) for c in connections]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert most[0] == 1
    assert connections[0].execute("SELECT count(*) FROM t").fetchone()[0] == 80
    for connection in connections:
        connection.close()


def test_in_memory_and_uri_databases_have_no_lock_file(tmp_path):
    assert lock_path(":memory:") is None
    assert lock_path("") is None
    assert lock_path("file:x.db?mode=ro", uri=True) is None
    assert lock_path(tmp_path / "a.db") == str(tmp_path / "a.db") + "-writer.lock"
    memory = sqlite3.connect(":memory:", factory=QueuedWriterConnection)
    memory.wait_to_write()  # nothing to take
    memory.close()


def test_the_app_takes_the_lock_for_each_write_transaction(app, db):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("the writer lock is SQLite's; PostgreSQL has row locks")
    database = db.engine.url.database
    other = _connect(database)
    with write_transaction():
        db.session.execute(text("SELECT 1"))
        dbapi_connection = db.session.connection().connection.dbapi_connection
        assert isinstance(dbapi_connection, QueuedWriterConnection)
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            other.wait_to_write(timeout=0.02)
    other.wait_to_write(timeout=0)  # committed: released
    other.done_writing()
    other.close()
