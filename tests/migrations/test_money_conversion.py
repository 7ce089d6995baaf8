"""Revision b7a1e0c0d057 converts estimate money both ways, with data: down, each estimate
gets its readable total back (the sum of its sealed document's lines) and each bill its
readable amount; up, the total column is dropped (the document holds it) and each amount is
sealed under the estimate's client's key. Issued estimates (frozen by the ORM guard) convert
too, a shredded client's bills get a value that never opens, and a stored total that is not
the document's sum stops the upgrade, changing nothing. Run with TEST_DATABASE_URL for
PostgreSQL."""

import uuid

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, select, text
from sqlalchemy import table as sql_table

from portal.crypto import Context, open_text
from portal.crypto.rotation import shred
from portal.estimates import billing, content, drafting, issuing, totals
from portal.estimates.models import GoodFaithEstimate
from portal.extensions import db
from portal.practice import today as practice_today
from tests.estimates.conftest import complete_draft
from tests.messaging.conftest import assign
from tests.migrations.test_migrations import MIGRATIONS, _diff, bare_app  # noqa: F401
from tests.support.people import make_user

BEFORE = "b7a1e0c0d047"
ODD = 123457  # an amount that appears nowhere else
OTHER = 98765


def _uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _columns(table: str) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns(table)}


def _checks(table: str) -> dict[str, str]:
    return {c["name"]: c["sqltext"] for c in inspect(db.engine).get_check_constraints(table)}


def _issue(therapist, client):
    draft = drafting.create_draft(therapist, client)
    drafting.save_draft(therapist, draft, complete_draft(practice_today(),
                                                         period_start=practice_today()))
    return issuing.issue(therapist, draft.id)


def _practice() -> dict:
    """An issued estimate with two bills (one voided) and one for another provider, a draft,
    and a client whose key was shredded (issued, with a bill)."""
    client, gone = make_user("client", "Pat Example"), make_user("client", "Lee Gone")
    therapist = make_user("therapist", "Dr T")
    for person in (client, gone):
        assign(person, therapist)
    issued = _issue(therapist, client)
    today = practice_today()
    billing.record_bill(therapist, issued, provider_position=0, amount_cents=ODD,
                        bill_date=today)
    billing.record_bill(therapist, issued, provider_position=1, amount_cents=OTHER,
                        bill_date=today)
    billing.record_bill(therapist, issued, provider_position=0, amount_cents=5,
                        bill_date=today)
    summary = billing.summary_of(issued, content.open_document(issued))
    voided = next(b for b in summary.bills if b.amount_cents == 5)
    billing.void_bill(therapist, issued, voided.id)
    draft = drafting.create_draft(therapist, client)
    drafting.save_draft(therapist, draft, complete_draft(practice_today()))
    lost = _issue(therapist, gone)
    billing.record_bill(therapist, lost, provider_position=0, amount_cents=777,
                        bill_date=today)
    bills = {b.id: b.amount_cents for b in billing.summary_of(
        issued, content.open_document(issued)).bills}
    lost_bill = billing.summary_of(lost, content.open_document(lost)).bills[0].id
    data = {"day": today, "client": client.id, "gone": gone.id, "issued": issued.id,
            "draft": draft.id, "lost": lost.id, "bills": bills, "lost_bill": lost_bill,
            "voided": voided.id,
            "totals": {issued.id: totals.total_of(issued), draft.id: totals.total_of(draft),
                       lost.id: totals.total_of(lost)}}
    db.session.commit()
    shred(gone.id)
    return data


def _raw(table: str) -> list[dict]:
    with db.engine.connect() as conn:
        rows = conn.execute(select(text("*")).select_from(sql_table(table)))
        return [dict(r._mapping) for r in rows]


def _check_old_format(data: dict) -> None:
    assert "total_cents" in _columns("good_faith_estimates")
    assert "amount_cents" in _columns("gfe_billed_amounts")
    assert "amount_sealed" not in _columns("gfe_billed_amounts")
    assert "total_cents >= 0" in _checks("good_faith_estimates")[
        "ck_good_faith_estimates_total_not_negative"]
    assert "amount_cents >= 0" in _checks("gfe_billed_amounts")[
        "ck_gfe_billed_amounts_amount_not_negative"]
    stored = {_uuid(r["id"]): r["total_cents"] for r in _raw("good_faith_estimates")}
    assert stored[data["issued"]] == data["totals"][data["issued"]] == 4550_00
    assert stored[data["draft"]] == data["totals"][data["draft"]] == 4550_00
    assert stored[data["lost"]] == 0  # its document can never open again
    rows = {_uuid(r["id"]): r for r in _raw("gfe_billed_amounts")}
    assert {b: rows[b]["amount_cents"] for b in data["bills"]} == data["bills"]
    assert sorted(data["bills"].values()) == [5, OTHER, ODD]
    assert rows[data["lost_bill"]]["amount_cents"] == 0
    day = data["day"]
    assert {str(r["bill_date"])[:10] for r in rows.values()} == {day.isoformat()}
    assert "bill_date_sealed" not in _columns("gfe_billed_amounts")


