"""An estimate's total and its bills' amounts, opened from what is sealed.

The total is not stored apart from the sealed document (a readable copy would tell anyone
holding the database how much care a client is getting): it is the sum of the document's
lines, the draft's while it is a draft and the frozen document's once issued, exactly what
the draft or the document says it comes to. Billed amounts are sealed one by one
(`gfe_billed_amounts.amount_sealed`, cents as decimal text, under the estimate's client's
key), and so is the date on each bill (ISO text): the dispute window and the order of the
bills are worked out in Python. Sums are made here, over opened values: SQL never adds them
up.
"""

import uuid
from collections.abc import Iterable
from datetime import date

from portal.crypto import context_for, open_text, preload_keys, seal
from portal.db import new_id
from portal.estimates.content import EstimateUnavailable, open_document, open_draft
from portal.estimates.models import BilledAmount, GoodFaithEstimate


def total_of(estimate: GoodFaithEstimate) -> int | None:
    """What the estimate comes to, from its sealed content; None if it will not open (the
    failure to decrypt is audited by content, once)."""
    try:
        if estimate.is_draft:
            return open_draft(estimate).total_cents
        return open_document(estimate).total_cents
    except EstimateUnavailable:
        return None


def total_in(estimate_id: uuid.UUID, client_id: uuid.UUID, status: str,
             document_sealed: bytes | None) -> int | None:
    """total_of for a row selected column by column (the records export): a transient
    estimate, never added to the session, carries the values to the one opener."""
    return total_of(GoodFaithEstimate(id=estimate_id, client_id=client_id, status=status,
                                      document_sealed=document_sealed))


def totals_of(estimates: Iterable[GoodFaithEstimate]) -> dict[uuid.UUID, int | None]:
    """The totals of a list of estimates, by id: the clients' keys in one statement first."""
    estimates = list(estimates)
    if estimates:
        preload_keys({e.client_id for e in estimates})
    return {e.id: total_of(e) for e in estimates}


def sealed_bill(client_id: uuid.UUID, amount_cents: int, bill_date: date) -> dict:
    """A new bill's id, amount and date as its row stores them (sealed for that row)."""
    bill_id = new_id()
    return {"id": bill_id,
            "amount_sealed": seal(client_id, context_for(BilledAmount.amount_sealed, bill_id),
                                  str(int(amount_cents))),
            "bill_date_sealed": seal(client_id,
                                     context_for(BilledAmount.bill_date_sealed, bill_id),
                                     bill_date.isoformat())}


def open_bills(client_id: uuid.UUID, bills: list[BilledAmount]) -> list[BilledAmount]:
    """Open each bill's amount and date onto it (`amount_cents`, `bill_date`), all under one
    client's key, and return them in date order (then as recorded).

    A bill that will not open raises DecryptionError: a comparison with the $400 rule over
    an amount nobody can read would be wrong either way.
    """
    for bill in bills:
        if bill.amount_cents is None:
            bill.amount_cents = int(open_text(
                client_id, context_for(BilledAmount.amount_sealed, bill.id),
                bill.amount_sealed))
        if bill.bill_date is None:
            bill.bill_date = date.fromisoformat(open_text(
                client_id, context_for(BilledAmount.bill_date_sealed, bill.id),
                bill.bill_date_sealed))
    return sorted(bills, key=lambda b: (b.bill_date, b.recorded_at, b.id.bytes))
