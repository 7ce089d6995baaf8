"""Revision d017 converts an existing audit trail: sealed origin, no crisis rows, emergency
rows naming nobody, a keyed chain; and its downgrade gives the old trail back."""

import importlib.util
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from portal.audit.service import canonical, compute_hash, detail_of, origin_of
from portal.crypto.blind_index import pseudonym
from portal.extensions import db
from tests.migrations.test_migrations import MIGRATIONS, bare_app  # noqa: F401 (fixture)

BEFORE, AFTER = "89830c32800d", "b7a1e0c0d017"
REVISION = next(Path(MIGRATIONS).glob(f"versions/*_{AFTER}_*.py"))
_spec = importlib.util.spec_from_file_location("d017", REVISION)
d017 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(d017)

IP, AGENT = "203.0.113.44", "ConversionAgent/3.0 (Test)"


def _dummy(column):
    kind = column["type"].__class__.__name__.lower()
    if "bool" in kind:
        return False
    if "int" in kind:
        return 0
    if "date" in kind or "time" in kind:
        return datetime.now(UTC)
    if "binary" in kind or "blob" in kind or "bytea" in kind:
        return uuid.uuid4().bytes * 2  # unique, for the unique indexes
    if "uuid" in kind or "char(32)" in str(column["type"]).lower():
        return uuid.uuid4()
    return uuid.uuid4().hex[:12]


def _insert(conn, table: str, **values) -> None:
    """A row with the given values and a stand-in for every other required column."""
    for column in inspect(conn).get_columns(table):
        if column["name"] not in values and not column["nullable"] \
                and column.get("default") is None and column.get("autoincrement") is not True:
            values[column["name"]] = _dummy(column)
    names = ", ".join(values)
    marks = ", ".join(f":{name}" for name in values)
    params = {k: (v.hex if isinstance(v, uuid.UUID) and conn.dialect.name == "sqlite" else v)
              for k, v in values.items()}
    conn.execute(text(f"INSERT INTO {table} ({names}) VALUES ({marks})"), params)  # noqa: S608


def _old_trail(conn, people, grant_id, thread_id, message_id) -> list[dict]:
    """Seven events in the old format (plain SHA-256 chain, readable origin)."""
    client, therapist, admin = people
    at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    rows = [
        ("auth.signin.success", client, None, None, None, "info", (IP, AGENT)),
        ("message.sent", client, "message", message_id, client, "info", (IP, AGENT)),
        ("message.crisis_flagged", client, "message", message_id, client, "high", (IP, AGENT)),
        ("message.crisis_acknowledged", therapist, "message", message_id, client, "info",
         ("198.51.100.5", "TherapistAgent")),
        ("message.crisis_escalated", None, "message", message_id, client, "high",
         (None, None)),
        ("emergency.granted", admin, "emergency_grant", grant_id, client, "high",
         ("192.0.2.8", "AdminAgent")),
        ("emergency.thread_viewed", admin, "thread", thread_id, client, "high",
         ("192.0.2.8", "AdminAgent")),
    ]
    out, prev = [], bytes(32)
    for seq, (action, actor, ttype, tid, subject, severity, (ip, agent)) in enumerate(rows, 1):
        row = {"seq": seq, "at": at + timedelta(minutes=seq), "actor_id": actor,
               "actor_role": {client: "client", therapist: "therapist", admin: "admin"}.get(actor),
               "action": action, "target_type": ttype,
               "target_id": str(tid) if tid else None, "subject_id": subject, "ip": ip,
               "user_agent": agent, "outcome": "ok", "severity": severity, "prev_hash": prev}
        row["row_hash"] = prev = d017._sha256(prev, row)
        out.append(row)
    ids = {"actor_id", "subject_id"}
    for row in out:
        values = {k: (v.hex if k in ids and v and conn.dialect.name == "sqlite" else v)
                  for k, v in row.items()}
        conn.execute(text("INSERT INTO audit_events (seq, at, actor_id, actor_role, action, "
                          "target_type, target_id, subject_id, ip, user_agent, outcome, "
                          "severity, prev_hash, row_hash) VALUES (:seq, :at, :actor_id, "
                          ":actor_role, :action, :target_type, :target_id, :subject_id, :ip, "
                          ":user_agent, :outcome, :severity, :prev_hash, :row_hash)"), values)
    conn.execute(text("INSERT INTO audit_head (id, seq, last_hash) VALUES (1, :s, :h)"),
                 {"s": len(out), "h": prev})
    return out


