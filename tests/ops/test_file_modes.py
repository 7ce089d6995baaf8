"""The development database, its -wal, -shm and writer-lock files, and backups are readable by
their owner only (0600), whatever the umask (issue 17). The key files already were
(tests/crypto/test_keyring.py).
"""

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from portal import create_app
from portal.crypto import ensure_canaries
from portal.db.connections import make_private, sqlite_file
from portal.extensions import db
from portal.ops import backup as backups
from tests.conftest import POSTGRES_URL
from tests.messaging.conftest import assign, make_user

COMPANIONS = ("-wal", "-shm", "-writer.lock")
OWNER_ONLY = {"": 0o600, "-wal": 0o600, "-shm": 0o600, "-writer.lock": 0o600}


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The usual 022: files are created 0644 unless the code says otherwise."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _write_something() -> None:
    assign(make_user("client", "Alex Rivera"), make_user("therapist", "Colleen Xu"))


def _development_app(instance: Path):
    # No DATABASE_URL: development's own instance/portal.db (environment settings aside).
    return create_app({"ENV_NAME": "development", "INSTANCE_PATH": str(instance),
                       "SQLALCHEMY_DATABASE_URI": "", "PORTAL_DEV_KEYS": True})


def _modes_while_open(database: Path) -> dict[str, int]:
    """The modes of the database and its companions while a connection holds them open (the
    -wal and -shm files go when the last connection closes)."""
    with db.engine.connect() as connection:
        connection.exec_driver_sql("SELECT count(*) FROM users").scalar()
        return {name: mode(f"{database}{name}") for name in ("", *COMPANIONS)}


def test_the_development_database_and_its_files_are_created_owner_only(
        tmp_path, permissive_umask, capsys):
    probe = tmp_path / "probe"
    probe.touch()
    assert mode(probe) == 0o644  # the umask alone would make the files readable by all
    instance = tmp_path / "instance"
    app = _development_app(instance)
    capsys.readouterr()  # the development key files' warning
    database = instance / "portal.db"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{database}"
    assert _modes_of_a_fresh_database(app, database) == OWNER_ONLY


def _modes_of_a_fresh_database(app, database) -> dict[str, int]:
    """Create the schema, write a row, and read the modes of the database and its companion
    files while the connection is still open (the WAL and shared memory exist only then)."""
    with app.app_context():
        db.create_all()
        ensure_canaries()
        _write_something()
        modes = _modes_while_open(database)
        db.session.remove()
        db.engine.dispose()
    return modes


def test_development_start_up_makes_existing_wide_files_owner_only(tmp_path, permissive_umask,
                                                                   capsys):
    instance = tmp_path / "instance"
    instance.mkdir()
    database = instance / "portal.db"
    # A database an earlier version left readable by all, with its companions.
    keep_open = sqlite3.connect(database)
    keep_open.execute("PRAGMA journal_mode=WAL")
    keep_open.execute("CREATE TABLE kept (x)")
    keep_open.execute("INSERT INTO kept VALUES (1)")
    keep_open.commit()
    (instance / "portal.db-writer.lock").touch()
    for name in ("", *COMPANIONS):
        os.chmod(f"{database}{name}", 0o644)
    try:
        _development_app(instance)
        capsys.readouterr()
        modes = {name: mode(f"{database}{name}") for name in ("", *COMPANIONS)}
    finally:
        keep_open.close()
    assert modes == OWNER_ONLY, modes


def test_any_new_sqlite_database_is_created_owner_only(tmp_path, permissive_umask):
    # Not only development's: a database the app creates anywhere (tests, DATABASE_URL).
    database = tmp_path / "elsewhere.db"
    app = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}",
                      "INSTANCE_PATH": str(tmp_path)})
    assert _modes_of_a_fresh_database(app, database) == OWNER_ONLY


def test_a_database_that_already_holds_data_keeps_its_mode_outside_development(
        tmp_path, permissive_umask):
    database = tmp_path / "shared.db"
    sqlite3.connect(database).execute("CREATE TABLE kept (x)").connection.close()
    os.chmod(database, 0o640)  # an operator's choice (a backup group, say)
    app = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}",
                      "INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        db.session.execute(db.text("SELECT 1"))
        db.session.remove()
        db.engine.dispose()
    assert mode(database) == 0o640


def test_sqlite_file_reads_the_uri_as_flask_sqlalchemy_does(tmp_path):
    assert sqlite_file(f"sqlite:///{tmp_path}/a.db", "/inst") == f"{tmp_path}/a.db"
    assert sqlite_file("sqlite:///relative.db", "/inst") == "/inst/relative.db"
    for other in ("sqlite://", "sqlite:///:memory:", "postgresql+psycopg://u@h/d", "", None):
        assert sqlite_file(other, "/inst") is None


def test_make_private_creates_a_missing_database_owner_only(tmp_path, permissive_umask):
    database = tmp_path / "new.db"
    make_private(str(database))
    assert database.exists() and database.stat().st_size == 0
    assert mode(database) == 0o600


def test_a_backup_is_owner_only(app, tmp_path, permissive_umask):
    if POSTGRES_URL and not backups.shutil.which("pg_dump"):
        pytest.skip("pg_dump is not installed")
    _write_something()
    db.session.commit()
    result = backups.backup(tmp_path / "backups" / "portal.backup")
    assert result.size > 0
    assert mode(result.path) == 0o600
    leftovers = [p.name for p in result.path.parent.iterdir() if p != result.path]
    assert not [p for p in leftovers if mode(result.path.parent / p) != 0o600], leftovers


def test_a_backup_refuses_an_existing_file_and_leaves_it_alone(app, tmp_path):
    target = tmp_path / "taken.backup"
    target.write_bytes(b"someone's file")
    with pytest.raises(backups.BackupError, match="already exists"):
        backups.backup(target)
    assert target.read_bytes() == b"someone's file"


@pytest.mark.skipif(bool(POSTGRES_URL), reason="the SQLite restore writes a file")
def test_a_restored_sqlite_database_is_owner_only(app, tmp_path, permissive_umask):
    _write_something()
    db.session.commit()
    snapshot = backups.backup(tmp_path / "snapshot.db").path
    target = tmp_path / "restored.db"
    fresh = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{target}",
                        "INSTANCE_PATH": str(tmp_path)})
    with fresh.app_context():
        backups.restore(snapshot)
        db.session.remove()
        db.engine.dispose()
    assert mode(target) == 0o600
