"""Benchmark "Download my record": a client with 1,000 messages in 20 conversations and 50
attachments (20 MB), against the same with 100 messages, and against a bare Flask app that
streams the same 20 MB as a ZIP (no database, no decryption, no PDF) in the same run.

Each size is exported in a worker process of its own (so its peak memory is its own): the
confirmation page is posted with the password, then the download is read through the Flask
test client chunk by chunk, as a browser would.

    .venv/bin/python bench/export_bench.py            # 100 and 1,000 messages
    .venv/bin/python bench/export_bench.py 100 1000 3000

Reported: time to the first byte, total time, the worker's peak memory (RSS high-water
mark, and the Python heap's peak during the export by tracemalloc), and messages per second
of PDF rendering. Memory must stay flat from 100 to 1,000 messages: the peaks may differ by
at most FLAT_MB.
"""

import base64
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CONVERSATIONS = 20
ATTACHMENTS = 50
ATTACHMENT_BYTES = 20 * 1024 * 1024 // ATTACHMENTS
FLAT_MB = 15.0
PASSWORD = "paper boats on a slow river"  # noqa: S105  (the bench's own demo account)


def key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode("ascii")


def config(workdir: Path) -> dict:
    return {
        "ENV_NAME": "development", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{workdir}/bench.db",
        "INSTANCE_PATH": str(workdir), "SECRET_KEY": key() + key(),
        "PORTAL_MASTER_KEYS": "bench:" + key(), "PORTAL_INDEX_KEY": key(),
        "RATELIMIT_ENABLED": False, "SESSION_IDLE_MINUTES": 600, "WTF_CSRF_ENABLED": True,
        "MAIL_SEND_AFTER_COMMIT": False, "PORTAL_BASE_URL": "http://127.0.0.1",
        "RECORD_EXPORTS_PER_DAY": 100,
    }


