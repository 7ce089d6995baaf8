"""Download my record (#15): the ZIP read back, the manifest's hashes, the JSON against its
documented schema, access (404 for anyone else's), the fresh confirmation, the day's limit,
the audit and the notice email, an undecryptable item, hostile names, a dropped connection.

The right of access to one's own record: 45 CFR 164.524 (a copy in the form asked for, when
it is readily producible; an accounting of disclosures, 164.528).
"""

import hashlib
import io
import json
import re
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from portal.accounts.models import Assignment
from portal.audit import AuditEvent
from portal.db import utcnow
from portal.estimates import content, drafting, issuing
from portal.estimates.models import GoodFaithEstimate
from portal.extensions import db
from portal.messaging import sending
from portal.messaging.models import Attachment, Message
from portal.practice import today as practice_today
from portal.records import export
from portal.records.export_zip import is_safe_name, safe_component
from tests.estimates.conftest import complete_draft
from tests.messaging.conftest import PDF, PNG
from tests.support.auth import inject_session
from tests.support.outbox import outbox
from tests.support.people import PASSWORD, csrf_from, make_user

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DOC = ROOT / "docs" / "record-export.md"


@pytest.fixture(autouse=True)
def _isolated(isolated_requests):
    """Requests run in their own app context, as in production."""


def _assign(client, therapist):
    db.session.add(Assignment(client_id=client.id, therapist_id=therapist.id))
    db.session.commit()


class Record:
    """A client with two conversations (Unicode names, attachments), two estimates (one
    superseded), and a therapist; another client with a conversation of their own."""

    def __init__(self, messages: int = 6):
        self.therapist = make_user("therapist", "Colleen Øvergaard")
        self.other_therapist = make_user("therapist", "Kristen Example")
        self.client = make_user("client", "Zoë Nguyễn-Ōtsuka")
        self.other = make_user("client", "Sam Okafor")
        _assign(self.client, self.therapist)
        _assign(self.other, self.other_therapist)
        self.thread, _ = sending.start_thread(
            self.client, counterpart_id=self.therapist.id, subject="Sleep & “worry” — notes",
            body="Hello Colleen, ça va? Здравствуйте.",
            files=[("../../etc/passwd.png", PNG), ("scan.pdf", PDF)], notify=False)
        for n in range(messages - 1):
            sender = self.therapist if n % 2 == 0 else self.client
            sending.reply(sender, self.thread.id, body=f"Message {n + 2}: thank you 🌱",
                          notify=False)
        self.second, _ = sending.start_thread(
            self.therapist, counterpart_id=self.client.id, subject="../Second/..\\one",
            body="A file for you", files=[("C:\\Users\\me\\..\\notes.txt", b"plain words\n")],
            notify=False)
        sending.start_thread(self.other, counterpart_id=self.other_therapist.id,
                             subject="Not yours", body="Someone else's words", notify=False)
        first = drafting.create_draft(self.therapist, self.client)
        drafting.save_draft(self.therapist, first, complete_draft(practice_today()))
        self.estimate = issuing.issue(self.therapist, first.id)
        db.session.commit()


@pytest.fixture
def rec(app) -> Record:
    return Record()


def _signed_in(app, user):
    return inject_session(app.test_client(), user)


def _confirm(client, path="/record/export", password=PASSWORD, code=None):
    page = client.get(path)
    data = {"csrf_token": csrf_from(page.get_data(as_text=True)), "current_password": password}
    if code is not None:
        data["code"] = code
    return client.post(path, data=data)


def _download(client, path="/record/export", **confirm):
    ready = _confirm(client, path, **confirm)
    assert ready.status_code == 200, ready.get_data(as_text=True)
    link = re.search(r'href="([^"]+/download\?token=[^"]+)"', ready.get_data(as_text=True))
    assert link, "the ready page links the download"
    return client.get(link.group(1).replace("&amp;", "&"))


def _zip(response) -> zipfile.ZipFile:
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(response.get_data()))


class SchemaError(AssertionError):
    pass


