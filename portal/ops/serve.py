"""`make serve`: the production configuration on this machine, with gunicorn, PostgreSQL, Redis.

    python -m portal.ops.serve            # what `make serve` runs

The same code path as a real deployment (PORTAL_ENV=production, gunicorn.conf.py, wsgi:app),
with local defaults for what a deployment would set:

- DATABASE_URL            postgresql+psycopg://postgres@127.0.0.1:5432/coeo (created if missing)
- RATELIMIT_STORAGE_URI   redis://127.0.0.1:6379/0
- MAIL_SERVER, MAIL_PORT  127.0.0.1, 1025: nothing listens there unless you run a catcher
                          (`.venv/bin/aiosmtpd -n -l 127.0.0.1:1025`); mail waits in the outbox
- PORTAL_BASE_URL         http://localhost:8000
- SECRET_KEY, PORTAL_MASTER_KEYS, PORTAL_INDEX_KEY: from the environment, or else generated
  once into instance/prod-keys.env (mode 0600) and read from there on later runs.

Then `flask db upgrade` and `portal policies init`, then gunicorn replaces this process.
"""

import base64
import os
import secrets
import shutil
import subprocess  # flask and gunicorn, with argument lists and no shell
import sys
from pathlib import Path

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config import normalize_database_url

ROOT = Path(__file__).resolve().parents[2]
KEYS_FILE = "prod-keys.env"
KEY_NAMES = ("SECRET_KEY", "PORTAL_MASTER_KEYS", "PORTAL_INDEX_KEY")
DEFAULTS = {
    "PORTAL_ENV": "production",
    "DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/coeo",
    "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
    "MAIL_SERVER": "127.0.0.1",
    "MAIL_PORT": "1025",
    "PORTAL_BASE_URL": "http://localhost:8000",
}
KEYS_NOTE = """\
************************************************************************************
coeo portal: generated production keys into {path} (mode 0600).
  PORTAL_MASTER_KEYS opens every sealed message, name and estimate in {database}.
  Lose this file and that data is gone for good. Back it up now, APART from the
  database backups. For a real deployment, set SECRET_KEY, PORTAL_MASTER_KEYS and
  PORTAL_INDEX_KEY from your secret store instead; this file is for `make serve`.
************************************************************************************
"""


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    return values


def ensure_keys(env: dict[str, str], instance: Path) -> tuple[dict[str, str], Path | None]:
    """Fill the keys the environment lacks from instance/prod-keys.env, creating it once."""
    if all(env.get(name) for name in KEY_NAMES):
        return {}, None
    path = instance / KEYS_FILE
    created = None
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("# coeo portal keys for `make serve`. Back up apart from the database.\n"
                     f"SECRET_KEY={secrets.token_urlsafe(48)}\n"
                     f"PORTAL_MASTER_KEYS=serve1:{_key()}\n"
                     f"PORTAL_INDEX_KEY={_key()}\n")
        created = path
    if path.stat().st_mode & 0o077:
        raise SystemExit(f"{path} is readable by others; run `chmod 600 {path}`")
    stored = read_env_file(path)
    return {n: stored[n] for n in KEY_NAMES if not env.get(n) and stored.get(n)}, created


def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database named in `url` if the server lacks it; True if created."""
    target = make_url(normalize_database_url(url))
    if target.get_backend_name() != "postgresql":
        return False
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                 {"name": target.database})
            if not exists:
                quoted = target.database.replace('"', '""')
                conn.execute(text(f'CREATE DATABASE "{quoted}"'))
            return not exists
    except Exception as exc:
        raise SystemExit(f"coeo portal: cannot reach PostgreSQL at {target.host}:"
                         f"{target.port or 5432} ({type(exc).__name__}); start it or set "
                         "DATABASE_URL") from None
    finally:
        admin.dispose()


def check_redis(url: str) -> None:
    """Refuse to start when the rate-limit store does not answer (sign-in needs it)."""
    if not url.startswith(("redis://", "rediss://")):
        return
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise SystemExit(f"coeo portal: Redis at {url} does not answer ({type(exc).__name__}); "
                         "start it or set RATELIMIT_STORAGE_URI") from None


def prepare(environ: dict[str, str]) -> dict[str, str]:
    """Return the environment to serve with; create keys and the database when missing."""
    env = dict(environ)
    for name, value in DEFAULTS.items():
        env.setdefault(name, value)
    instance = Path(env.get("PORTAL_INSTANCE_PATH") or ROOT / "instance")
    keys, created = ensure_keys(env, instance)
    env.update(keys)
    if created:
        print(KEYS_NOTE.format(path=created, database=env["DATABASE_URL"]), file=sys.stderr)
    if ensure_database(env["DATABASE_URL"]):
        print(f"coeo portal: created the database in {env['DATABASE_URL']}", file=sys.stderr)
    check_redis(env["RATELIMIT_STORAGE_URI"])
    if env["MAIL_SERVER"] == DEFAULTS["MAIL_SERVER"] and env["MAIL_PORT"] == DEFAULTS["MAIL_PORT"]:
        # Production refuses plain-text mail unless a loopback relay is named with a reason.
        env.setdefault("MAIL_ALLOW_PLAINTEXT_LOOPBACK",
                       "make serve: a test mail catcher on this machine")
        print("coeo portal: mail goes to 127.0.0.1:1025 (MAIL_SERVER, MAIL_PORT). Run "
              "`.venv/bin/aiosmtpd -n -l 127.0.0.1:1025` to accept it, or it waits in the "
              "outbox.", file=sys.stderr)
    return env


def main() -> None:
    env = prepare(dict(os.environ))
    bin_dir = Path(sys.executable).parent
    flask = [str(bin_dir / "flask"), "--app", "wsgi"]
    for step in (["db", "upgrade"], ["portal", "policies", "init"]):
        result = subprocess.run([*flask, *step], cwd=ROOT, env=env, check=False)  # noqa: S603
        if result.returncode != 0:
            raise SystemExit(result.returncode)
    gunicorn = shutil.which("gunicorn", path=str(bin_dir)) or "gunicorn"
    bind = env.get("PORTAL_BIND", "127.0.0.1:8000").replace("127.0.0.1", "localhost")
    print(f"coeo portal: serving the production configuration on http://{bind} (browsers "
          "keep its Secure cookie on localhost only; anywhere else, put TLS in front)",
          file=sys.stderr)
    os.chdir(ROOT)
    os.execve(gunicorn, [gunicorn, "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"], env)  # noqa: S606


if __name__ == "__main__":
    main()
