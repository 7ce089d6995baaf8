"""Load: the production configuration (gunicorn, PostgreSQL, Redis) under a mixed workload.

Workload: 70% page views (client inbox 25%, client thread page 30%, therapist dashboard
15%), 20% sends (a client's reply 10%, a therapist's reply 10%) and 10% Good Faith Estimate
PDF downloads, spread over every signed-in client and therapist.

Two measurements, in the same run, on the same machine:
1. Fixed rate: the mix at --rate requests per second for --duration seconds (60 by default),
   open loop. Each request is scheduled in advance and its latency is counted from when it
   was due, so a slow server cannot hide its queue (no coordinated omission). Prints p50,
   p95, p99 and errors (anything but 200 for a page or a PDF and 302 for a send; must be 0).
2. Capacity: the same mix closed loop with wrk (Debian's package; --connections at once,
   --capacity-seconds), next to a bare Flask "hello" app under the same gunicorn settings:
   throughput as a ratio to the bare app.

Set-up: a new database on the PostgreSQL server (dropped afterwards unless --keep), migrated
with `flask db upgrade`, then tables whose migration is not written yet (`create_all`);
therapists, clients, conversations and one issued estimate per client made through the
portal's own service functions. The app runs as PORTAL_ENV=production (JSON logs, Secure
cookies, Redis rate-limit storage) from the repository's gunicorn.conf.py. At the end the
database is checked: every acknowledged send stored once, and the audit chain whole.

Run from the repository root (apt-get install wrk first):
    .venv/bin/python bench/load_bench.py
    .venv/bin/python bench/load_bench.py --rate 50 --duration 60 --clients 40
"""

import argparse
import base64
import http.client
import json
import math
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PASSWORD = "load bench passphrase for every account"  # noqa: S105 - throwaway accounts
TOTP_SEED = "COEOLOADBENCHTHERAPISTJBSWY3DPEH"
SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MIX = (  # (kind, share of all requests)
    ("client inbox", 25), ("client thread page", 30), ("therapist dashboard", 15),
    ("client sends", 10), ("therapist sends", 10), ("estimate PDF", 10),
)
GROUP = {"client inbox": "page views", "client thread page": "page views",
         "therapist dashboard": "page views", "client sends": "sends",
         "therapist sends": "sends", "estimate PDF": "estimate downloads"}
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                  r'<meta name="csrf-token" content="([^"]+)"')
APP_MODULE = """import json, os
from portal import create_app
app = create_app(json.loads(os.environ["BENCH_PORTAL_CONFIG"]))
"""
HELLO_MODULE = """from flask import Flask
app = Flask(__name__)


@app.get("/")
def hello():
    return "Hello, world!"
"""
WRK_LUA = """
local requests = {{}}
{entries}
local shares = {{{shares}}}
math.randomseed(7)
request = function()
  local pick = math.random(1, 100)
  local total = 0
  for i, share in ipairs(shares) do
    total = total + share
    if pick <= total then
      local options = requests[i]
      local r = options[math.random(1, #options)]
      return wrk.format(r[1], r[2], r[3], r[4])
    end
  end
end
done = function(summary, latency, requests)
  io.write(string.format("BAD_STATUS %d\\n", summary.errors.status))
  io.write(string.format("SOCKET_ERRORS %d\\n",
    summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout))
end
"""


def key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode("ascii")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- an HTTP client with cookies by hand (the production cookie is Secure) -----------------

class Session:
    """One signed-in person: cookies, a CSRF token, what they may open."""

    def __init__(self, base: str) -> None:
        self.host, port = base.removeprefix("http://").split(":")
        self.port = int(port)
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def request(self, method: str, path: str, form: dict | None = None,
                timeout: float = 30) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            headers = {"Cookie": self.cookie_header()} if self.cookies else {}
            body = None
            if form is not None:
                body = urlencode(form)
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            for header in response.headers.get_all("Set-Cookie") or []:
                cookie = SimpleCookie()
                cookie.load(header)
                for name, morsel in cookie.items():
                    if morsel.value and morsel["max-age"] != "0":
                        self.cookies[name] = morsel.value
                    else:
                        self.cookies.pop(name, None)
            return response.status, dict(response.headers), data
        finally:
            conn.close()

    def cookie_header(self) -> str:
        cookies = dict(self.cookies)  # one copy: driver threads share a session
        return "; ".join(f"{k}={v}" for k, v in cookies.items())

    def token(self, path: str) -> str:
        _, _, html = self.request("GET", path)
        match = CSRF.search(html.decode())
        if not match:
            raise SystemExit(f"no CSRF token on {path}")
        return match.group(1) or match.group(2)

    def sign_in(self, email: str, totp: str | None = None) -> None:
        status, _, _ = self.request("POST", "/sign-in", {
            "csrf_token": self.token("/sign-in"), "email": email, "password": PASSWORD})
        if status != 302:
            raise SystemExit(f"sign-in as {email} answered {status}")
        if totp:
            import pyotp

            status, _, _ = self.request("POST", "/sign-in/verify", {
                "csrf_token": self.token("/sign-in/verify"), "code": pyotp.TOTP(totp).now()})
            if status != 302:
                raise SystemExit(f"two-step sign-in as {email} answered {status}")
        self.csrf = self.token("/account")