KEYWORDS = {"$schema", "$id", "title", "description", "type", "properties", "required",
            "items", "enum", "additionalProperties", "pattern", "minimum", "format"}
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def validate(value, schema: dict, where: str = "$") -> None:
    """A JSON Schema (draft 2020-12) validator for the keywords the documented schema uses;
    the project has no jsonschema dependency, so the test refuses any other keyword."""
    unknown = set(schema) - KEYWORDS
    if unknown:
        raise SchemaError(f"{where}: keywords this validator does not know: {unknown}")
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any((k == "integer" and isinstance(value, int) and not isinstance(value, bool))
                 or (k != "integer" and isinstance(value, TYPES[k])
                     and not (k != "boolean" and isinstance(value, bool)))
                 for k in kinds)
        if not ok:
            raise SchemaError(f"{where}: {value!r} is not {kinds}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(f"{where}: {value!r} not in {schema['enum']}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"],
                                                                        value):
        raise SchemaError(f"{where}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and isinstance(value, int) and value < schema["minimum"]:
        raise SchemaError(f"{where}: {value!r} < {schema['minimum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                raise SchemaError(f"{where}: missing {key!r}")
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                validate(item, properties[key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                raise SchemaError(f"{where}: unexpected {key!r}")
    if isinstance(value, list) and "items" in schema:
        for n, item in enumerate(value):
            validate(item, schema["items"], f"{where}[{n}]")


def _schema() -> dict:
    text = SCHEMA_DOC.read_text()
    block = re.search(r"```json schema\n(.*?)```", text, re.S)
    assert block, "docs/record-export.md holds the JSON Schema in a ```json schema block"
    return json.loads(block.group(1))


def _read(archive: zipfile.ZipFile, suffix: str) -> bytes:
    names = [n for n in archive.namelist() if n.endswith(suffix)]
    assert len(names) == 1, (suffix, archive.namelist())
    return archive.read(names[0])


# --- what is inside --------------------------------------------------------------------------

def test_the_zip_holds_every_message_attachment_and_estimate_identical(app, rec):
    """45 CFR 164.524: the client's own copy, complete; the estimates byte-identical."""
    response = _download(_signed_in(app, rec.client))
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    archive = _zip(response)
    names = archive.namelist()
    assert all(is_safe_name(n) for n in names), names
    data = json.loads(_read(archive, "/record.json"))

    # every message, in order, with sender, time and read state
    messages = db.session.execute(
        select(Message.id, Message.thread_id).order_by(Message.created_at, Message.id)).all()
    mine = {str(m.id) for m in messages if m.thread_id in (rec.thread.id, rec.second.id)}
    exported = [m for c in data["conversations"] for m in c["messages"]]
    assert {m["id"] for m in exported} == mine
    assert len(exported) == 7
    first = data["conversations"][0]["messages"][0]
    assert first["body"] == "Hello Colleen, ça va? Здравствуйте."
    assert first["sender"]["name"] == "Zoë Nguyễn-Ōtsuka"
    assert first["read_at"] is not None  # the therapist replied, so read it
    assert data["conversations"][1]["messages"][0]["read_at"] is None  # never opened
    assert "Someone else's words" not in json.dumps(data, ensure_ascii=False)

    # every attachment, identical, under its conversation's folder
    files = [a for m in exported for a in m["attachments"]]
    assert len(files) == 3
    top = names[0].split("/")[0]
    contents = {a["name"]: archive.read(f"{top}/{a['file']}") for a in files}
    assert contents["passwd.png"] == PNG
    assert contents["scan.pdf"] == PDF
    assert contents["notes.txt"] == b"plain words\n"
    for conversation in data["conversations"]:
        for message in conversation["messages"]:
            for a in message["attachments"]:
                assert a["file"].startswith(conversation["folder"] + "/files/")

    # every estimate PDF, byte-identical to the frozen copy, SHA-256 in the manifest
    estimate = db.session.get(GoodFaithEstimate, rec.estimate.id)
    (item,) = data["estimates"]
    pdf = archive.read(f"{top}/{item['file']}")
    assert pdf == content.open_pdf(estimate)  # the one that passed the keyed check
    assert hashlib.sha256(pdf).hexdigest() == item["pdf_sha256"]
    assert item["pdf_sha256"] != estimate.pdf_digest  # the stored digest is keyed
    manifest = _read(archive, "/MANIFEST.txt").decode()
    assert f"{item['pdf_sha256']}  " in manifest

    # readable copies: a PDF and a web page per conversation
    for conversation in data["conversations"]:
        assert conversation["pdf"] and all(
            archive.read(f"{top}/{p}").startswith(b"%PDF") for p in conversation["pdf"])
        page = archive.read(f"{top}/{conversation['html']}").decode()
        assert "<!doctype html>" in page
    html = archive.read(f"{top}/{data['conversations'][0]['html']}").decode()
    assert "Zoë Nguyễn-Ōtsuka" in html and "Read " in html
    assert "Not read yet" in archive.read(f"{top}/{data['conversations'][1]['html']}").decode()
    assert "Здравствуйте" in html and "🌱" in html


def test_every_hash_in_the_manifest_matches_its_file(app, rec):
    archive = _zip(_download(_signed_in(app, rec.client)))
    manifest = _read(archive, "/MANIFEST.txt").decode()
    listed = re.findall(r"^([0-9a-f]{64})  +(\d+)  (.+)$", manifest, re.M)
    top = archive.namelist()[0].split("/")[0]
    expected = {n for n in archive.namelist() if not n.endswith("/MANIFEST.txt")}
    assert {f"{top}/{path}" for _, _, path in listed} == expected
    for digest, size, path in listed:
        content = archive.read(f"{top}/{path}")
        assert hashlib.sha256(content).hexdigest() == digest, path
        assert len(content) == int(size), path
    assert "Made:" in manifest and "nothing is missing" in manifest


def test_record_json_validates_against_the_documented_schema(app, rec):
    archive = _zip(_download(_signed_in(app, rec.client)))
    data = json.loads(_read(archive, "/record.json"))
    validate(data, _schema())
    assert data["account"]["name"] == "Zoë Nguyễn-Ōtsuka"
    assert data["account"]["therapists"][0]["name"] == "Colleen Øvergaard"
    for broken in ({**data, "conversations": "none"}, {**data, "surprise": 1},
                   {k: v for k, v in data.items() if k != "account"}):
        with pytest.raises(SchemaError):
            validate(broken, _schema())


def test_attachment_names_cannot_escape_their_folder(app, rec):
    archive = _zip(_download(_signed_in(app, rec.client)))
    for info in archive.infolist():
        assert is_safe_name(info.filename), info.filename
        assert ".." not in info.filename.split("/")
        assert not info.filename.startswith("/") and "\\" not in info.filename
    # and the cleaning itself, whatever the input
    for hostile in ("../../x", "..", "/etc/passwd", "C:\\a\\b", "a/../../b", "\x00\x1f.", "",
                    "." * 300, "ok/.."):
        part = safe_component(hostile)
        assert part and "/" not in part and part not in (".", "..") and len(part) <= 80
        assert is_safe_name(f"top/{part}")


def test_an_undecryptable_message_is_listed_and_the_export_completes(app, rec):
    victim = db.session.scalars(select(Message).where(Message.thread_id == rec.thread.id)
                                .order_by(Message.created_at.desc())).first()
    db.session.execute(update(Message).where(Message.id == victim.id)
                       .values(body_sealed=b"\x01not a sealed value at all"))
    attachment = db.session.scalars(select(Attachment).where(
        Attachment.message_id == db.session.scalar(
            select(Message.id).where(Message.thread_id == rec.second.id)))).first()
    db.session.execute(update(Attachment).where(Attachment.id == attachment.id)
                       .values(content_sealed=b"\x01broken"))
    db.session.commit()
    archive = _zip(_download(_signed_in(app, rec.client)))
    data = json.loads(_read(archive, "/record.json"))
    missing = {(u["what"], u["id"]) for u in data["unavailable"]}
    assert ("message", str(victim.id)) in missing
    assert ("attachment", str(attachment.id)) in missing
    manifest = _read(archive, "/MANIFEST.txt").decode()
    assert f"message {victim.id}" in manifest and f"attachment {attachment.id}" in manifest
    (body,) = [m for c in data["conversations"] for m in c["messages"]
               if m["id"] == str(victim.id)]
    assert body["unavailable"] is True and body["body"] is None
    assert not [n for n in archive.namelist() if n.endswith("notes.txt")]
    failures = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "crypto.decrypt_failure"))
    assert failures == 2  # each reported once, not once per pass over the messages


# --- who may, and how ------------------------------------------------------------------------

def test_a_client_cannot_export_anyone_elses_record(app, rec):
    client = _signed_in(app, rec.client)
    for path in (f"/record/clients/{rec.other.id}/export",
                 f"/record/clients/{rec.client.id}/export",
                 f"/record/clients/{rec.other.id}/export/download?token=x"):
        assert client.get(path).status_code == 404, path
    # the download link only ever serves the signed-in client's own record
    ready = _confirm(client)
    assert ready.status_code == 200
    other = _signed_in(app, rec.other)
    token = re.search(r"token=([^\"&]+)", ready.get_data(as_text=True)).group(1)
    assert other.get(f"/record/export/download?token={token}").status_code == 410


def test_staff_without_an_assignment_get_404_and_admins_cannot_export(app, rec):
    """Minimum necessary (45 CFR 164.502(b)): only the client or an assigned therapist."""
    stranger = _signed_in(app, rec.other_therapist)
    assert stranger.get(f"/record/clients/{rec.client.id}/export").status_code == 404
    assert stranger.get(f"/record/conversations/{rec.thread.id}/pdf").status_code == 404
    admin = make_user("admin", "Morgan Admin")
    staff = _signed_in(app, admin)
    assert staff.get(f"/record/clients/{rec.client.id}/export").status_code == 404
    assert staff.get("/record/export").status_code == 404


def test_a_wrong_password_is_refused_inline_and_counts_as_a_failure(app, rec):
    client = _signed_in(app, rec.client)
    response = _confirm(client, password="not my password")
    assert response.status_code == 422
    assert "That is not your current password." in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(type(rec.client), rec.client.id).failed_signins == 1
    assert client.get("/record/export/download?token=guess").status_code == 410


def test_two_step_sign_in_on_needs_a_code_too(app):
    client_user = make_user("client", "Robin Two-Step", mfa_on=True)
    client = _signed_in(app, client_user)
    assert _confirm(client).status_code == 422  # no code
    assert _confirm(client, code="000000").status_code == 422
    response = _download(client, code=client_user.totp.now())
    assert _zip(response).namelist()


def test_the_token_works_once(app, rec):
    client = _signed_in(app, rec.client)
    ready = _confirm(client)
    link = re.search(r'href="([^"]+/download\?token=[^"]+)"', ready.get_data(as_text=True))
    assert client.get(link.group(1)).status_code == 200
    again = client.get(link.group(1))
    assert again.status_code == 410
    assert "Confirm again" in again.get_data(as_text=True)


def test_export_is_audited_emailed_without_content_and_limited_to_three_a_day(app, rec,
                                                                            monkeypatch):
    client = _signed_in(app, rec.client)
    for _ in range(3):
        _zip(_download(client))
    events = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "record.exported")).all()
    assert len(events) == 3
    assert {(e.actor_id, e.subject_id, e.target_type) for e in events} == {
        (rec.client.id, rec.client.id, "user")}
    mails = outbox("record_exported")
    assert len(mails) == 3
    assert mails[0].subject == "A copy of your coeo portal record was made"
    # the fourth in 24 hours: a 429 with words, and no fourth event
    refused = _confirm(client)
    assert refused.status_code == 429
    assert "Please try again tomorrow" in refused.get_data(as_text=True)
    assert client.get("/record/export").status_code == 429
    # 24 hours on, it works again (the audit trail is append-only: move the clock instead)
    later = utcnow() + timedelta(hours=24, minutes=1)
    monkeypatch.setattr(export, "utcnow", lambda: later)
    assert export.exports_left(rec.client, rec.client) == 3