def _rows(conn) -> list[SimpleNamespace]:
    result = conn.execute(text("SELECT * FROM audit_events ORDER BY seq"))
    rows = []
    for row in result.mappings():
        row = dict(row)
        for key in ("actor_id", "subject_id"):
            if row[key] is not None and not isinstance(row[key], uuid.UUID):
                row[key] = uuid.UUID(str(row[key]))
        if isinstance(row["at"], str):
            row["at"] = datetime.fromisoformat(row["at"])
        if row["at"].tzinfo is None:
            row["at"] = row["at"].replace(tzinfo=UTC)
        rows.append(SimpleNamespace(**row))
    return rows


@pytest.fixture
def old_database(bare_app):  # noqa: F811
    upgrade(directory=MIGRATIONS, revision=BEFORE)
    people = [uuid.uuid4() for _ in range(3)]
    grant_id, thread_id, message_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with db.engine.begin() as conn:
        for person, role in zip(people, ("client", "therapist", "admin"), strict=True):
            _insert(conn, "users", id=person, role=role, active=True)
        now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
        _insert(conn, "message_threads", id=thread_id, client_id=people[0],
                therapist_id=people[1], created_by_id=people[0])
        _insert(conn, "messages", id=message_id, thread_id=thread_id, sender_id=people[0],
                sender_role="client")
        _insert(conn, "emergency_access_grants", id=grant_id, admin_id=people[2],
                client_id=people[0], created_at=now, expires_at=now + timedelta(hours=1),
                reason_category="other")
        old = _old_trail(conn, people, grant_id, thread_id, message_id)
    return SimpleNamespace(people=people, grant_id=grant_id, thread_id=thread_id,
                           message_id=message_id, old=old)


def test_the_upgrade_seals_the_origin_folds_crisis_rows_and_keys_the_chain(bare_app,  # noqa: F811
                                                                           old_database):
    client = old_database.people[0]
    upgrade(directory=MIGRATIONS, revision=AFTER)
    with db.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("audit_events")}
        rows = _rows(conn)
        head = conn.execute(text("SELECT seq, last_hash FROM audit_head")).one()
        raw = b"".join(bytes(r.origin_sealed or b"") + bytes(r.detail_sealed or b"")
                       for r in rows)
    assert {"ip", "user_agent"}.isdisjoint(columns)
    assert {"origin_sealed", "detail_sealed"} <= columns
    actions = [r.action for r in rows]
    assert actions == ["auth.signin.success", "message.sent", "thread.viewed",
                       "message.notice_queued", "emergency.granted", "emergency.thread_viewed"]
    assert not any("crisis" in a for a in actions)
    assert {r.severity for r in rows[:4]} == {"info"}
    for needle in (IP, AGENT, "198.51.100.5", "AdminAgent", str(client), client.hex):
        assert needle.encode() not in raw
    # The chain: consecutive, keyed, and the head agrees.
    prev = bytes(32)
    for seq, row in enumerate(rows, 1):
        assert row.seq == seq and bytes(row.prev_hash) == prev
        assert compute_hash(row) == bytes(row.row_hash)
        prev = bytes(row.row_hash)
    assert (head.seq, bytes(head.last_hash)) == (6, prev)
    plain = __import__("hashlib").sha256(bytes(rows[0].prev_hash) + canonical(rows[0]))
    assert plain.digest() != bytes(rows[0].row_hash)  # not the unkeyed formula
    # What was readable is still there for someone with the keys.
    assert origin_of(rows[0]) == (IP, AGENT)
    assert origin_of(rows[3]) == (None, None)
    assert detail_of(rows[1]) == {"crisis": True}
    assert detail_of(rows[2]) == {"crisis_acknowledged": True}
    assert detail_of(rows[3]) == {"kind": "escalation"}
    for row in rows[2:4]:  # about the conversation, as the feature records them now
        assert (row.target_type, row.target_id) == ("thread", str(old_database.thread_id))
    # Emergency rows name nobody: a keyed stand-in, the grant as target, the rest sealed.
    stand_in = pseudonym("emergency-index", client)
    for row in rows[4:]:
        assert row.subject_id == stand_in
        assert (row.target_type, row.target_id) == ("emergency_grant",
                                                    str(old_database.grant_id))
    assert detail_of(rows[5]) == {"client": str(client),
                                  "thread": str(old_database.thread_id)}