# --- set-up --------------------------------------------------------------------------------

def create_database(name: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(SERVER).set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def portal_config(workdir: Path, database_url: str, redis_url: str) -> dict:
    return {
        "ENV_NAME": "production", "SQLALCHEMY_DATABASE_URI": database_url,
        "INSTANCE_PATH": str(workdir), "SECRET_KEY": key() + key(),
        "PORTAL_MASTER_KEYS": "bench:" + key(), "PORTAL_INDEX_KEY": key(),
        "RATELIMIT_STORAGE_URI": redis_url, "RATELIMIT_KEY_PREFIX": f"coeo-bench-{os.getpid()}",
        "SIGNIN_RATE_PER_IP": "10000 per 5 minutes",  # every bench account signs in from here
        # Mail goes to the outbox (the deliver-mail worker is not part of this benchmark).
        "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": free_port(), "MAIL_SEND_AFTER_COMMIT": False,
        "PORTAL_BASE_URL": "http://localhost",
    }


@dataclass
class Seeded:
    therapists: list[tuple[str, list]] = field(default_factory=list)  # (email, their threads)
    clients: list[tuple[str, list, list]] = field(default_factory=list)  # (email, threads, gfes)
    messages: int = 0


def seed(config: dict, therapists: int, clients: int, messages_each: int) -> Seeded:
    """Migrate, then make people, conversations and estimates with the portal's services."""
    import flask_migrate

    from portal import create_app, practice
    from portal.accounts import mfa, passwords
    from portal.accounts.identity import set_identity
    from portal.accounts.models import Assignment, User
    from portal.crypto import ensure_canaries
    from portal.db import new_id, utcnow
    from portal.estimates import drafting, issuing
    from portal.estimates.demo import demo_draft
    from portal.extensions import db
    from portal.messaging import sending as messaging

    app = create_app(dict(config, PORTAL_SKIP_KEY_CHECK=True))
    out = Seeded()
    rng = random.Random(11)
    with app.app_context():
        flask_migrate.upgrade(directory=str(ROOT / "migrations"))
        db.create_all()  # tables whose migration is still being written
        ensure_canaries()
        hashed = passwords.hash_password(PASSWORD)
        staff = []
        for n in range(therapists):
            user = User(id=new_id(), role="therapist", password_hash=hashed,
                        mfa_prompt_dismissed=True, totp_enabled_at=utcnow())
            set_identity(user, name=f"Therapist {n + 1}", email=f"therapist{n + 1}@load.example")
            user.totp_seed_sealed = mfa.seal_seed(user, TOTP_SEED)
            db.session.add(user)
            staff.append(user)
        db.session.commit()
        threads_of: dict = {t.id: [] for t in staff}
        for n in range(clients):
            client = User(id=new_id(), role="client", password_hash=hashed,
                          mfa_prompt_dismissed=True)
            set_identity(client, name=f"Client {n + 1}", email=f"client{n + 1}@load.example")
            db.session.add(client)
            db.session.flush()
            therapist = staff[n % therapists]
            db.session.add(Assignment(client_id=client.id, therapist_id=therapist.id))
            db.session.commit()
            threads = []
            for t in range(2):
                thread, _ = messaging.start_thread(client, counterpart_id=therapist.id,
                                                   subject=f"Conversation {t + 1}",
                                                   body="Hello, a first message.", notify=False)
                for m in range(messages_each - 1):
                    sender = client if rng.random() < 0.5 else therapist
                    messaging.reply(sender, thread.id, notify=False,
                                    body=f"Message {m + 2}: " + "a few words " * rng.randint(2, 40))
                threads.append(str(thread.id))
                threads_of[therapist.id].append(str(thread.id))
                out.messages += messages_each
            draft = drafting.create_draft(therapist, client)
            drafting.save_draft(therapist, draft, demo_draft(practice.today()))
            gfe = issuing.issue(therapist, draft.id)
            out.clients.append((f"client{n + 1}@load.example", threads, [str(gfe.id)]))
        for n, therapist in enumerate(staff):
            out.therapists.append((f"therapist{n + 1}@load.example", threads_of[therapist.id]))
        db.session.remove()
        db.engine.dispose()
    return out


def serve(workdir: Path, module: str, env: dict, log: Path) -> tuple[subprocess.Popen, int]:
    """Run gunicorn with the repository's gunicorn.conf.py; wait until it answers."""
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    handle = log.open("ab")
    process = subprocess.Popen(
        [str(gunicorn), "-c", str(ROOT / "gunicorn.conf.py"), "--chdir", str(workdir),
         f"{module}:app"], env={**env, "PORTAL_BIND": f"127.0.0.1:{port}"},
        stdout=handle, stderr=subprocess.STDOUT, cwd=workdir)
    handle.close()
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz" if module == "bench_portal" else "/")
            conn.getresponse().read()
            conn.close()
            return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{module} did not start; see {log}")


# --- the workload --------------------------------------------------------------------------

@dataclass
class Planned:
    kind: str
    method: str
    path: str
    session: Session
    form: dict | None
    expect: int


def plan(seeded: Seeded, clients: list[Session], therapists: list[Session],
         rng: random.Random) -> Planned:
    pick = rng.randrange(100)
    total = 0
    kind = MIX[-1][0]
    for name, share in MIX:
        total += share
        if pick < total:
            kind = name
            break
    c = rng.randrange(len(clients))
    _, threads, gfes = seeded.clients[c]
    client = clients[c]
    if kind == "client inbox":
        return Planned(kind, "GET", "/messages", client, None, 200)
    if kind == "client thread page":
        return Planned(kind, "GET", f"/messages/{rng.choice(threads)}", client, None, 200)
    if kind == "estimate PDF":
        return Planned(kind, "GET", f"/estimates/{gfes[0]}/pdf", client, None, 200)
    if kind == "client sends":
        return Planned(kind, "POST", f"/messages/{rng.choice(threads)}/reply", client,
                       {"csrf_token": client.csrf, "body": f"load {uuid.uuid4()}"}, 302)
    t = rng.randrange(len(therapists))
    therapist = therapists[t]
    if kind == "therapist dashboard":
        return Planned(kind, "GET", "/dashboard", therapist, None, 200)
    thread = rng.choice(seeded.therapists[t][1])
    return Planned(kind, "POST", f"/messages/{thread}/reply", therapist,
                   {"csrf_token": therapist.csrf, "body": f"load {uuid.uuid4()}"}, 302)


@dataclass
class Result:
    kind: str
    latency_ms: float
    ok: bool
    detail: str
    body: str | None = None


def fixed_rate(seeded: Seeded, clients, therapists, *, rate: float, seconds: float,
               threads: int, seed_value: int) -> tuple[list[Result], float]:
    """Send rate x seconds requests, each at its scheduled time; latency from that time."""
    rng = random.Random(seed_value)
    total = int(rate * seconds)
    planned = [plan(seeded, clients, therapists, rng) for _ in range(total)]
    results: list[Result | None] = [None] * total
    counter = iter(range(total))
    lock = threading.Lock()
    start = time.perf_counter() + 0.5

    def worker() -> None:
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            item = planned[index]
            try:
                status, _, _ = item.session.request(item.method, item.path, item.form)
                ok, detail = status == item.expect, str(status)
            except (OSError, http.client.HTTPException) as exc:
                ok, detail = False, type(exc).__name__
            latency = (time.perf_counter() - due) * 1000
            results[index] = Result(item.kind, latency, ok, detail,
                                    item.form["body"] if item.form else None)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - start
    return [r for r in results if r is not None], elapsed


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def wrk(url: str, lua: str, workdir: Path, *, seconds: int, connections: int) -> dict:
    script = workdir / f"wrk-{uuid.uuid4().hex[:6]}.lua"
    script.write_text(lua)
    command = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "-s", str(script),
               url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "bad": int(re.search(r"BAD_STATUS (\d+)", out).group(1)),
            "socket_errors": int(re.search(r"SOCKET_ERRORS (\d+)", out).group(1))}


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid Lua string literal here (ASCII)


