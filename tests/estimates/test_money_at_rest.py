"""Money at rest (#17): an estimate's total and its billed amounts are not readable without
the keys. The total lives only in the sealed document; each bill's amount is sealed under the
estimate's client's key. The pages open them (and the $400 rule sums them in Python), and the
bill page's statement count does not grow with its bills."""

import os
import pathlib
import uuid
from dataclasses import replace

from sqlalchemy import select, text
from sqlalchemy import table as sql_table

from portal.crypto import Context, open_text
from portal.estimates import billing, content, totals
from portal.estimates.drafts import DraftLine
from portal.estimates.models import BilledAmount
from portal.extensions import db
from portal.practice import today as practice_today
from tests.estimates.conftest import complete_draft, sign_in
from tests.messaging.conftest import StatementCounter

# Unusual figures, so that finding one anywhere means it leaked.
BILL = 123457  # $1,234.57
FIRST_LINE_UNIT = 123_47  # makes the total 123.47 + 25 x 160 + 2 x 175 = $4,473.47
TOTAL = 447347


def _issued(practice):
    draft = complete_draft(practice_today(), period_start=practice_today())
    lines = (replace(draft.lines[0], unit_cents=FIRST_LINE_UNIT), *draft.lines[1:])
    return practice.issued(period_start=practice_today(), lines=lines)


def _forms(cents: int) -> list[str]:
    dollars, rest = divmod(cents, 100)
    return [str(cents), f"{dollars}.{rest:02d}", f"{dollars:,}.{rest:02d}"]


def _raw_rows(table: str) -> list[dict]:
    with db.engine.connect() as conn:
        rows = conn.execute(select(text("*")).select_from(sql_table(table)))
        return [dict(r._mapping) for r in rows]


def test_raw_rows_and_the_sqlite_file_hold_no_total_and_no_amount(app, practice):
    estimate = _issued(practice)
    assert totals.total_of(estimate) == TOTAL
    billing.record_bill(practice.therapist, estimate, provider_position=0, amount_cents=BILL,
                        bill_date=practice_today())
    client_id = practice.client.id
    db.session.commit()
    db.session.remove()

    for table in ("good_faith_estimates", "gfe_billed_amounts"):
        rows = _raw_rows(table)
        assert rows, table
        columns = set(rows[0])
        assert not {"total_cents", "amount_cents", "bill_date"} & columns, columns
        for row in rows:
            for name, value in row.items():
                assert value not in (TOTAL, BILL), (table, name)
                if isinstance(value, str):
                    assert not any(f in value for f in _forms(TOTAL) + _forms(BILL)), name
    [bill] = _raw_rows("gfe_billed_amounts")
    blob = bytes(bill["amount_sealed"])
    assert len(blob) > 32  # a padded seal, not the figure
    bill_id = bill["id"] if isinstance(bill["id"], uuid.UUID) else uuid.UUID(str(bill["id"]))
    assert open_text(client_id, Context("gfe_billed_amounts", "amount", bill_id),
                     blob) == str(BILL)

    if db.engine.dialect.name == "sqlite":
        path = db.engine.url.database
        data = b"".join(pathlib.Path(p).read_bytes() for p in (path, path + "-wal")
                        if os.path.exists(p))
        assert len(data) > 10_000
        for needle in _forms(TOTAL) + _forms(BILL):
            assert needle.encode() not in data, needle


def test_the_pages_open_the_total_and_the_bills(app, practice):
    estimate = _issued(practice)
    billing.record_bill(practice.therapist, estimate, provider_position=0, amount_cents=BILL,
                        bill_date=practice_today())
    staff = sign_in(app.test_client(), practice.therapist)
    listed = staff.get("/estimates/practice").get_data(as_text=True)
    assert "$4,473.47" in listed
    shown = staff.get(f"/estimates/{estimate.id}").get_data(as_text=True)
    assert "$1,234.57" in shown
    client = sign_in(app.test_client(), practice.client)
    assert "$4,473.47" in client.get("/estimates/").get_data(as_text=True)


def test_the_400_rule_sums_opened_amounts_per_provider(app, practice):
    estimate = _issued(practice)
    document = content.open_document(estimate)
    estimated = document.provider_totals()[document.providers[0].npi]
    for amount in (estimated, 200_00, 200_00):  # $400 over, in two bills
        billing.record_bill(practice.therapist, estimate, provider_position=0,
                            amount_cents=amount, bill_date=practice_today())
    db.session.expire_all()
    summary = billing.summary_of(estimate, content.open_document(estimate))
    first = summary.providers[0]
    assert (first.billed_cents, first.overage_cents, first.level) == (
        estimated + 400_00, 400_00, "dispute_eligible")
    assert estimate.billing_level == "dispute_eligible"


def test_the_bill_page_does_not_grow_with_its_bills(app, practice):
    estimate = _issued(practice)
    staff = sign_in(app.test_client(), practice.therapist)
    path = f"/estimates/{estimate.id}"

    def count() -> int:
        assert staff.get(path).status_code == 200
        with StatementCounter(db.engine) as counter:
            assert staff.get(path).status_code == 200
        return counter.count

    billing.record_bill(practice.therapist, estimate, provider_position=0, amount_cents=1,
                        bill_date=practice_today())
    one = count()
    for amount in range(2, 7):
        billing.record_bill(practice.therapist, estimate, provider_position=amount % 2,
                            amount_cents=amount, bill_date=practice_today())
    assert len(db.session.scalars(select(BilledAmount)).all()) == 6
    assert count() == one


def test_a_list_of_many_clients_opens_their_totals_with_one_key_statement(app, practice):
    first = _issued(practice)
    second = practice.issued(client=practice.other_client, therapist=practice.other_therapist)
    ids = (first.id, second.id)
    db.session.commit()
    db.session.remove()
    from portal.crypto import forget_keys
    from portal.estimates.models import GoodFaithEstimate

    forget_keys()
    estimates = list(db.session.scalars(select(GoodFaithEstimate)))
    with StatementCounter(db.engine) as counter:
        found = totals.totals_of(estimates)
    assert found == {ids[0]: TOTAL, ids[1]: 4550_00}
    assert counter.count <= 1, counter.statements


def test_a_draft_line_total_unknown_counts_nothing(app, practice):
    draft = practice.draft(lines=(DraftLine(0, "90837", "Psychotherapy", None, 160_00),))
    assert totals.total_of(draft) == 0