def _check_new_format(app, data: dict) -> None:
    assert "total_cents" not in _columns("good_faith_estimates")
    assert "amount_cents" not in _columns("gfe_billed_amounts")
    assert "bill_date" not in _columns("gfe_billed_amounts")
    assert [c for c in _diff() if "total" in repr(c) or "amount" in repr(c)] == []
    for table in ("good_faith_estimates", "gfe_billed_amounts"):
        assert not any("total_cents" in sql or "amount_cents" in sql
                       for sql in _checks(table).values())
        for row in _raw(table):  # a thief's SELECT: no amount, as a number or as text
            for value in row.values():
                assert value not in (ODD, OTHER, 4550_00, 777), (table, row)
                if isinstance(value, str):
                    assert str(ODD) not in value and str(OTHER) not in value
            if table == "gfe_billed_amounts":  # no date of the bill either (recorded_at,
                assert data["day"] not in row.values()  # when it was typed in, stays)
    raw_bills = {_uuid(r["id"]): r for r in _raw("gfe_billed_amounts")}
    lost = raw_bills[data["lost_bill"]]  # a shredded client's amount and date never open
    assert bytes(lost["amount_sealed"]) == bytes(lost["bill_date_sealed"]) == b""
    with app.test_request_context():
        for bill_id, amount in data["bills"].items():
            row = raw_bills[bill_id]
            assert open_text(data["client"], Context("gfe_billed_amounts", "amount", bill_id),
                             bytes(row["amount_sealed"])) == str(amount)
            assert open_text(data["client"],
                             Context("gfe_billed_amounts", "bill_date", bill_id),
                             bytes(row["bill_date_sealed"])) == data["day"].isoformat()
        issued = db.session.get(GoodFaithEstimate, data["issued"])
        summary = billing.summary_of(issued, content.open_document(issued))
        assert {b.id: b.amount_cents for b in summary.bills} == data["bills"]
        assert [p.billed_cents for p in summary.providers] == [ODD, OTHER]
        assert [p.first_bill_date for p in summary.providers] == [data["day"]] * 2
        assert totals.total_of(issued) == 4550_00
        assert totals.total_of(db.session.get(GoodFaithEstimate, data["draft"])) == 4550_00
        assert totals.total_of(db.session.get(GoodFaithEstimate, data["lost"])) is None
        db.session.remove()


def test_estimate_money_converts_down_and_up_with_data(bare_app):  # noqa: F811
    upgrade(directory=MIGRATIONS)
    with bare_app.test_request_context():
        data = _practice()
        db.session.remove()
    downgrade(directory=MIGRATIONS, revision=BEFORE)
    _check_old_format(data)
    upgrade(directory=MIGRATIONS)
    _check_new_format(bare_app, data)
    downgrade(directory=MIGRATIONS, revision=BEFORE)  # and once more, from converted rows
    _check_old_format(data)


def test_a_total_that_is_not_the_documents_sum_stops_the_upgrade(bare_app, capfd):  # noqa: F811
    upgrade(directory=MIGRATIONS)
    with bare_app.test_request_context():
        data = _practice()
        db.session.remove()
    downgrade(directory=MIGRATIONS, revision=BEFORE)
    table_id = data["issued"].hex if db.engine.dialect.name == "sqlite" else data["issued"]
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE good_faith_estimates SET total_cents = 1 WHERE id = :id"),
                     {"id": table_id})
    capfd.readouterr()
    with pytest.raises(SystemExit):  # flask_migrate logs the revision's error, then exits
        upgrade(directory=MIGRATIONS)
    said = " ".join(capfd.readouterr())
    assert f"estimate {data['issued']}: its stored total (1) is not the sum" in said
    assert "Nothing was changed" in said
    db.session.remove()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == BEFORE
    assert "amount_sealed" not in _columns("gfe_billed_amounts")
    assert {_uuid(r["id"]): r["amount_cents"] for r in _raw("gfe_billed_amounts")}[
        next(iter(data["bills"]))] in (5, OTHER, ODD)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE good_faith_estimates SET total_cents = :t WHERE id = :id"),
                     {"t": 4550_00, "id": table_id})
    upgrade(directory=MIGRATIONS)
    _check_new_format(bare_app, data)


def test_an_empty_database_converts_both_ways(bare_app):  # noqa: F811
    upgrade(directory=MIGRATIONS)
    downgrade(directory=MIGRATIONS, revision=BEFORE)
    assert "total_cents" in _columns("good_faith_estimates")
    upgrade(directory=MIGRATIONS)
    assert "amount_sealed" in _columns("gfe_billed_amounts")
