"""Revision b7a1e0c0d047 converts emergency grants and estimate PDF digests both ways, with
data: down, each grant's client id comes back readable with its reason sealed under the
client's key again, and each PDF's plain SHA-256 is restored; up, the grant is indexed and
sealed under the administrator's key and each PDF's keyed digest is computed, after checking
the old SHA-256. A PDF that does not match its SHA-256 stops the upgrade, changing nothing.
Run with TEST_DATABASE_URL for PostgreSQL."""

import hashlib
import uuid

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, select, text

from portal.accounts.models import User
from portal.crypto import Context, open_text
from portal.crypto.blind_index import keyed_digest
from portal.crypto.rotation import shred
from portal.estimates import content, drafting, issuing
from portal.estimates.models import GoodFaithEstimate
from portal.extensions import db
from portal.messaging import emergency, sending
from portal.messaging.models import EmergencyGrant
from portal.practice import today as practice_today
from tests.estimates.conftest import complete_draft
from tests.messaging.conftest import assign
from tests.migrations.test_migrations import MIGRATIONS, _diff, bare_app  # noqa: F401
from tests.support.people import make_user

BEFORE = "b7a1e0c0d037"
REASON = "Her sister called: she has not been heard from since Friday, therapist away"
OTHER_REASON = "A court order for the record arrived this morning, reviewed by counsel"
UNREADABLE = "unreadable: data key shredded"


def _uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _columns(table: str) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns(table)}


def _issue(therapist, client):
    draft = drafting.create_draft(therapist, client)
    drafting.save_draft(therapist, draft, complete_draft(practice_today()))
    return issuing.issue(therapist, draft.id)


def _practice() -> dict:
    """Two clients, an admin with two grants (one ended, one live for each client), an issued
    estimate each, a draft, and a client whose key was shredded (their PDF never opens)."""
    client, other = make_user("client", "Pat Example"), make_user("client", "Sam Example")
    gone = make_user("client", "Lee Gone")
    therapist, admin = make_user("therapist", "Dr T"), make_user("admin", "Morgan Admin")
    for person in (client, other, gone):
        assign(person, therapist)
    sending.start_thread(client, counterpart_id=therapist.id, subject="Tonight",
                         body="Private words", notify=False)
    first = emergency.grant(admin, client_id=client.id, reason=REASON, category="safety")
    emergency.end(admin, first.id)
    second = emergency.grant(admin, client_id=client.id, reason=REASON, category="safety")
    third = emergency.grant(admin, client_id=other.id, reason=OTHER_REASON, category="legal")
    issued = {c.id: _issue(therapist, c) for c in (client, other, gone)}
    pdfs = {c_id: content.open_pdf(e) for c_id, e in issued.items()}
    draft = drafting.create_draft(therapist, client)
    db.session.commit()
    shred(gone.id)
    return {"client": client.id, "other": other.id, "gone": gone.id, "admin": admin.id,
            "grants": {first.id: (client.id, REASON), second.id: (client.id, REASON),
                       third.id: (other.id, OTHER_REASON)},
            "estimates": {e.id: (c_id, pdfs[c_id]) for c_id, e in issued.items()},
            "draft": draft.id}


def _old_grants() -> dict:
    with db.engine.connect() as conn:
        return {_uuid(r.id): r for r in conn.execute(text(
            "SELECT id, admin_id, client_id, reason_sealed FROM emergency_access_grants"))}


def _old_estimates() -> dict:
    with db.engine.connect() as conn:
        return {_uuid(r.id): r for r in conn.execute(text(
            "SELECT id, client_id, status, pdf_sha256 FROM good_faith_estimates"))}


def _check_old_format(data: dict) -> None:
    assert {"client_index", "client_sealed"}.isdisjoint(_columns("emergency_access_grants"))
    assert "client_id" in _columns("emergency_access_grants")
    assert "pdf_digest" not in _columns("good_faith_estimates")
    grants = _old_grants()
    assert set(grants) == set(data["grants"])
    for grant_id, (client_id, reason) in data["grants"].items():
        row = grants[grant_id]
        assert _uuid(row.client_id) == client_id
        # Sealed under the client's key again, as the old code opens it.
        assert open_text(client_id, Context("emergency_access_grants", "reason", grant_id),
                         bytes(row.reason_sealed)) == reason
    estimates = _old_estimates()
    for estimate_id, (client_id, pdf) in data["estimates"].items():
        expected = UNREADABLE if client_id == data["gone"] else hashlib.sha256(pdf).hexdigest()
        assert estimates[estimate_id].pdf_sha256 == expected
    assert estimates[data["draft"]].pdf_sha256 is None
    indexes = {i["name"]: i["column_names"]
               for i in inspect(db.engine).get_indexes("emergency_access_grants")}
    assert indexes["ix_emergency_access_grants_client"] == ["client_id"]
    checks = {c["name"]: c["sqltext"]
              for c in inspect(db.engine).get_check_constraints("good_faith_estimates")}
    assert "pdf_sha256" in checks["ck_good_faith_estimates_issued_is_complete"]