def test_the_email_says_only_that_an_export_was_made(app, rec):
    from portal.mail.service import render

    with app.test_request_context():
        text, html = render("record_exported", when="Wed Dec 2, 2026, 9:14 am")
    assert "was downloaded on Wed Dec 2, 2026, 9:14 am" in text
    assert "never sent by email" in text
    for body in (text, html):
        assert "Zoë" not in body and "/record/export" not in body


def test_a_therapist_exports_an_assigned_clients_record_and_the_client_sees_it(app, rec):
    staff = _signed_in(app, rec.therapist)
    page = staff.get(f"/record/clients/{rec.client.id}/export")
    assert page.status_code == 200
    assert "Zoë Nguyễn-Ōtsuka" in page.get_data(as_text=True)
    response = _download(staff, f"/record/clients/{rec.client.id}/export",
                         code=rec.therapist.totp.now())
    data = json.loads(_read(_zip(response), "/record.json"))
    assert data["made_by"]["id"] == str(rec.therapist.id)
    event = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "record.exported_by_staff")).one()
    assert (event.actor_id, event.subject_id) == (rec.therapist.id, rec.client.id)
    assert not outbox("record_exported")
    log = _signed_in(app, rec.client).get("/account/access-log").get_data(as_text=True)
    assert "Downloaded a copy of your whole record" in log
    assert "Opened the page for making a copy of your record" in log  # the confirmation page