def mix_lua(seeded: Seeded, clients: list[Session], therapists: list[Session]) -> str:
    """A wrk script choosing requests by the same shares (sends carry fixed bodies)."""
    entries = []
    for index, (kind, _) in enumerate(MIX, start=1):
        options = []
        for c, session in enumerate(clients):
            _, threads, gfes = seeded.clients[c]
            cookie = lua_string(session.cookie_header())
            form = lua_string(urlencode({"csrf_token": session.csrf, "body": "wrk send"}))
            if kind == "client inbox":
                options.append(f'{{"GET", "/messages", {{Cookie = {cookie}}}, nil}}')
            elif kind == "client thread page":
                options += [f'{{"GET", "/messages/{t}", {{Cookie = {cookie}}}, nil}}'
                            for t in threads]
            elif kind == "estimate PDF":
                options.append(f'{{"GET", "/estimates/{gfes[0]}/pdf", '
                               f'{{Cookie = {cookie}}}, nil}}')
            elif kind == "client sends":
                options += [f'{{"POST", "/messages/{t}/reply", {{Cookie = {cookie}, '
                            f'["Content-Type"] = "application/x-www-form-urlencoded"}}, '
                            f'{form}}}' for t in threads]
        for t, session in enumerate(therapists):
            cookie = lua_string(session.cookie_header())
            form = lua_string(urlencode({"csrf_token": session.csrf, "body": "wrk reply"}))
            if kind == "therapist dashboard":
                options.append(f'{{"GET", "/dashboard", {{Cookie = {cookie}}}, nil}}')
            elif kind == "therapist sends":
                options += [f'{{"POST", "/messages/{thread}/reply", {{Cookie = {cookie}, '
                            f'["Content-Type"] = "application/x-www-form-urlencoded"}}, '
                            f'{form}}}' for thread in seeded.therapists[t][1]]
        entries.append(f"requests[{index}] = {{{', '.join(options)}}}")
    shares = ", ".join(str(share) for _, share in MIX)
    return WRK_LUA.format(entries="\n".join(entries), shares=shares)


