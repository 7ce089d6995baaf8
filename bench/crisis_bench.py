"""Benchmark what sealed crisis flags cost: the dashboard of a therapist with 2,000 clients and
one scan of the escalation timer, in-process, each as a ratio to a bare Flask "hello" app
measured in the same run (so the figures mean something on a loaded machine).

Seeds the same world as bench/pages_bench.py (50 therapists, 2,000 clients, therapist 1
assigned to all of them: about 2,080 conversations on their dashboard, 6,000 in all), then
has 20 clients write a crisis-flagged message through the ordinary send service. Times, with
Flask's test client (no sockets, one process, median of --repeat runs):
- the bare app's GET /;
- the dashboard, page 1 and page 40, for therapist 1 (every one of their conversations'
  crisis states is opened, so crisis-first order holds across pages);
- one `escalation.escalate_due` scan in a fresh app context (keys not cached), which opens
  every thread's state in the practice;
- both again "cold", with the process's memory of opened crisis states emptied first (the
  first request after a restart; see portal/messaging/crisis_state.py).

Run from the repository root:
    .venv/bin/python bench/crisis_bench.py
    .venv/bin/python bench/crisis_bench.py --clients 200 --repeat 5
The same file runs against an older checkout (copy it into its bench/) for a before figure.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

CRISIS_TEXT = ("Honestly some days I don't want to be here anymore. I'm safe right now, I just "
               "wanted you to know.")


def _median_ms(run, repeat: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of one run (CPU time is this process's only, so a
    machine busy with other work changes it less than the wall clock)."""
    run()  # warm
    walls, cpus = [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--therapists", type=int, default=50)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=8000)
    parser.add_argument("--flagged", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    import pages_bench
    from flask import Flask
    from sqlalchemy import select

    from portal import create_app
    from portal.accounts.models import User
    from portal.db import utcnow
    from portal.extensions import db
    from portal.messaging import escalation, sending
    from portal.messaging.models import Thread
    from tests.support.auth import signed_in

    workdir = Path(tempfile.mkdtemp(prefix="coeo-crisis-bench-"))
    try:
        config = pages_bench.portal_config(workdir, f"sqlite:///{workdir / 'bench.db'}")
        started = time.perf_counter()
        seeded = pages_bench.seed(config, args.therapists, args.clients, args.messages)
        app = create_app(dict(config, PORTAL_SKIP_KEY_CHECK=True))
        with app.app_context():
            therapist = db.session.scalars(select(User).where(User.role == "therapist")
                                           .order_by(User.created_at)).first()
            rows = db.session.execute(
                select(Thread.id, Thread.client_id).where(Thread.therapist_id == therapist.id)
                .order_by(Thread.created_at).limit(args.flagged)).all()
            for thread_id, client_id in rows:
                sending.reply(db.session.get(User, client_id), thread_id, body=CRISIS_TEXT,
                              notify=False)
            therapist_id = therapist.id
        print(f"Seeded {seeded['threads']:,} conversations, {seeded['messages']:,} messages, "
              f"{len(rows)} flagged, in {time.perf_counter() - started:.0f} s", flush=True)

        bare = Flask("bare")
        bare.get("/")(lambda: "hello")
        bare_client = bare.test_client()
        with app.app_context():
            portal_client = signed_in(app, db.session.get(User, therapist_id))

        def page(path):
            def run():
                response = portal_client.get(path)
                assert response.status_code == 200, (path, response.status_code)
                return response
            return run

        def scan():
            with app.app_context():
                escalation.escalate_due(now=utcnow())

        try:  # since sealed flags: opened states are kept in memory; "cold" empties it first
            from portal.messaging.crisis_state import forget_all
        except ImportError:
            forget_all = None

        def cold(run):
            def cold_run():
                forget_all()
                return run()
            return cold_run

        first = page("/dashboard")().get_data(as_text=True)
        shown_first = first.count("badge--crisis")
        results = {
            "bare Flask hello": _median_ms(lambda: bare_client.get("/"), args.repeat * 20),
            "dashboard page 1": _median_ms(page("/dashboard"), args.repeat),
            "dashboard page 40": _median_ms(page("/dashboard?page=40"), args.repeat),
            "escalation scan": _median_ms(scan, max(3, args.repeat // 3)),
        }
        if forget_all is not None:
            results["dashboard page 1, cold"] = _median_ms(cold(page("/dashboard")),
                                                           args.repeat)
            results["escalation scan, cold"] = _median_ms(cold(scan), max(3, args.repeat // 3))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    bare_wall, bare_cpu = results["bare Flask hello"]
    print(f"\n{args.clients:,} clients; in-process, median of {args.repeat} runs, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print(f"{'what':<26}{'wall ms':>10}{'x bare':>8}{'CPU ms':>10}{'x bare':>8}")
    for name, (wall, cpu) in results.items():
        print(f"{name:<26}{wall:>10.2f}{wall / bare_wall:>8.0f}{cpu:>10.2f}"
              f"{cpu / bare_cpu:>8.0f}")
    print(f"\nCrisis badges on dashboard page 1: {shown_first} (flagged first: expect "
          f"{min(args.flagged, 25)})")


if __name__ == "__main__":
    main()