def test_a_therapist_exports_one_conversation_as_a_pdf(app, rec):
    staff = _signed_in(app, rec.therapist)
    response = staff.get(f"/record/conversations/{rec.thread.id}/pdf")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.get_data().startswith(b"%PDF")
    assert response.headers["Cache-Control"] == "no-store"
    event = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "conversation.exported")).one()
    assert (event.subject_id, event.target_id) == (rec.client.id, str(rec.thread.id))
    log = _signed_in(app, rec.client).get("/account/access-log").get_data(as_text=True)
    assert "as a PDF" in log
    assert _signed_in(app, rec.client).get(
        f"/record/conversations/{rec.thread.id}/pdf").status_code == 404


def test_the_account_page_offers_the_download(app, rec):
    page = _signed_in(app, rec.client).get("/account").get_data(as_text=True)
    assert "Download my record" in page and "/record/export" in page
    staff_page = _signed_in(app, rec.therapist).get("/account").get_data(as_text=True)
    assert "Download my record" not in staff_page


# --- streaming and failure ------------------------------------------------------------------

def test_the_response_streams_and_a_dropped_connection_leaves_nothing_behind(app, rec):
    """The first bytes go out before the ZIP is finished; closing the response part-way
    (the browser went away) releases the database connection, and a retry works."""
    client = _signed_in(app, rec.client)
    ready = _confirm(client)
    link = re.search(r'href="([^"]+/download\?token=[^"]+)"', ready.get_data(as_text=True))
    response = client.get(link.group(1), buffered=False)
    assert response.status_code == 200
    assert response.is_streamed
    chunks = iter(response.response)
    first = next(chunks)
    assert first.startswith(b"PK\x03\x04")
    response.close()  # GeneratorExit inside the export
    pool = db.engine.pool
    if hasattr(pool, "checkedout"):
        assert pool.checkedout() <= 1  # only the test's own session, if any
    db.session.rollback()
    # nothing is kept: the token is gone, no partial file anywhere, and a retry completes
    assert client.get(link.group(1)).status_code == 410
    assert _zip(_download(client)).testzip() is None


