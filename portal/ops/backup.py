"""Consistent database snapshots and restores. Keys are never part of a backup.

SQLite uses the online backup API (a consistent copy while the portal runs); PostgreSQL
uses pg_dump / pg_restore in the custom format.
"""

import os
import shutil
import sqlite3
import subprocess  # pg_dump and pg_restore, with argument lists and no shell
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from portal.db.connections import make_private
from portal.extensions import db


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why in one line."""


@dataclass
class BackupResult:
    path: Path
    method: str
    size: int


def _url():
    return make_url(str(db.engine.url))


def _pg_args(url) -> tuple[list[str], dict]:
    args = ["--host", url.host or "127.0.0.1", "--port", str(url.port or 5432),
            "--username", url.username or "postgres", "--dbname", url.database]
    env = {}
    if url.password:
        env["PGPASSWORD"] = url.password
    return args, env


PRIVATE = 0o600  # a backup holds everything the database does: its owner reads it, nobody else


def _create_private(target: Path) -> None:
    """Create `target` empty and owner-only, whatever the umask; refuse one that exists."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE)
    except FileExistsError:
        raise BackupError(f"{target} already exists; choose a new file name") from None
    try:
        os.fchmod(fd, PRIVATE)
    finally:
        os.close(fd)


def backup(target: str | Path) -> BackupResult:
    """Write a consistent snapshot of the database to `target` (refuses to overwrite).

    The file is created owner-only (0600) before anything is written to it; SQLite and
    pg_dump then write into it and keep its mode.
    """
    target = Path(target)
    if target.exists():
        raise BackupError(f"{target} already exists; choose a new file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    url = _url()
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise BackupError(f"backups are not supported for {url.get_backend_name()}")
    _create_private(target)
    try:
        return _write_backup(url, target)
    except BaseException:
        target.unlink(missing_ok=True)  # no half-written backup left behind
        raise


def _write_backup(url, target: Path) -> BackupResult:
    if url.get_backend_name() == "sqlite":
        db.session.remove()
        source = sqlite3.connect(url.database)
        try:
            dest = sqlite3.connect(target)
            with dest:
                source.backup(dest)
            dest.close()
        finally:
            source.close()
        return BackupResult(target, "sqlite online backup API", target.stat().st_size)
    if url.get_backend_name() == "postgresql":
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            raise BackupError("pg_dump is not installed (apt-get install postgresql-client)")
        args, env = _pg_args(url)
        result = subprocess.run([pg_dump, "--format=custom", "--no-owner", *args,  # noqa: S603
                                 "--file", str(target)], env={**_base_env(), **env},
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BackupError("pg_dump failed: " + result.stderr.strip().splitlines()[-1])
        return BackupResult(target, "pg_dump --format=custom", target.stat().st_size)
    raise BackupError(f"backups are not supported for {url.get_backend_name()}")  # not reached


def _base_env() -> dict:
    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")}


def database_is_empty() -> bool:
    """True when the database has no portal tables (a restore never overwrites data)."""
    tables = set(inspect(db.engine).get_table_names()) - {"alembic_version"}
    return not tables


def restore(source: str | Path) -> str:
    """Restore a snapshot into an empty database; returns the method used."""
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"{source} is not a file")
    if not database_is_empty():
        raise BackupError("the target database is not empty; restore only into a new one")
    url = _url()
    db.session.remove()
    if url.get_backend_name() == "sqlite":
        db.engine.dispose()
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            if src.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BackupError(f"{source} is not a healthy SQLite backup")
            make_private(url.database)  # the restored database: owner-only, as a new one is
            dest = sqlite3.connect(url.database)
            with dest:
                src.backup(dest)
            dest.close()
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{source} is not a SQLite backup ({exc})") from None
        finally:
            src.close()
        return "sqlite online backup API"
    if url.get_backend_name() == "postgresql":
        pg_restore = shutil.which("pg_restore")
        if pg_restore is None:
            raise BackupError("pg_restore is not installed (apt-get install postgresql-client)")
        db.engine.dispose()
        args, env = _pg_args(url)
        result = subprocess.run([pg_restore, "--no-owner", "--exit-on-error", *args,  # noqa: S603
                                 str(source)], env={**_base_env(), **env},
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BackupError("pg_restore failed: " + result.stderr.strip().splitlines()[-1])
        return "pg_restore"
    raise BackupError(f"restores are not supported for {url.get_backend_name()}")