def test_the_downgrade_gives_the_old_trail_back(bare_app, old_database):  # noqa: F811
    upgrade(directory=MIGRATIONS, revision=AFTER)
    downgrade(directory=MIGRATIONS, revision=BEFORE)
    with db.engine.connect() as conn:
        rows = _rows(conn)
    got = [(r.seq, r.action, r.actor_id, r.target_type, r.target_id, r.subject_id, r.ip,
            r.user_agent, r.severity) for r in rows]
    thread = ("thread", str(old_database.thread_id))
    want = [(r["seq"], r["action"], r["actor_id"],
             *(thread if "crisis_ac" in r["action"] or "crisis_es" in r["action"]
               else (r["target_type"], r["target_id"])),
             r["subject_id"], r["ip"], r["user_agent"], r["severity"])
            for r in old_database.old]
    assert got == want
    prev = bytes(32)
    for row in rows:
        assert d017._sha256(prev, vars(row)) == bytes(row.row_hash)
        prev = bytes(row.row_hash)


def test_a_broken_old_chain_stops_the_upgrade_and_changes_nothing(bare_app,  # noqa: F811
                                                                 old_database):
    with db.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update")
                     if conn.dialect.name == "sqlite"
                     else text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(text("UPDATE audit_events SET outcome = 'denied' WHERE seq = 2"))
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
    with pytest.raises(SystemExit):  # Flask-Migrate logs the error and exits 1
        upgrade(directory=MIGRATIONS, revision=AFTER)
    tampered = [dict(row) for row in old_database.old]
    tampered[1]["outcome"] = "denied"
    with pytest.raises(RuntimeError, match="broken at event #2: run `portal audit-verify`"):
        d017._check_old_chain(tampered)
    db.session.remove()
    with db.engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        columns = {c["name"] for c in inspect(conn).get_columns("audit_events")}
        count = conn.execute(text("SELECT count(*) FROM audit_events")).scalar()
    assert version == BEFORE and "ip" in columns and count == 7


def test_the_revision_reads_the_detail_it_writes_the_way_the_app_does():
    """The revision writes the chain's on-disk format itself (it may not import the audit
    package); both encodings must agree."""
    row = {"seq": 3, "at": datetime(2026, 1, 2, tzinfo=UTC), "actor_id": uuid.uuid4(),
           "actor_role": "client", "action": "message.sent", "target_type": "message",
           "target_id": "m1", "subject_id": uuid.uuid4(), "origin_sealed": b"\x01\x02",
           "detail_sealed": None, "outcome": "ok", "severity": "info",
           "prev_hash": b"\x00" * 32}
    assert d017._canonical(row, d017.NEW_COLUMNS) == canonical(SimpleNamespace(**row))
    assert json.loads(canonical(SimpleNamespace(**row)))["seq"] == 3
