"""Helpers the ops and fault tests share: apps on chosen databases, real servers, an HTTP client.

Plain functions and classes (no fixtures), imported by tests/ops and tests/faults.
"""

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import select

from portal import create_app
from portal.crypto import Context, open_bytes, open_text
from portal.extensions import db
from portal.messaging.models import Attachment, Message, Thread
from tests.support.databases import create_database, drop_database, sibling_database_url
from tests.support.people import CSRF

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_app(database_url: str, instance: Path, **overrides):
    """Build a testing app on a given database (keys: the testing config's)."""
    return create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": database_url,
                       "INSTANCE_PATH": str(instance), **overrides})


def upgrade_to_head(app) -> None:
    """Run the real migrations (flask db upgrade), then add tables no revision creates yet."""
    import flask_migrate

    from portal.crypto import ensure_canaries

    with app.app_context():
        flask_migrate.upgrade(directory=str(ROOT / "migrations"))
        db.create_all()  # tables whose migration is still being written (checkfirst)
        ensure_canaries()
        db.session.remove()


# --- reading every sealed value back -------------------------------------------------------

@dataclass
class Plaintexts:
    """Every conversation's sealed values, opened: what a backup or an outage must keep."""

    subjects: dict[uuid.UUID, str] = field(default_factory=dict)
    bodies: dict[uuid.UUID, str] = field(default_factory=dict)
    attachments: dict[uuid.UUID, tuple[str, bytes]] = field(default_factory=dict)


def read_all() -> Plaintexts:
    """Open every thread subject, message body and attachment (inside an app context)."""
    out = Plaintexts()
    for thread in db.session.scalars(select(Thread)):
        out.subjects[thread.id] = open_text(thread.client_id, thread.subject_context(),
                                            thread.subject_sealed)
    owners = dict(db.session.execute(select(Thread.id, Thread.client_id)).all())
    for message in db.session.scalars(select(Message)):
        out.bodies[message.id] = open_text(owners[message.thread_id], message.body_context(),
                                           message.body_sealed)
    message_owner = {m_id: owners[t_id] for m_id, t_id in
                     db.session.execute(select(Message.id, Message.thread_id))}
    for attachment in db.session.scalars(select(Attachment)):
        owner = message_owner[attachment.message_id]
        out.attachments[attachment.id] = (
            open_text(owner, attachment.name_context(), attachment.name_sealed),
            open_bytes(owner, attachment.content_context(), attachment.content_sealed))
    return out


def bodies_by_text() -> dict[str, int]:
    """How many stored messages carry each body text."""
    counts: dict[str, int] = {}
    for body in read_all().bodies.values():
        counts[body] = counts.get(body, 0) + 1
    return counts


def message_context(message_id: uuid.UUID) -> Context:
    return Context("messages", "body", message_id)


# --- PostgreSQL -----------------------------------------------------------------------------

def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run its server as root: run it as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


