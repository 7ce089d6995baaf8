"""Database triggers that refuse UPDATE and DELETE on audit_events (defence in depth).

The mapper guard stops the application; these stop anyone with a plain SQL connection who is
not the table's owner or a superuser (who can drop a trigger; the hash chain still shows the
change). Migration revisions must not import `portal`, so a revision copies these statements.
"""

from sqlalchemy import text
from sqlalchemy.engine import Connection

POSTGRESQL = (
    """
    CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
    """,
    """
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()
    """,
)

SQLITE = (
    """
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END
    """,
    """
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END
    """,
)

DROP = {
    "postgresql": ("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events",
                   "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
                   "DROP FUNCTION IF EXISTS audit_events_append_only()"),
    "sqlite": ("DROP TRIGGER IF EXISTS audit_events_no_update",
               "DROP TRIGGER IF EXISTS audit_events_no_delete"),
}


def install_triggers(connection: Connection) -> None:
    """Create the append-only triggers for this connection's database."""
    statements = POSTGRESQL if connection.dialect.name == "postgresql" else SQLITE
    for statement in statements:
        connection.execute(text(statement))


def drop_triggers(connection: Connection) -> None:
    """Remove the triggers (a downgrade)."""
    for statement in DROP.get(connection.dialect.name, ()):
        connection.execute(text(statement))
