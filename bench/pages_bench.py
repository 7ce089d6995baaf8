"""Benchmark the messaging pages against a bare Flask "hello" app, both served by gunicorn.

Seeds 50 therapists, 2,000 clients and about 200,000 messages (every client has two
conversations of 50 messages with their own therapist, and therapist 1 is also assigned to
all 2,000 clients, each with a short conversation, so their dashboard covers 2,000 clients).
Serves the portal and a bare "hello" app with gunicorn (2 workers each), drives both with wrk
(Debian's package) at 8 connections, and prints requests per second, p50 and p95 latency for
the dashboard, a 50-message thread page and the send endpoint, each as a ratio to the bare app
measured in the same run. Reference rows show what the portal costs before any page work:
its health check (no session, database or template); a signed-in request that returns a word;
the same writing the one audit row a thread view needs (the ceiling for any audited page,
served by routes only this bench adds); and a client's inbox.

Run from the repository root (apt-get install wrk first):
    .venv/bin/python bench/pages_bench.py
    .venv/bin/python bench/pages_bench.py --clients 200 --messages 20000 --duration 5
"""

import argparse
import base64
import http.cookiejar
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PASSWORD = "bench passphrase for every account"  # noqa: S105 - throwaway bench accounts
TOTP_SEED = "COEOBENCHTHERAPISTKEYJBSWY3DPEHP"
TARGETS = {"thread_ratio": 0.25, "thread_p95_ms": 50.0, "dashboard_p95_ms": 100.0}
SENTENCES = (
    "Thank you for yesterday, it helped more than I expected.",
    "I tried the breathing exercise before the meeting and it took the edge off.",
    "Could we talk about my sister on Thursday? Something came up over the weekend.",
    "Sleep has been a bit better this week, maybe six hours most nights.",
    "I noticed the old pattern again when my manager emailed late at night.",
    "That is a good observation. Let us look at it together next time.",
    "Please remember you can write down what you noticed, even a few words.",
    "I am running about ten minutes late for our session, sorry!",
)

APP_MODULE = '''import json, os, sys
sys.path.insert(0, {root!r})
from portal import create_app
from portal.ops.runtime import settle
app = create_app(json.loads(os.environ["BENCH_PORTAL_CONFIG"]))

# Two ceilings, served only by this bench process: a signed-in request that does no page
# work, and one that also writes the audit row every thread view must write before it
# answers. No audited page can be faster than the second.
from flask_login import current_user
from portal.audit import record
from portal.pages import read_only
from portal.db.transactions import write_transaction


@app.get("/bench/signed-in")
@read_only
def signed_in():
    return "ok"


@app.get("/bench/audited")
@read_only
def audited():
    with write_transaction(durable=False):
        record("thread.viewed", actor=current_user, target=("thread", current_user.id),
               subject_id=current_user.id)
    return "ok"


settle()  # as wsgi.py does
'''
HELLO_MODULE = '''from flask import Flask
app = Flask(__name__)


@app.get("/")
def hello():
    return "Hello, world!"
'''
LUA = '''{setup}
done = function(summary, latency, requests)
  io.write(string.format("P50_US %d\\n", latency:percentile(50)))
  io.write(string.format("P95_US %d\\n", latency:percentile(95)))
  io.write(string.format("BAD_STATUS %d\\n", summary.errors.status))
end
'''


def key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode("ascii")


def portal_config(workdir: Path, database_url: str) -> dict:
    return {
        "ENV_NAME": "development", "SQLALCHEMY_DATABASE_URI": database_url,
        "INSTANCE_PATH": str(workdir), "SECRET_KEY": key() + key(),
        "PORTAL_MASTER_KEYS": "bench:" + key(), "PORTAL_INDEX_KEY": key(),
        "RATELIMIT_ENABLED": False, "SESSION_IDLE_MINUTES": 600,
        "MAIL_SEND_AFTER_COMMIT": False,  # the deliver-mail worker sends; not benchmarked
        "PORTAL_BASE_URL": "http://127.0.0.1",
    }


# --- seeding -------------------------------------------------------------------------------

