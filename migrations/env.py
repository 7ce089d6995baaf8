"""Alembic environment: runs with the app's engine; revisions never import `portal`."""

import logging
import os
from logging.config import fileConfig

from alembic import context
from flask import current_app

config = context.config
if config.config_file_name:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")


def get_engine():
    return current_app.extensions["migrate"].db.engine


def get_metadata():
    return current_app.extensions["migrate"].db.metadata


def render_item(type_, obj, autogen_context):
    """Render the portal's custom column types as plain SQLAlchemy types."""
    if type_ == "type" and obj.__class__.__name__ == "UTCDateTime":
        return "sa.DateTime(timezone=True)"
    return False


def include_object(obj, name, type_, reflected, compare_to):
    """Let `PORTAL_MIGRATE_TABLES=a,b flask db migrate` write one feature's revision at a time."""
    only = os.environ.get("PORTAL_MIGRATE_TABLES")
    if not only:
        return True
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table is None or table in {t.strip() for t in only.split(",")}


def run_migrations_offline():
    context.configure(url=str(get_engine().url).replace("%", "%%"),
                      target_metadata=get_metadata(), literal_binds=True,
                      render_as_batch=True, compare_type=True, render_item=render_item)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")

    conf_args = dict(current_app.extensions["migrate"].configure_args)
    conf_args.setdefault("process_revision_directives", process_revision_directives)
    conf_args["render_item"] = render_item
    conf_args["include_object"] = include_object
    connectable = get_engine()
    with connectable.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a SQLite table (copy, drop, rename). With foreign keys on,
            # dropping a table other rows point at fails, so a populated database could not
            # be migrated. The pragma only works outside a transaction; the check below
            # refuses to commit a migration that left a dangling reference.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        context.configure(connection=connection, target_metadata=get_metadata(), **conf_args)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left {len(broken)} broken references")
        if sqlite:
            # Never hand a connection without foreign keys back to the pool.
            connection.invalidate()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