HELLO_LUA = WRK_LUA.format(entries='requests[1] = {{"GET", "/", {}, nil}}', shares="100")


# --- checks and the report ------------------------------------------------------------------

def check_database(config: dict, acknowledged: list[str], wrk_sends_ok: bool) -> str:
    """Every acknowledged send stored exactly once; the audit chain whole."""
    from sqlalchemy import select

    from portal import create_app
    from portal.audit import verify
    from portal.crypto import open_text
    from portal.extensions import db
    from portal.messaging.models import Message, Thread

    app = create_app(dict(config, PORTAL_SKIP_KEY_CHECK=True))
    with app.app_context():
        owners = dict(db.session.execute(select(Thread.id, Thread.client_id)).all())
        found: dict[str, int] = {}
        for message in db.session.scalars(select(Message)):
            body = open_text(owners[message.thread_id], message.body_context(),
                             message.body_sealed)
            if body.startswith("load "):
                found[body] = found.get(body, 0) + 1
        missing = [b for b in acknowledged if found.get(b) != 1]
        chain = verify()
        db.session.remove()
        db.engine.dispose()
    if missing or not chain.ok or not wrk_sends_ok:
        return (f"FAILED: {len(missing)} acknowledged sends not stored exactly once; "
                f"audit chain {'ok' if chain.ok else 'BROKEN'}")
    return (f"ok: all {len(acknowledged)} acknowledged sends of the fixed-rate run stored "
            f"exactly once; audit chain verified ({chain.count} events)")