def seed(config: dict, therapists: int, clients: int, messages: int) -> dict:
    """Create the accounts, assignments, conversations and messages; return what to drive."""
    from sqlalchemy import insert

    from portal import create_app
    from portal.accounts import mfa, passwords
    from portal.accounts.identity import set_identity
    from portal.accounts.models import Assignment, User
    from portal.crypto import Context, ensure_canaries, preload_keys, seal
    from portal.db import new_id, utcnow
    from portal.extensions import db
    from portal.messaging import crisis_state
    from portal.messaging.models import Message, Thread

    rng = random.Random(4)
    app = create_app(dict(config, PORTAL_SKIP_KEY_CHECK=True))
    with app.app_context():
        db.create_all()
        ensure_canaries()
        db.session.commit()
        hashed = passwords.hash_password(PASSWORD)
        staff, people = [], []
        for number in range(therapists):
            user = User(id=new_id(), role="therapist", password_hash=hashed,
                        mfa_prompt_dismissed=True, totp_enabled_at=utcnow())
            set_identity(user, name=f"Therapist {number + 1}",
                         email=f"therapist{number + 1}@bench.example")
            user.totp_seed_sealed = mfa.seal_seed(user, TOTP_SEED)
            db.session.add(user)
            staff.append(user.id)
        for number in range(clients):
            user = User(id=new_id(), role="client", password_hash=hashed,
                        mfa_prompt_dismissed=True)
            set_identity(user, name=f"Client {number + 1} Example",
                         email=f"client{number + 1}@bench.example")
            db.session.add(user)
            people.append(user.id)
            if number % 500 == 499:
                db.session.flush()
        db.session.commit()

        pairs = []  # (client, therapist, messages in the conversation)
        per_thread = max(2, messages // (2 * clients))
        assignments = []
        for number, client_id in enumerate(people):
            own = staff[number % therapists]
            assignments.append({"id": new_id(), "client_id": client_id, "therapist_id": own,
                                "created_at": utcnow()})
            pairs += [(client_id, own, per_thread), (client_id, own, per_thread)]
            if own != staff[0]:
                assignments.append({"id": new_id(), "client_id": client_id,
                                    "therapist_id": staff[0], "created_at": utcnow()})
                pairs.append((client_id, staff[0], 1))
        db.session.execute(insert(Assignment.__table__), assignments)
        db.session.commit()

        now = utcnow()
        total = 0
        thread_rows, message_rows = [], []
        bench_threads: list = []
        for index, (client_id, therapist_id, count) in enumerate(pairs):
            if index % 400 == 0:
                _flush(db, insert, Thread, Message, thread_rows, message_rows)
                from portal.crypto import forget_keys
                forget_keys()
                preload_keys({c for c, _, _ in pairs[index:index + 400]})
            thread_id = new_id()
            at = now - timedelta(days=rng.randint(1, 90), minutes=rng.randint(0, 1440))
            senders = [client_id if (n % 2 == 0 or rng.random() < 0.2) else therapist_id
                       for n in range(count)]
            rows = []
            for sender in senders:
                at += timedelta(minutes=rng.randint(5, 600))
                message_id = new_id()
                body = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(1, 12)))
                rows.append({"id": message_id, "thread_id": thread_id, "sender_id": sender,
                             "sender_role": "client" if sender == client_id else "therapist",
                             "created_at": at, "read_at": at + timedelta(minutes=30),
                             "crisis_sealed": seal(client_id, Context("messages", "crisis",
                                                                      message_id), "0"),
                             "body_sealed": seal(client_id, Context("messages", "body",
                                                                    message_id), body)})
            awaiting = None
            unread = 0
            for row in reversed(rows):  # the client's trailing messages await a reply
                if row["sender_id"] != client_id:
                    break
                awaiting, unread = row["created_at"], unread + 1
                row["read_at"] = None
            message_rows += rows
            total += len(rows)
            thread_rows.append({
                "id": thread_id, "client_id": client_id, "therapist_id": therapist_id,
                "created_by_id": client_id, "status": "open", "created_at": rows[0]["created_at"],
                "last_message_at": rows[-1]["created_at"], "message_count": len(rows),
                "client_unread": 0, "therapist_unread": unread, "awaiting_since": awaiting,
                "subject_sealed": seal(client_id, Context("message_threads", "subject",
                                                          thread_id),
                                       f"Conversation {index + 1}"),
                "crisis_sealed": crisis_state.seal_state(client_id, thread_id,
                                                         crisis_state.EMPTY)})
            if client_id == people[0] and count == per_thread:
                bench_threads.append(thread_id)  # the first client's own conversations
        _flush(db, insert, Thread, Message, thread_rows, message_rows)
        db.session.commit()
    return {"threads": len(pairs), "messages": total, "per_thread": per_thread,
            "client_email": "client1@bench.example", "therapist_email": "therapist1@bench.example",
            "read_thread": bench_threads[0], "send_thread": bench_threads[1]}


