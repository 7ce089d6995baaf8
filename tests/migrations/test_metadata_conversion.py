"""Revision b7a1e0c0d027 converts sign-in metadata and the outbox both ways: up, readable IP
addresses, user agents, templates and subjects are sealed (sign-in sources become keyed
digests, bodies are framed) and the old columns dropped; down, all of it is opened back into
the old columns. Run with TEST_DATABASE_URL for PostgreSQL."""

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from portal.accounts.models import SignInAttempt, UserSession
from portal.crypto import Context, context_for, open_text, seal
from portal.crypto.blind_index import keyed_digest
from portal.db import new_id
from portal.extensions import db
from portal.mail.models import BODY_BLOCK, OutboxMessage
from portal.mail.service import body_text_of, subject_of, template_of
from portal.policies.models import PolicyAcceptance
from tests.migrations.test_migrations import MIGRATIONS, bare_app  # noqa: F401
from tests.policies.conftest import publish
from tests.support.people import make_user

BEFORE = "b7a1e0c0d017"
MINE = "b7a1e0c0d027"
AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1 MigrationMarker"

SESSIONS = sa.table("user_sessions", sa.column("id", sa.Uuid()), sa.column("user_id", sa.Uuid()),
                    sa.column("token_hash", sa.LargeBinary()),
                    sa.column("created_at", sa.DateTime(timezone=True)),
                    sa.column("last_seen_at", sa.DateTime(timezone=True)),
                    sa.column("ip", sa.String()), sa.column("user_agent", sa.String()),
                    sa.column("mfa_verified", sa.Boolean()))
ATTEMPTS = sa.table("signin_attempts", sa.column("id", sa.Integer()),
                    sa.column("user_id", sa.Uuid()),
                    sa.column("at", sa.DateTime(timezone=True)), sa.column("ip", sa.String()),
                    sa.column("user_agent", sa.String()), sa.column("outcome", sa.String()))
ACCEPTANCES = sa.table("policy_acceptances", sa.column("id", sa.Uuid()),
                       sa.column("user_id", sa.Uuid()), sa.column("version_id", sa.Uuid()),
                       sa.column("slug", sa.String()), sa.column("number", sa.Integer()),
                       sa.column("text_hash", sa.String()),
                       sa.column("accepted_at", sa.DateTime(timezone=True)),
                       sa.column("ip", sa.String()))
OUTBOX = sa.table("mail_outbox", sa.column("id", sa.Uuid()), sa.column("user_id", sa.Uuid()),
                  sa.column("template", sa.String()), sa.column("subject", sa.String()),
                  sa.column("recipient_sealed", sa.LargeBinary()),
                  sa.column("body_text_sealed", sa.LargeBinary()),
                  sa.column("body_html_sealed", sa.LargeBinary()),
                  sa.column("created_at", sa.DateTime(timezone=True)),
                  sa.column("next_attempt_at", sa.DateTime(timezone=True)),
                  sa.column("attempts", sa.Integer()))

CRISIS_SUBJECT = "Urgent: please sign in to the portal now"
CRISIS_TEXT = "Hello,\n\nA message needs you now: https://portal.example.org/sign-in\n"


class _Person:
    def __init__(self, user_id) -> None:
        self.id = user_id


def _people() -> tuple:
    users = (make_user("client", "Alex Rivera"), make_user("client", "Sam Okafor"))
    found = tuple(_Person(user.id) for user in users)
    db.session.commit()
    return found