class OwnPostgres:
    """A throwaway PostgreSQL 15 cluster on a free port, which a test may stop and start.

    Never the shared server: fault tests stop this one.
    """

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"PostgreSQL 15 server binaries not found in {PG_BIN}")
        self.root = Path(tempfile.mkdtemp(prefix="coeo-faults-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                   "--auth=trust", "--encoding=UTF8", "--no-sync", "--no-instructions"])

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(_as_postgres(command), capture_output=True, text=True,
                                check=False, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"{Path(command[0]).name} failed: {result.stderr.strip()}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                   str(self.root / "server.log"), "-w", "-t", "30", "start"])

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; `immediate` is a crash: no checkpoint, WAL replay on start."""
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def running(self) -> bool:
        result = subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data),
                                              "status"]),
                                capture_output=True, check=False, cwd=self.root)
        return result.returncode == 0

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            if self.running():
                self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def second_postgres_database(url: str) -> Iterator[str]:
    """Create an empty database beside the one at `url` on the same server; drop it after."""
    second = sibling_database_url(url, "restore")
    create_database(second)
    try:
        yield second
    finally:
        drop_database(second)


# --- a real gunicorn ------------------------------------------------------------------------

APP_MODULE = """import json, os
from portal import create_app
app = create_app(json.loads(os.environ["COEO_TEST_APP_CONFIG"]))
"""


class Gunicorn:
    """The repository's gunicorn.conf.py serving a testing app on a free loopback port."""

    def __init__(self, config: dict, *, workers: int = 2, threads: int = 1,
                 workdir: Path | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="coeo-gunicorn-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "served_app.py").write_text(APP_MODULE)
        self.port = free_port()
        self.log = self.workdir / "gunicorn.log"
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT),
               "COEO_TEST_APP_CONFIG": json.dumps(config),
               "PORTAL_BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": str(workers),
               "PORTAL_THREADS": str(threads), "PORTAL_ENV": "testing"}
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self._log_file = self.log.open("ab")
        self.process = subprocess.Popen(
            [str(gunicorn), "-c", str(ROOT / "gunicorn.conf.py"), "--chdir", str(self.workdir),
             *extra_args, "served_app:app"],
            env=env, stdout=self._log_file, stderr=subprocess.STDOUT, cwd=self.workdir)
        self.base = f"http://127.0.0.1:{self.port}"
        self.wait_until_serving()

    def wait_until_serving(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log.read_text()[-3000:]
                self.stop()
                raise RuntimeError("gunicorn exited:\n" + tail)
            try:
                status, _, _ = Browser(self.base).request("GET", "/healthz", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        tail = self.log.read_text()[-3000:]
        self.stop()
        raise RuntimeError("gunicorn did not start:\n" + tail)

    def worker_pids(self) -> list[int]:
        """The master's live children (its workers)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def stop(self) -> None:
        """Stop gracefully (SIGTERM); remove the work directory unless the caller gave it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log_file.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


# --- an HTTP client with cookies and no redirects -------------------------------------------

class Browser:
    """One person's cookies against a real server; never follows redirects.

    Cookies are kept by hand because urllib's jar drops `Secure` cookies over plain HTTP.
    """

    def __init__(self, base: str) -> None:
        self.base = base
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None, *,
                headers: dict | None = None, timeout: float = 30) -> tuple[int, dict, str]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            sent = dict(headers or {})
            if self.cookies:
                sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            body = None
            if form is not None:
                body = urlencode(form)
                sent["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read().decode("utf-8", "replace")
            for header in response.headers.get_all("Set-Cookie") or []:
                self._keep(header)
            return response.status, dict(response.headers), data
        finally:
            conn.close()

    def _keep(self, header: str) -> None:
        cookie = SimpleCookie()
        cookie.load(header)
        for name, morsel in cookie.items():
            if morsel["max-age"] == "0" or not morsel.value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = morsel.value

    def get(self, path: str, **kwargs) -> tuple[int, dict, str]:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, form: dict, **kwargs) -> tuple[int, dict, str]:
        return self.request("POST", path, form, **kwargs)

    def csrf(self, path: str = "/account") -> str:
        status, _, html = self.get(path)
        match = CSRF.search(html)
        if not match:
            raise AssertionError(f"no CSRF token on {path} (status {status})")
        return match.group(1) or match.group(2)

    def sign_in(self, email: str, password: str, totp=None) -> None:
        status, headers, _ = self.post("/sign-in", {"csrf_token": self.csrf("/sign-in"),
                                                    "email": email, "password": password})
        assert status == 302, f"sign-in answered {status}"
        if totp is not None:
            assert "/sign-in/verify" in headers["Location"]
            status, _, _ = self.post("/sign-in/verify", {
                "csrf_token": self.csrf("/sign-in/verify"), "code": totp.now()})
            assert status == 302, f"two-step sign-in answered {status}"