def _check_new_format(app, data: dict, *, converted: bool = True) -> None:
    assert "client_id" not in _columns("emergency_access_grants")
    assert "pdf_sha256" not in _columns("good_faith_estimates")
    assert [c for c in _diff() if "emergency" in repr(c) or "pdf_" in repr(c)] == []
    with app.test_request_context():
        for grant_id, (client_id, reason) in data["grants"].items():
            row = db.session.get(EmergencyGrant, grant_id)
            assert bytes(row.client_index) == keyed_digest("emergency-index", client_id.bytes)
            assert emergency.client_of(row) == client_id
            assert open_text(data["admin"], row.reason_context(), row.reason_sealed) == reason
        for estimate_id, (client_id, pdf) in data["estimates"].items():
            estimate = db.session.get(GoodFaithEstimate, estimate_id)
            if client_id == data["gone"]:  # its PDF can never be checked again
                assert estimate.pdf_digest == UNREADABLE or not converted
                with pytest.raises(content.EstimateUnavailable):
                    content.open_pdf(estimate)
                continue
            assert estimate.pdf_digest == content.pdf_digest(estimate_id, pdf)
            assert content.open_pdf(estimate) == pdf  # the download's check passes
        assert db.session.get(GoodFaithEstimate, data["draft"]).pdf_digest is None
        db.session.remove()


def test_grants_and_pdf_digests_convert_down_and_up_with_data(bare_app):  # noqa: F811
    upgrade(directory=MIGRATIONS)
    with bare_app.test_request_context():
        data = _practice()
        db.session.remove()
    _check_new_format(bare_app, data, converted=False)

    downgrade(directory=MIGRATIONS, revision=BEFORE)
    _check_old_format(data)

    upgrade(directory=MIGRATIONS)
    _check_new_format(bare_app, data)
    with bare_app.test_request_context():  # the pages that start from a grant still work
        admin = db.session.get(EmergencyGrant, next(iter(data["grants"]))).admin_id
        views = emergency.grants_of(db.session.get(User, admin))
        assert sorted(v.client_name for v in views) == ["Pat Example", "Pat Example",
                                                         "Sam Example"]
        assert {v.reason for v in views} == {REASON, OTHER_REASON}
        db.session.remove()


def test_a_pdf_that_does_not_match_its_sha256_stops_the_upgrade(bare_app, capfd):  # noqa: F811
    upgrade(directory=MIGRATIONS)
    with bare_app.test_request_context():
        data = _practice()
        db.session.remove()
    downgrade(directory=MIGRATIONS, revision=BEFORE)
    estimate_id, (_, pdf) = next((e, v) for e, v in data["estimates"].items()
                                         if v[0] == data["client"])
    bad = hashlib.sha256(pdf + b"tampered").hexdigest()
    table_id = estimate_id.hex if db.engine.dialect.name == "sqlite" else estimate_id
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE good_faith_estimates SET pdf_sha256 = :bad WHERE id = :id"),
                     {"bad": bad, "id": table_id})

    capfd.readouterr()
    with pytest.raises(SystemExit):  # flask_migrate logs the revision's error, then exits
        upgrade(directory=MIGRATIONS)
    said = " ".join(capfd.readouterr())
    assert (f"estimate {estimate_id}: its frozen PDF does not match the SHA-256 stored when "
            "it was issued") in said
    assert "Nothing was changed" in said
    db.session.remove()
    # Nothing changed: still the previous revision, its columns and its values.
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == BEFORE
    assert "client_index" not in _columns("emergency_access_grants")
    assert "pdf_digest" not in _columns("good_faith_estimates")
    assert _old_estimates()[estimate_id].pdf_sha256 == bad
    assert {g: _uuid(r.client_id) for g, r in _old_grants().items()} == {
        g: c for g, (c, _) in data["grants"].items()}

    # Put right, the upgrade goes through.
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE good_faith_estimates SET pdf_sha256 = :good WHERE id = :id"),
                     {"good": hashlib.sha256(pdf).hexdigest(), "id": table_id})
    upgrade(directory=MIGRATIONS)
    _check_new_format(bare_app, data)


def test_an_empty_database_converts_both_ways(bare_app):  # noqa: F811
    upgrade(directory=MIGRATIONS)
    downgrade(directory=MIGRATIONS, revision=BEFORE)
    assert "client_id" in _columns("emergency_access_grants")
    upgrade(directory=MIGRATIONS)
    assert [c for c in _diff() if "emergency" in repr(c) or "pdf_" in repr(c)] == []
    with db.engine.connect() as conn:
        assert conn.execute(select(EmergencyGrant.id)).all() == []