def seed(app, messages: int) -> None:
    """A client, a therapist, CONVERSATIONS conversations sharing `messages` messages, and
    ATTACHMENTS attachments of ATTACHMENT_BYTES random bytes each (rows written directly)."""
    from datetime import timedelta

    from portal.accounts.models import Assignment
    from portal.crypto import context_for, ensure_canaries, seal
    from portal.db import new_id, utcnow
    from portal.extensions import db
    from portal.messaging import crisis_state
    from portal.messaging.models import (
        Attachment,
        Message,
        Thread,
        attachment_name_context,
        body_context,
    )
    from tests.support.people import make_user

    with app.app_context():
        db.create_all()
        ensure_canaries()
        therapist = make_user("therapist", "Colleen Øvergaard", mfa_on=False)
        client = make_user("client", "Zoë Nguyễn-Ōtsuka", password=PASSWORD)
        db.session.add(Assignment(client_id=client.id, therapist_id=therapist.id))
        start = utcnow() - timedelta(days=400)
        body = ("Thank you for today. I tried the breathing exercise twice and it helped a "
                "little; the evenings are still hard. " * 3)
        attached = written = 0
        for c in range(CONVERSATIONS):
            thread = Thread(id=new_id(), client_id=client.id, therapist_id=therapist.id,
                            created_by_id=client.id, created_at=start + timedelta(days=c),
                            last_message_at=start, message_count=0)
            thread.subject_sealed = seal(client.id, thread.subject_context(),
                                         f"Week {c + 1}: how things are going")
            crisis_state.ensure(thread)
            db.session.add(thread)
            db.session.flush()
            count = messages // CONVERSATIONS + (1 if c < messages % CONVERSATIONS else 0)
            for m in range(count):
                sender = client if m % 2 == 0 else therapist
                message = Message(id=new_id(), thread_id=thread.id, sender_id=sender.id,
                                  sender_role=sender.role,
                                  created_at=start + timedelta(days=c, minutes=m),
                                  read_at=start + timedelta(days=c, minutes=m + 5))
                message.body_sealed = seal(client.id, body_context(message.id),
                                           f"{m + 1}. {body}")
                message.crisis_sealed = crisis_state.seal_message_flag(client.id, message.id,
                                                                       False)
                db.session.add(message)
                written += 1
                if attached < ATTACHMENTS and written % max(1, messages // ATTACHMENTS) == 0:
                    attachment = Attachment(id=new_id(), message_id=message.id, kind="jpeg",
                                            size=ATTACHMENT_BYTES)
                    attachment.name_sealed = seal(client.id,
                                                  attachment_name_context(attachment.id),
                                                  f"photo {attached + 1}.jpg")
                    attachment.content_sealed = seal(
                        client.id, context_for(Attachment.content_sealed, attachment.id),
                        b"\xff\xd8\xff\xe0" + os.urandom(ATTACHMENT_BYTES - 4))
                    db.session.add(attachment)
                    attached += 1
            thread.message_count = count
            db.session.commit()
        db.session.remove()
        db.engine.dispose()


def worker(workdir: Path, messages: int) -> dict:
    """Seed, then export once through the test client; report times and memory."""
    from portal import create_app
    from tests.support.auth import inject_session
    from tests.support.people import csrf_from

    app = create_app(config(workdir))
    seed(app, messages)
    with app.app_context():
        from sqlalchemy import select

        from portal.accounts.models import User
        from portal.extensions import db

        client_user = db.session.scalar(select(User).where(User.role == "client"))
        db.session.expunge(client_user)
        browser = inject_session(app.test_client(), client_user)
        db.session.remove()
    # warm up: templates, fonts, the first decryption
    _export(browser, csrf_from)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    _, total, size, count = _export(browser, csrf_from)
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    first_plain, total_plain, _, _ = _export(browser, csrf_from)  # without tracemalloc
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pdf_rate = _pdf_rate(app)
    return {"messages": messages, "first_byte_ms": first_plain * 1000,
            "total_s": total_plain, "zip_mb": size / 1e6, "entries": count,
            "heap_peak_mb": heap_peak / 1e6, "rss_peak_mb": rss,
            "rss_before_export_mb": rss_before, "pdf_messages_per_s": pdf_rate,
            "traced_total_s": total}


def _export(browser, csrf_from) -> tuple[float, float, int, int]:
    page = browser.get("/record/export")
    ready = browser.post("/record/export", data={
        "csrf_token": csrf_from(page.get_data(as_text=True)), "current_password": PASSWORD})
    link = re.search(r'href="([^"]+/download\?token=[^"]+)"', ready.get_data(as_text=True))
    if not link:
        raise SystemExit(f"no download link: {ready.status_code}")
    started = time.perf_counter()
    response = browser.get(link.group(1), buffered=False)
    first = None
    size = 0
    with tempfile.TemporaryFile() as out:
        for chunk in response.response:
            if first is None:
                first = time.perf_counter() - started
            size += len(chunk)
            out.write(chunk)
        response.close()
        total = time.perf_counter() - started
        out.seek(0)
        with zipfile.ZipFile(out) as archive:
            count = len(archive.namelist())
            if archive.testzip() is not None:
                raise SystemExit("the ZIP did not read back")
    return first or 0.0, total, size, count


def _pdf_rate(app) -> float:
    """Messages per second of conversation PDF rendering (1,000 messages, parts of 500)."""
    from datetime import UTC, datetime

    from portal.records.conversation_pdf import PART_SIZE, ConversationDocument
    from portal.records.export_data import ConversationInfo, MessageItem

    now = datetime.now(UTC)
    info = ConversationInfo(id=None, number=1, subject="Week 1", subject_unavailable=False,
                            therapist_id=None, therapist_name="Colleen Øvergaard",
                            started_at=now, status="open", closed_at=None, to_practice=False,
                            message_count=1000)
    body = "Thank you for today. The evenings are still hard, but a little better. " * 3
    with app.app_context():
        started = time.perf_counter()
        for part in range(1000 // PART_SIZE):
            document = ConversationDocument(info, client_name="Zoë", made_at=now, part=part + 1)
            for n in range(PART_SIZE):
                document.add(MessageItem(id=None, sender_id=None, sender="Zoë Nguyễn-Ōtsuka",
                                         sender_role="client", created_at=now, read_at=now,
                                         crisis_flag=False, body=f"{n}. {body}",
                                         unavailable=False))
            document.output()
        return 1000 / (time.perf_counter() - started)


BARE = '''
import io, sys, time, zipfile, os
from flask import Flask, Response, stream_with_context
app = Flask(__name__)
DATA = [os.urandom({size}) for _ in range({count})]

class Sink:
    def __init__(self): self.parts = []
    def write(self, b): self.parts.append(bytes(b)); return len(b)
    def flush(self): pass

@app.route("/")
def zipped():
    def chunks():
        sink = Sink()
        z = zipfile.ZipFile(sink, "w")
        for n, data in enumerate(DATA):
            with z.open(f"files/{{n}}.jpg", "w") as f:
                for i in range(0, len(data), 65536):
                    f.write(data[i:i + 65536])
                    yield b"".join(sink.parts); sink.parts.clear()
        z.close()
        yield b"".join(sink.parts)
    return Response(stream_with_context(chunks()), content_type="application/zip")

c = app.test_client()
c.get("/").get_data()
t = time.perf_counter()
r = c.get("/", buffered=False)
first = None
for chunk in r.response:
    if first is None: first = time.perf_counter() - t
r.close()
print(first, time.perf_counter() - t)
'''


def bare() -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", BARE.format(size=ATTACHMENT_BYTES,
                                                           count=ATTACHMENTS)],
                         capture_output=True, text=True, check=True)
    first, total = (float(x) for x in out.stdout.split())
    return first, total


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(worker(Path(folder), int(sys.argv[2]))))
        return
    sizes = [int(a) for a in sys.argv[1:]] or [100, 1000]
    bare_first, bare_total = bare()
    results = []
    for messages in sizes:
        out = subprocess.run([sys.executable, __file__, "--worker", str(messages)],
                             capture_output=True, text=True, cwd=ROOT)
        if out.returncode:
            print(out.stderr[-3000:])
            raise SystemExit(out.returncode)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    megabytes = ATTACHMENTS * ATTACHMENT_BYTES / 1e6
    print(f"bare Flask streaming the same {ATTACHMENTS} files ({megabytes:.0f} MB) as a ZIP: "
          f"first byte {bare_first * 1000:.1f} ms, total {bare_total:.2f} s")
    print(f"{'messages':>9}{'first ms':>10}{'x bare':>8}{'total s':>9}{'x bare':>8}"
          f"{'ZIP MB':>8}{'heap MB':>9}{'RSS MB':>8}{'PDF msg/s':>11}")
    for r in results:
        print(f"{r['messages']:>9}{r['first_byte_ms']:>10.1f}"
              f"{r['first_byte_ms'] / (bare_first * 1000):>8.1f}{r['total_s']:>9.2f}"
              f"{r['total_s'] / bare_total:>8.1f}{r['zip_mb']:>8.1f}{r['heap_peak_mb']:>9.1f}"
              f"{r['rss_peak_mb']:>8.0f}{r['pdf_messages_per_s']:>11.0f}")
    heaps = [r["heap_peak_mb"] for r in results]
    flat = max(heaps) - min(heaps) <= FLAT_MB
    print(f"memory flat from {sizes[0]} to {sizes[-1]} messages (heap peaks within "
          f"{FLAT_MB:.0f} MB): {'met' if flat else 'MISSED'} "
          f"({min(heaps):.1f} to {max(heaps):.1f} MB)")
    if not flat:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
