"""What a purge deletes from SQLite leaves no copy in the file's free pages (issue 17):
the portal's connections set secure_delete, so a stolen file holds zeros where it was.
(PostgreSQL keeps a dead row until VACUUM reuses its space; autovacuum does that on its own
schedule, and docs/stolen-database.md says so.)"""

from sqlalchemy import text

from portal import create_app
from portal.db.connections import scrub_deleted
from portal.extensions import db

MARKER = "deleted-row-marker-7f3a9c"


def _closed_file(app, path) -> bytes:
    """The database file once every connection is closed (SQLite checkpoints the WAL into
    it and removes the WAL when the last one closes)."""
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return path.read_bytes()


def test_a_deleted_row_is_zeroed_in_the_file(tmp_path):
    path = tmp_path / "deleting.db"
    app = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}",
                      "INSTANCE_PATH": str(tmp_path)})
    with app.app_context(), db.engine.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
        conn.execute(text("CREATE TABLE scratch (v TEXT)"))
        conn.execute(text("INSERT INTO scratch VALUES (:v)"), {"v": MARKER * 20})
        conn.execute(text("INSERT INTO scratch VALUES ('kept')"))
    assert MARKER.encode() in _closed_file(app, path)  # the search finds what is there
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text("DELETE FROM scratch WHERE v <> 'kept'"))
    data = _closed_file(app, path)
    assert MARKER.encode() not in data and b"kept" in data


def test_without_secure_delete_the_row_would_stay(tmp_path):
    """The check above can fail: turned off, the deleted row is still in the file."""
    path = tmp_path / "lingering.db"
    app = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}",
                      "INSTANCE_PATH": str(tmp_path)})
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE scratch (v TEXT)"))
        conn.execute(text("INSERT INTO scratch VALUES (:v)"), {"v": MARKER * 20})
        conn.execute(text("INSERT INTO scratch VALUES ('kept')"))
    _closed_file(app, path)
    with app.app_context(), db.engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA secure_delete=OFF")
        conn.execute(text("DELETE FROM scratch WHERE v <> 'kept'"))
    assert MARKER.encode() in _closed_file(app, path)


def test_a_scrub_after_a_purge_leaves_no_older_copy_in_the_wal(tmp_path):
    """While the app runs (connections open, no checkpoint on close), the WAL still holds the
    page images from before a delete; scrub_deleted folds them into the file and empties it."""
    path = tmp_path / "running.db"
    app = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}",
                      "INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("CREATE TABLE scratch (v TEXT)"))
            conn.execute(text("INSERT INTO scratch VALUES (:v)"), {"v": MARKER * 20})
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM scratch"))

        def stolen() -> bytes:
            return b"".join(p.read_bytes() for p in tmp_path.glob("running.db*")
                            if p.suffix != ".lock" and p.is_file())

        assert MARKER.encode() in stolen()  # the insert's page image is still in the WAL
        assert scrub_deleted(db.engine)
        assert MARKER.encode() not in stolen()
        db.engine.dispose()