def _uuid(value) -> uuid.UUID:
    """A raw id as the driver gives it (SQLite: 32 hex characters) as a UUID."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _columns(table: str) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns(table)}


def _old_rows(people) -> dict:
    """Rows as the schema before this revision held them; returns what each should be."""
    alex, sam = people  # ids (reading a user's id would open a transaction: SQLite's lock)
    version = publish("terms")
    version_id, number, text_hash = version.id, version.number, version.text_hash
    db.session.commit()  # on SQLite the session's transaction holds the write lock
    session_id, plain_session, acceptance_id = new_id(), new_id(), new_id()
    mail_id, orphan_id = new_id(), new_id()
    with db.engine.begin() as conn:
        conn.execute(sa.insert(SESSIONS), [
            {"id": session_id, "user_id": alex.id, "token_hash": new_id().bytes * 2,
             "created_at": AT, "last_seen_at": AT, "ip": "198.51.100.7", "user_agent": AGENT,
             "mfa_verified": False},
            {"id": plain_session, "user_id": sam.id, "token_hash": new_id().bytes * 2,
             "created_at": AT, "last_seen_at": AT, "ip": None, "user_agent": None,
             "mfa_verified": False}])
        attempts = [(alex.id, "203.0.113.5", "failure"), (alex.id, "203.0.113.6", "failure"),
                    (alex.id, None, "failure"), (sam.id, "203.0.113.5", "success")]
        for minutes, (user_id, ip, outcome) in enumerate(attempts):
            conn.execute(sa.insert(ATTEMPTS), {
                "user_id": user_id, "at": AT + timedelta(minutes=minutes), "ip": ip,
                "user_agent": AGENT if ip else None, "outcome": outcome})
        conn.execute(sa.insert(ACCEPTANCES), {
            "id": acceptance_id, "user_id": alex.id, "version_id": version_id, "slug": "terms",
            "number": number, "text_hash": text_hash, "accepted_at": AT,
            "ip": "192.0.2.99"})
    # Bodies sealed as the outbox did before framing.
    text_blob = seal(alex.id, Context("mail_outbox", "body_text_sealed", mail_id), CRISIS_TEXT)
    html_blob = seal(alex.id, Context("mail_outbox", "body_html_sealed", mail_id),
                     f"<p>{CRISIS_TEXT}</p>")
    address = seal(alex.id, Context("mail_outbox", "recipient_sealed", mail_id),
                   "alex@example.org")
    db.session.commit()
    with db.engine.begin() as conn:
        conn.execute(sa.insert(OUTBOX), [
            {"id": mail_id, "user_id": alex.id, "template": "crisis_escalation",
             "subject": CRISIS_SUBJECT, "recipient_sealed": address,
             "body_text_sealed": text_blob, "body_html_sealed": html_blob, "created_at": AT,
             "next_attempt_at": AT, "attempts": 0},
            # No account to open it with: it could never be delivered.
            {"id": orphan_id, "user_id": None, "template": "new_message",
             "subject": "You have a new secure message", "recipient_sealed": b"\x02x",
             "body_text_sealed": b"\x02x", "body_html_sealed": None, "created_at": AT,
             "next_attempt_at": AT, "attempts": 3}])
    return {"session": session_id, "plain_session": plain_session, "attempts": attempts,
            "acceptance": acceptance_id, "mail": mail_id, "orphan": orphan_id}


def _raw(table: str, order: str = "id") -> list[dict]:
    with db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            sa.text(f"SELECT * FROM {table} ORDER BY {order}"))]  # noqa: S608


def _check_sealed(people, made) -> None:
    alex, _ = people
    for table in ("user_sessions", "signin_attempts", "policy_acceptances"):
        assert {"ip", "user_agent"} & _columns(table) == set(), table
    assert {"template", "subject"} & _columns("mail_outbox") == set()
    for table in ("user_sessions", "signin_attempts", "policy_acceptances", "mail_outbox"):
        for row in _raw(table):
            for value in row.values():
                blob = bytes(value) if isinstance(value, bytes | memoryview) \
                    else str(value).encode()
                for word in (b"203.0.113", b"198.51.100.7", b"192.0.2.99", b"MigrationMarker",
                             b"crisis", b"Urgent"):
                    assert word not in blob, (table, word)
    session = db.session.get(UserSession, made["session"])
    assert open_text(alex.id, context_for(UserSession.ip_sealed, session.id),
                     session.ip_sealed) == "198.51.100.7"
    assert open_text(alex.id, context_for(UserSession.user_agent_sealed, session.id),
                     session.user_agent_sealed) == AGENT
    plain = db.session.get(UserSession, made["plain_session"])
    assert plain.ip_sealed is None and plain.user_agent_sealed is None
    attempts = list(db.session.scalars(sa.select(SignInAttempt).order_by(SignInAttempt.at)))
    assert [(a.user_id, a.outcome) for a in attempts] == [
        (user_id, outcome) for user_id, _, outcome in made["attempts"]]
    for attempt, (user_id, ip, _) in zip(attempts, made["attempts"], strict=True):
        opened = None if attempt.ip_sealed is None else open_text(
            user_id, context_for(SignInAttempt.ip_sealed, attempt.id), attempt.ip_sealed)
        assert opened == ip
        assert attempt.source_digest == (None if ip is None else keyed_digest(
            "signin-source", user_id.bytes + ip.encode()))
    # One address, two accounts: two unrelated digests.
    assert attempts[0].source_digest != attempts[3].source_digest
    acceptance = db.session.get(PolicyAcceptance, made["acceptance"])
    assert open_text(alex.id, context_for(PolicyAcceptance.ip_sealed, acceptance.id),
                     acceptance.ip_sealed) == "192.0.2.99"
    mail = db.session.get(OutboxMessage, made["mail"])
    assert template_of(mail) == "crisis_escalation" and subject_of(mail) == CRISIS_SUBJECT
    assert body_text_of(mail) == CRISIS_TEXT
    assert len(mail.body_text_sealed) > BODY_BLOCK  # framed like new mail
    assert db.session.get(OutboxMessage, made["orphan"]) is None
    db.session.commit()


def _check_open(people, made) -> None:
    alex, _ = people
    sessions = {_uuid(row["id"]): row for row in _raw("user_sessions")}
    assert (sessions[made["session"]]["ip"], sessions[made["session"]]["user_agent"]) == (
        "198.51.100.7", AGENT)
    assert sessions[made["plain_session"]]["ip"] is None
    attempts = _raw("signin_attempts", "at")
    assert [(row["id"], row["ip"], row["outcome"]) for row in attempts] == [
        (number, ip, outcome) for number, (_, ip, outcome) in enumerate(made["attempts"], 1)]
    assert [row["user_agent"] for row in attempts] == [AGENT, AGENT, None, AGENT]
    (acceptance,) = _raw("policy_acceptances")
    assert acceptance["ip"] == "192.0.2.99"
    (mail,) = _raw("mail_outbox")
    assert (mail["template"], mail["subject"]) == ("crisis_escalation", CRISIS_SUBJECT)
    assert {"template_sealed", "subject_sealed"} & _columns("mail_outbox") == set()
    assert open_text(alex.id, Context("mail_outbox", "body_text_sealed", _uuid(mail["id"])),
                     mail["body_text_sealed"]) == CRISIS_TEXT  # unframed again


def test_metadata_and_outbox_convert_up_and_down_with_data(bare_app):  # noqa: F811
    upgrade(directory=MIGRATIONS, revision=BEFORE)
    people = _people()
    made = _old_rows(people)
    db.session.remove()

    upgrade(directory=MIGRATIONS, revision=MINE)
    _check_sealed(people, made)
    db.session.remove()

    downgrade(directory=MIGRATIONS, revision=BEFORE)
    _check_open(people, made)
    db.session.remove()

    # And up again: the same values, sealed again.
    upgrade(directory=MIGRATIONS, revision=MINE)
    made["orphan"] = new_id()  # deleted the first time
    _check_sealed(people, made)
    db.session.remove()
    if db.engine.dialect.name == "sqlite":
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []


def test_a_downgraded_database_takes_new_attempts_after_the_old_ones(bare_app):  # noqa: F811
    """The integer ids come back in time order, and the next insert continues after them."""
    upgrade(directory=MIGRATIONS, revision=BEFORE)
    people = _people()
    _old_rows(people)
    db.session.remove()
    upgrade(directory=MIGRATIONS, revision=MINE)
    downgrade(directory=MIGRATIONS, revision=BEFORE)
    with db.engine.begin() as conn:
        conn.execute(sa.insert(ATTEMPTS), {"user_id": people[0].id, "at": AT + timedelta(days=1),
                                           "ip": "192.0.2.1", "user_agent": None,
                                           "outcome": "failure"})
    assert [row["id"] for row in _raw("signin_attempts")] == [1, 2, 3, 4, 5]
    db.session.remove()