def _flush(db, insert, thread_model, message_model, thread_rows, message_rows) -> None:
    if thread_rows:
        db.session.execute(insert(thread_model.__table__), thread_rows)
        thread_rows.clear()
    for start in range(0, len(message_rows), 5000):
        db.session.execute(insert(message_model.__table__), message_rows[start:start + 5000])
    message_rows.clear()
    db.session.commit()


# --- serving -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(workdir: Path, module: str, port: int, env: dict, log: Path) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    command = [str(gunicorn), "--workers", "2", "--bind", f"127.0.0.1:{port}", "--chdir",
               str(workdir), "--log-level", "warning", f"{module}:app"]
    process = subprocess.Popen(command, env=env, stdout=log.open("ab"),
                               stderr=subprocess.STDOUT, cwd=workdir)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return process
        except urllib.error.HTTPError:
            return process  # any HTTP answer means it is up
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit(f"{module} did not start; see {log}")


def sign_in(base: str, email: str, totp_seed: str | None) -> tuple[str, str]:
    """Sign in over HTTP; return the Cookie header and a CSRF token for the session."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def token(path: str) -> str:
        html = opener.open(base + path).read().decode()
        return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)

    form = {"csrf_token": token("/sign-in"), "email": email, "password": PASSWORD}
    opener.open(base + "/sign-in", urllib.parse.urlencode(form).encode())
    if totp_seed:
        import pyotp

        form = {"csrf_token": token("/sign-in/verify"), "code": pyotp.TOTP(totp_seed).now()}
        opener.open(base + "/sign-in/verify", urllib.parse.urlencode(form).encode())
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    return cookie, token("/account")


def wrk(url: str, *, workdir: Path, duration: int, connections: int, cookie: str = "",
        body: str | None = None) -> dict:
    """Drive one URL with wrk; return requests per second, p50 and p95 in ms, bad statuses."""
    setup = []
    if cookie:
        setup.append(f'wrk.headers["Cookie"] = "{cookie}"')
    if body is not None:
        setup += ['wrk.method = "POST"', f'wrk.body = "{body}"',
                  'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"']
    script = workdir / f"wrk-{abs(hash(url + (body or '')))}.lua"
    script.write_text(LUA.format(setup="\n".join(setup)))
    threads = str(min(2, connections))
    base = ["wrk", "-t", threads, "-c", str(connections), "-s", str(script), url]
    subprocess.run([*base[:5], "-d", "2s", *base[5:]], capture_output=True, check=True)
    out = subprocess.run([*base[:5], "-d", f"{duration}s", *base[5:]], capture_output=True,
                         text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = int(re.search(r"P50_US (\d+)", out).group(1)) / 1000
    p95 = int(re.search(r"P95_US (\d+)", out).group(1)) / 1000
    bad = int(re.search(r"BAD_STATUS (\d+)", out).group(1))
    return {"rps": rps, "p50_ms": p50, "p95_ms": p95, "bad": bad}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--therapists", type=int, default=50)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="coeo-bench-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    config = portal_config(workdir, database_url)
    config_file = workdir / "config.json"  # for --keep: reopen the seeded database later
    config_file.touch(mode=0o600)
    config_file.write_text(json.dumps(config))
    started = time.perf_counter()
    print(f"Seeding {args.therapists} therapists, {args.clients} clients, "
          f"about {args.messages:,} messages ...", flush=True)
    seeded = seed(config, args.therapists, args.clients, args.messages)
    print(f"  {seeded['threads']:,} conversations, {seeded['messages']:,} messages "
          f"in {time.perf_counter() - started:.0f} s", flush=True)

    (workdir / "bench_portal.py").write_text(APP_MODULE.format(root=str(ROOT)))
    (workdir / "bench_hello.py").write_text(HELLO_MODULE)
    env = {"PATH": os.environ.get("PATH", ""), "PORTAL_ENV": "development",
           "BENCH_PORTAL_CONFIG": json.dumps(config), "PYTHONPATH": str(ROOT)}
    log = workdir / "servers.log"
    portal_port, hello_port = free_port(), free_port()
    servers = [serve(workdir, "bench_portal", portal_port, env, log),
               serve(workdir, "bench_hello", hello_port, env, log)]
    try:
        base = f"http://127.0.0.1:{portal_port}"
        therapist_cookie, _ = sign_in(base, seeded["therapist_email"], TOTP_SEED)
        client_cookie, csrf = sign_in(base, seeded["client_email"], None)
        body = urllib.parse.urlencode({"csrf_token": csrf, "body": "Thank you, see you then."})
        options = {"workdir": workdir, "duration": args.duration,
                   "connections": args.connections}
        results = {
            "bare Flask hello": wrk(f"http://127.0.0.1:{hello_port}/", **options),
            # The portal's floor: no session, no database, no template; a page can't beat it.
            "portal health check": wrk(f"{base}/healthz", **options),
            "signed in, no page": wrk(f"{base}/bench/signed-in", cookie=client_cookie,
                                      **options),
            "signed in + audit row": wrk(f"{base}/bench/audited", cookie=client_cookie,
                                         **options),
            "client inbox (signed in)": wrk(f"{base}/messages", cookie=client_cookie,
                                            **options),
            f"dashboard ({args.clients:,} clients)": wrk(
                f"{base}/dashboard", cookie=therapist_cookie, **options),
            f"thread page ({seeded['per_thread']} messages)": wrk(
                f"{base}/messages/{seeded['read_thread']}", cookie=client_cookie, **options),
            "send a message": wrk(f"{base}/messages/{seeded['send_thread']}/reply",
                                  cookie=client_cookie, body=body, **options),
        }
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=20)

    bare = results["bare Flask hello"]
    print(f"\n{args.connections} connections, {args.duration} s each, gunicorn 2 workers, "
          f"{'SQLite' if database_url.startswith('sqlite') else 'PostgreSQL'}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end\n")
    print(f"{'endpoint':<28}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'x bare req/s':>14}"
          f"{'bad':>6}")
    for name, result in results.items():
        print(f"{name:<28}{result['rps']:>9.0f}{result['p50_ms']:>9.1f}{result['p95_ms']:>9.1f}"
              f"{result['rps'] / bare['rps']:>14.2f}{result['bad']:>6}")
    thread = next(v for k, v in results.items() if k.startswith("thread"))
    dashboard = next(v for k, v in results.items() if k.startswith("dashboard"))
    print("\nTargets:")
    ceiling = results["signed in + audit row"]["rps"] / bare["rps"]
    print(f"  thread page >= 25% of bare req/s: {thread['rps'] / bare['rps']:.0%} "
          f"{'met' if thread['rps'] / bare['rps'] >= TARGETS['thread_ratio'] else 'MISSED'}"
          f" (ceiling: a signed-in request writing only its audit row, {ceiling:.0%})")
    print(f"  thread page p95 < 50 ms: {thread['p95_ms']:.1f} ms "
          f"{'met' if thread['p95_ms'] < TARGETS['thread_p95_ms'] else 'MISSED'}")
    print(f"  dashboard p95 < 100 ms ({args.clients:,} clients): {dashboard['p95_ms']:.1f} ms "
          f"{'met' if dashboard['p95_ms'] < TARGETS['dashboard_p95_ms'] else 'MISSED'}")
    if args.keep:
        print(f"\nWork directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