def test_the_export_reads_messages_in_batches(app, monkeypatch):
    """Never all the messages at once: a conversation longer than a batch is read a batch
    at a time, and the PDF splits into parts of PART_SIZE."""
    from portal.records import conversation_pdf, export_data

    monkeypatch.setattr(export_data, "BATCH", 3)
    monkeypatch.setattr(export_data, "_FIRST", export_data._FIRST.limit(3))
    monkeypatch.setattr(export_data, "_AFTER", export_data._AFTER.limit(3))
    monkeypatch.setattr(export, "PART_SIZE", 4)
    monkeypatch.setattr(conversation_pdf, "PART_SIZE", 4)
    rec = Record(messages=10)
    archive = _zip(_download(_signed_in(app, rec.client)))
    data = json.loads(_read(archive, "/record.json"))
    assert len(data["conversations"][0]["messages"]) == 10
    assert len(data["conversations"][0]["pdf"]) == 3  # 4 + 4 + 2
    assert [m["body"] for m in data["conversations"][0]["messages"]][1] == (
        "Message 2: thank you 🌱")


def test_the_conversation_pdf_shows_each_message_with_sender_time_and_read_state(app, rec):
    """Readable PDF in the estimates' typography: DejaVu Sans embedded, Unicode names."""
    from pypdf import PdfReader

    archive = _zip(_download(_signed_in(app, rec.client)))
    data = json.loads(_read(archive, "/record.json"))
    top = archive.namelist()[0].split("/")[0]
    reader = PdfReader(io.BytesIO(archive.read(f"{top}/{data['conversations'][0]['pdf'][0]}")))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Zoë Nguyễn-Ōtsuka" in text and "Colleen Øvergaard (Therapist)" in text
    assert "Здравствуйте" in text
    assert text.count("Sent ") == 6 and "Read " in text
    assert "saved as" in text and "passwd.png" in text
    fonts = {str(font.get("/BaseFont", "")) for page in reader.pages
             for font in page["/Resources"]["/Font"].get_object().values()
             for font in [font.get_object()]}
    assert any("DejaVuSans" in f for f in fonts), fonts


def test_what_the_print_font_cannot_show_is_put_into_words_not_a_question_mark(app):
    """An emoji or a line in Hebrew must not print as "?", which could change the meaning."""
    from portal.records.conversation_pdf import OTHER_SCRIPT, printable

    assert printable("I feel 😢 today 👍🏽") == "I feel [crying face] today [thumbs up sign]"
    assert printable("❤️") == "[heavy black heart]"
    assert printable("before שלום עולם, after") == f"before {OTHER_SCRIPT}, after"
    assert printable("Zoë Nguyễn-Ōtsuka, Здравствуйте?") == "Zoë Nguyễn-Ōtsuka, Здравствуйте?"
    assert "?" not in printable("日本語 and 😢")
