"""How transactions begin and commit on SQLite and PostgreSQL.

SQLite allows one writer at a time. A deferred transaction that reads and then writes fails
with SQLITE_BUSY_SNAPSHOT when another process wrote in between, so every transaction starts
with BEGIN IMMEDIATE (take the write lock up front, queueing behind other writers on
`portal.db.sqlite_writers`' file lock) except:

- GET and HEAD requests to views marked `@read_only` (`portal.pages`) run deferred, so
  pages that only read never wait for the write lock;
- a read-mostly page ends its reads and writes in `write_transaction()`, a short
  transaction of its own that takes the lock up front.

`write_transaction(durable=False)` is for writes that only record that something was read
(a participant's page view, read receipts, the session's last-seen time). They commit
without waiting for the disk: SQLite's `synchronous=NORMAL` in WAL mode, PostgreSQL's
`synchronous_commit = off`. A crash of the application or a worker loses nothing; a power
cut or kernel crash can drop the last such commits, never a later durable one and never
half of one (both logs replay in order, so the audit chain stays whole). Messages,
estimates and every other change stay durable.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from flask import Flask, has_request_context, request
from sqlalchemy import event, text

from portal import pages
from portal.db import db
from portal.db.sqlite_writers import QueuedWriterConnection

# None outside write_transaction(); inside it, whether its commit must reach the disk.
_writing: ContextVar[bool | None] = ContextVar("portal_writing", default=None)


@contextmanager
def write_transaction(*, durable: bool = True) -> Iterator[None]:
    """End the current (read) transaction, run the block in a new one and commit it.

    On SQLite the new transaction takes the write lock at once. On error it rolls back and
    the exception propagates. Neither commit expires what the session holds, so a page needs
    no refresh queries afterwards: the block must reload, under the lock, whatever its
    decisions depend on (e.g. `with_for_update`), and rows it changes outside the ORM keep
    their old values in memory. `durable=False`: see the module docstring.
    """
    session = db.session()
    expire = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
        token = _writing.set(durable)
        try:
            if not durable and session.get_bind().dialect.name == "postgresql":
                session.execute(text("SET LOCAL synchronous_commit = off"))
            yield
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            _writing.reset(token)
    finally:
        session.expire_on_commit = expire


def configure(app: Flask) -> None:
    """Make SQLite connections queue their writers (see `portal.db.sqlite_writers`); call
    before the engine is built."""
    if not str(app.config.get("SQLALCHEMY_DATABASE_URI") or "").startswith("sqlite"):
        return
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    options["connect_args"] = {**options.get("connect_args", {}),
                               "factory": QueuedWriterConnection}
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def install(app: Flask) -> None:
    """Choose BEGIN or BEGIN IMMEDIATE, and the commit's durability, for each SQLite transaction."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection, connection_record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's begin event issues BEGIN

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        durable = _writing.get()
        synchronous = "NORMAL" if durable is False else "FULL"
        if conn.info.get("synchronous") != synchronous:  # must be set outside a transaction
            conn.exec_driver_sql(f"PRAGMA synchronous={synchronous}")
            conn.info["synchronous"] = synchronous
        if durable is None and _read_only_request():
            conn.exec_driver_sql("BEGIN")
            return
        dbapi_connection = conn.connection.dbapi_connection
        wait_to_write = getattr(dbapi_connection, "wait_to_write", None)
        if wait_to_write is not None:
            wait_to_write()
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if wait_to_write is not None:
                dbapi_connection.done_writing()
            raise


def _read_only_request() -> bool:
    """Say whether this request's transactions only read (GETs to pages marked `read_only`,
    POSTs to pages marked `search_post`)."""
    if not has_request_context():
        return False
    if request.method in ("GET", "HEAD"):
        return pages.endpoint_has(request.endpoint, pages.READ_ONLY)
    return request.method == "POST" and pages.endpoint_has(request.endpoint, pages.SEARCH_POST)
