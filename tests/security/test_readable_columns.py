"""Every column a copy of the database shows without the keys is listed, with why, in
docs/stolen-database.md; a new readable column fails here until someone decides it must be.

Sealed columns (`*_sealed`) say nothing without the master keys. Everything else is readable
by whoever holds the file, keyed digests included (they say when two rows hold the same value,
nothing more), so each is named in the document.
"""

import re
from pathlib import Path

from portal.extensions import db

DOC = Path(__file__).resolve().parents[2] / "docs" / "stolen-database.md"
SECTIONS = ("## Keyed digests", "## What stays readable")
_ONE = re.compile(r"`([a-z_]+)\.([a-z_]+)`")
_MANY = re.compile(r"`([a-z_]+)\.\{([a-z_, ]+)\}`")


def _listed() -> set[tuple[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    found: set[tuple[str, str]] = set()
    for heading in SECTIONS:
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        found |= {(table, column) for table, column in _ONE.findall(section)}
        for table, columns in _MANY.findall(section):
            found |= {(table, column.strip()) for column in columns.split(",")}
    return found


def _readable(app) -> set[tuple[str, str]]:
    return {(table.name, column.name) for table in db.metadata.tables.values()
            for column in table.columns if not column.name.endswith("_sealed")}


def test_every_readable_column_is_listed_with_a_reason(app):
    readable = _readable(app)
    assert len(readable) > 150  # the walk found the schema
    missing = sorted(f"{t}.{c}" for t, c in readable - _listed())
    assert missing == [], "readable without the keys and not in docs/stolen-database.md"


def test_the_list_names_no_column_that_does_not_exist_or_is_sealed(app):
    stale = sorted(f"{t}.{c}" for t, c in _listed() - _readable(app))
    assert stale == [], "listed in docs/stolen-database.md but sealed or gone"


def test_no_column_that_must_stay_sealed_is_readable(app):
    """The values issue 17 found readable in a stolen copy are gone from the readable set."""
    readable = _readable(app)
    for name in ("user_sessions.ip", "user_sessions.user_agent", "signin_attempts.ip",
                 "signin_attempts.user_agent", "audit_events.ip", "audit_events.user_agent",
                 "policy_acceptances.ip", "messages.crisis_flag",
                 "message_threads.crisis_flagged_at", "message_threads.crisis_escalate_at",
                 "message_threads.crisis_acknowledged_at", "message_threads.crisis_message_id",
                 "emergency_access_grants.client_id", "good_faith_estimates.pdf_sha256",
                 "mail_outbox.template", "mail_outbox.subject",
                 "good_faith_estimates.total_cents", "gfe_billed_amounts.amount_cents",
                 "gfe_billed_amounts.bill_date"):
        assert tuple(name.split(".")) not in readable, name
