"""What every new database connection is told before it is used."""

import contextlib
import os
import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from portal.db.sqlite_writers import BUSY_SECONDS, lock_path


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """Turn on foreign keys and WAL for SQLite, which ignores foreign keys otherwise, and
    secure_delete, so what a purge deletes (old sessions, sent mail, a purged record) is
    overwritten with zeros instead of lingering in free pages for a copy of the file to show."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        _private_if_new(cursor)  # before WAL: the -wal and -shm files take the file's mode
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
        cursor.close()


PRIVATE = 0o600  # the database holds sealed data and its metadata: its owner reads it, nobody else


def _private_if_new(cursor: sqlite3.Cursor) -> None:
    """Make a database file this connection has just created readable by its owner only.

    SQLite creates the file with the process's umask (often 0644) and then its -wal and -shm
    files with the file's own mode, so the mode is set while the file is still empty, before
    any of them exist. A file that already holds data keeps its mode here (development
    tightens those at start-up: `make_private`).
    """
    row = cursor.execute("PRAGMA database_list").fetchone()
    path = row[2] if row else ""
    if not path:
        return  # in memory, or a temporary database
    with contextlib.suppress(OSError):
        if os.stat(path).st_size == 0:
            os.chmod(path, PRIVATE)


def sqlite_file(uri: str | None, instance_path: str) -> str | None:
    """The file a SQLite URI names (relative: under the instance folder, as Flask-SQLAlchemy
    reads it); None for another database, in memory, or a `file:` URI."""
    if not uri:
        return None
    url = make_url(uri)
    name = url.database or ""
    if url.get_backend_name() != "sqlite" or name in ("", ":memory:") or name.startswith("file:"):
        return None
    return name if os.path.isabs(name) else os.path.join(instance_path, name)


def make_private(database: str) -> None:
    """Create the database file owner-only if it is missing, and make it, its -wal, -shm and
    -journal files and the writer lock owner-only if they exist (whatever the umask)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE))
    for path in (database, database + "-wal", database + "-shm", database + "-journal",
                 lock_path(database) or ""):
        # Someone else's file stays as it is: SQLite will say plainly if it cannot open it.
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.chmod(path, PRIVATE)


def scrub_deleted(engine: Engine) -> bool:
    """After a purge on SQLite: copy the WAL into the database file and empty it, so what was
    just deleted (zeroed by secure_delete) leaves no older page image behind, in the file or
    in the WAL, for a copy of them to show. Best effort (True when the WAL was emptied): a
    reader still open in another process keeps the frames it needs, and the next scrub gets
    them. PostgreSQL keeps dead rows until VACUUM; nothing to do here."""
    if engine.dialect.name != "sqlite":
        return True
    raw = engine.raw_connection()
    try:  # on the driver's connection, outside any transaction (a checkpoint cannot run in one)
        busy, _, _ = raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.OperationalError:
        return False
    finally:
        raw.close()
    return busy == 0
