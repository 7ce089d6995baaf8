"""PostgreSQL databases beside the one TEST_DATABASE_URL names, on the same server."""

import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def sibling_database_url(url: str, label: str, *, unique: bool = True) -> str:
    """A new database name beside the one at `url`, on the same server (not created)."""
    base = make_url(url)
    name = f"{base.database}_{label}" + (f"_{uuid.uuid4().hex[:8]}" if unique else "")
    return base.set(database=name).render_as_string(hide_password=False)


def admin_sql(url: str, statement: str) -> None:
    """Run one statement on the server's `postgres` database (outside any transaction)."""
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(statement))
    finally:
        admin.dispose()


def create_database(url: str) -> None:
    """Create the (empty) database named in `url`, replacing one left by an earlier run."""
    drop_database(url)
    admin_sql(url, f'CREATE DATABASE "{make_url(url).database}"')


def drop_database(url: str) -> None:
    """Drop the PostgreSQL database named in `url`, if it exists."""
    admin_sql(url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