def table(results: list[Result], elapsed: float, capacity: dict, bare: dict) -> str:
    lines = ["| workload | requests | req/s | p50 ms | p95 ms | p99 ms | errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    groups = [("all (fixed rate)", results)]
    for group in ("page views", "sends", "estimate downloads"):
        groups.append((f"  {group}", [r for r in results if GROUP[r.kind] == group]))
    for name, rows in groups:
        latencies = [r.latency_ms for r in rows]
        errors = sum(not r.ok for r in rows)
        lines.append(f"| {name} | {len(rows)} | {len(rows) / elapsed:.1f} | "
                     f"{percentile(latencies, 50):.1f} | {percentile(latencies, 95):.1f} | "
                     f"{percentile(latencies, 99):.1f} | {errors} |")
    lines += ["", "| capacity (wrk, closed loop) | req/s | x bare Flask | errors |",
              "|---|---:|---:|---:|",
              f"| portal, same mix | {capacity['rps']:.0f} | "
              f"{capacity['rps'] / bare['rps']:.3f} | "
              f"{capacity['bad'] + capacity['socket_errors']} |",
              f"| bare Flask hello | {bare['rps']:.0f} | 1.000 | "
              f"{bare['bad'] + bare['socket_errors']} |"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=30.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds at that rate")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--therapists", type=int, default=5)
    parser.add_argument("--messages", type=int, default=20, help="per conversation")
    parser.add_argument("--capacity-seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--driver-threads", type=int, default=32)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--keep", action="store_true", help="keep the database and work dir")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="coeo-load-"))
    name = f"coeo_loadbench_{os.getpid()}"
    database_url = create_database(name)
    config = portal_config(workdir, database_url, args.redis)
    try:
        run(args, workdir, name, config)
    finally:
        if not args.keep:
            drop_database(name)
            shutil.rmtree(workdir, ignore_errors=True)


def run(args, workdir: Path, name: str, config: dict) -> None:
    """Seed, serve, measure, check, print; the caller drops the database."""
    servers: list[subprocess.Popen] = []
    try:
        started = time.perf_counter()
        print(f"Seeding {args.therapists} therapists, {args.clients} clients, "
              f"{args.clients * 2} conversations of {args.messages} messages, "
              f"{args.clients} issued estimates ...", flush=True)
        seeded = seed(config, args.therapists, args.clients, args.messages)
        print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)

        (workdir / "bench_portal.py").write_text(APP_MODULE)
        (workdir / "bench_hello.py").write_text(HELLO_MODULE)
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT),
               "PORTAL_ENV": "production", "BENCH_PORTAL_CONFIG": json.dumps(config)}
        if os.environ.get("WEB_CONCURRENCY"):
            env["WEB_CONCURRENCY"] = os.environ["WEB_CONCURRENCY"]
        portal, portal_port = serve(workdir, "bench_portal", env, workdir / "portal.log")
        servers.append(portal)
        base = f"http://127.0.0.1:{portal_port}"
        clients = []
        for email, _, _ in seeded.clients:
            session = Session(base)
            session.sign_in(email)
            clients.append(session)
        therapists = []
        for email, _ in seeded.therapists:
            session = Session(base)
            session.sign_in(email, TOTP_SEED)
            therapists.append(session)

        print(f"Warming up for {args.warmup:.0f} s, then {args.rate:g} requests/s for "
              f"{args.duration:.0f} s ...", flush=True)
        fixed_rate(seeded, clients, therapists, rate=args.rate, seconds=args.warmup,
                   threads=args.driver_threads, seed_value=1)
        load_before = os.getloadavg()[0]
        results, elapsed = fixed_rate(seeded, clients, therapists, rate=args.rate,
                                      seconds=args.duration, threads=args.driver_threads,
                                      seed_value=2)
        load_after = os.getloadavg()[0]
        acknowledged = [r.body for r in results if r.ok and r.body]

        print(f"Capacity: wrk, {args.connections} connections, {args.capacity_seconds} s "
              "each, portal mix then bare Flask ...", flush=True)
        capacity = wrk(base + "/", mix_lua(seeded, clients, therapists), workdir,
                       seconds=args.capacity_seconds, connections=args.connections)
        hello, hello_port = serve(workdir, "bench_hello", env, workdir / "hello.log")
        servers.append(hello)
        bare = wrk(f"http://127.0.0.1:{hello_port}/", HELLO_LUA, workdir,
                   seconds=args.capacity_seconds, connections=args.connections)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)

    verdict = check_database(config, acknowledged,
                             capacity["bad"] + capacity["socket_errors"] == 0)
    workers = env.get("WEB_CONCURRENCY") or (f"{min(2 * (os.cpu_count() or 1) + 1, 9)} "
                                             "(gunicorn.conf.py's default)")
    print(f"\ncoeo portal, PORTAL_ENV=production, gunicorn with {workers} sync workers, "
          "PostgreSQL, "
          f"Redis; {os.cpu_count()} CPUs; load average {load_before:.1f} before and "
          f"{load_after:.1f} after the fixed-rate run\n")
    print(table(results, elapsed, capacity, bare))
    print("\nLatency counts from when each request was due (open loop); errors are any "
          "status but 200 (pages, PDFs) or 302 (sends), or a failed connection.")
    print(f"Database check: {verdict}")
    errors = sum(not r.ok for r in results)
    if errors:
        details = statistics.multimode([r.detail for r in results if not r.ok])
        print(f"ERRORS: {errors} (most often: {', '.join(details)})")
    if args.keep:
        print(f"Kept: database {name}, work directory {workdir}")
    if errors or verdict.startswith("FAILED"):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
