"""The action catalogue: every action a client's access log can show is declared once, by the
feature that records it, and the audit package imports no feature to word it."""

import ast
import re
from pathlib import Path

import pytest

from portal.audit import catalogue

ROOT = Path(__file__).resolve().parents[2]
# Families of actions recorded about a client's record by staff (the log lists staff only).
CLIENT_RECORD = ("thread.", "message.", "attachment.", "emergency.", "estimate.",
                 "assignment.", "client.", "crypto.decrypt_failure", "record.", "record_request.",
                 "conversation.", "disclosure.", "legal_hold.", "retention.", "care.",
                 "minor.", "guardianship.", "guardian_share.")


def _recorded_actions() -> set[str]:
    found = set()
    for path in (ROOT / "portal").rglob("*.py"):
        found.update(re.findall(r'(?:record\(|action=)\s*"([a-z_]+\.[a-z_.]+)"',
                                path.read_text()))
    return found


def test_every_action_about_a_clients_record_is_declared(app):
    recorded = {a for a in _recorded_actions() if a.startswith(CLIENT_RECORD)}
    assert len(recorded) >= 25, sorted(recorded)  # the scan still finds the actions
    assert recorded - set(catalogue.declared()) == set()


def test_an_action_is_declared_once(app):
    catalogue.declare("thread.viewed", "Read {target}")  # the same again: harmless
    with pytest.raises(ValueError, match="already declared"):
        catalogue.declare("thread.viewed", "Looked at {target}")


def test_an_undeclared_action_reads_as_work_on_the_record():
    assert catalogue.action("nobody.declared.this").words == "Worked with your record"


def test_the_access_log_and_catalogue_import_no_feature():
    features = ("portal.accounts", "portal.messaging", "portal.estimates", "portal.policies",
                "portal.records", "portal.ops", "portal.admin")
    for name in ("access_log.py", "catalogue.py"):
        tree = ast.parse((ROOT / "portal" / "audit" / name).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names}
        assert not {m for m in imported if m and m.startswith(features)}, name
