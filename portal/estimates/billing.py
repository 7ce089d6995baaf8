"""What was billed against what was estimated: the $400 rule (45 CFR 149.620), and the bills.

A client may start patient-provider dispute resolution when the bill from any one provider is
at least $400 more than that provider's expected charges. The test is per provider, never per
line, so overages on several lines of one provider add up. The practice also wants an earlier
warning so it can look again before a bill goes out.

The rule itself (`compare`, `level_for`, `dispute_deadline`) is plain arithmetic; below it,
recording and voiding billed amounts apply it to an issued estimate and keep its level.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from flask import current_app
from sqlalchemy import select

from portal.accounts.models import User
from portal.audit import record
from portal.db import utcnow
from portal.errors import RuleError
from portal.estimates.content import open_document
from portal.estimates.document import GfeDocument, Provider
from portal.estimates.models import TABLE, BilledAmount, GoodFaithEstimate
from portal.extensions import db

Level = Literal["ok", "warning", "dispute_eligible"]

WARNING_CENTS = 30_000
DISPUTE_CENTS = 40_000
DISPUTE_WINDOW_DAYS = 120
_SEVERITY: dict[Level, int] = {"ok": 0, "warning": 1, "dispute_eligible": 2}


@dataclass(frozen=True, slots=True)
class ProviderOverage:
    """One provider's estimated and billed totals; overage_cents is negative when billed less."""

    provider: str
    estimated_cents: int
    billed_cents: int
    overage_cents: int
    level: Level
    on_estimate: bool


def level_for(
    overage_cents: int, *, warning_cents: int = WARNING_CENTS, dispute_cents: int = DISPUTE_CENTS
) -> Level:
    """Classify one provider's overage: the warning is for the practice only."""
    if overage_cents >= dispute_cents:
        return "dispute_eligible"
    if overage_cents >= warning_cents:
        return "warning"
    return "ok"


def compare(
    estimated: Mapping[str, int],
    billed: Mapping[str, int],
    *,
    warning_cents: int = WARNING_CENTS,
    dispute_cents: int = DISPUTE_CENTS,
) -> list[ProviderOverage]:
    """Return one result per provider, estimate order first, then providers only on the bill.

    A provider billed but not on the estimate is compared with $0, so the practice sees it.
    """
    providers = [*estimated, *(key for key in billed if key not in estimated)]
    results = []
    for provider in providers:
        estimate = estimated.get(provider, 0)
        bill = billed.get(provider, 0)
        level = level_for(bill - estimate, warning_cents=warning_cents, dispute_cents=dispute_cents)
        results.append(
            ProviderOverage(provider, estimate, bill, bill - estimate, level, provider in estimated)
        )
    return results


def worst_level(results: list[ProviderOverage]) -> Level:
    """Return the most serious level among the providers ("ok" when there are none)."""
    return max((r.level for r in results), key=_SEVERITY.__getitem__, default="ok")


def dispute_deadline(bill_date: date) -> date:
    """Return the last day to start a dispute: 120 calendar days after the date on the bill."""
    return bill_date + timedelta(days=DISPUTE_WINDOW_DAYS)


# ------------------------------------------------------------------- an estimate's bills


@dataclass(frozen=True)
class ProviderBilling:
    """One provider's estimate against what was billed, with the dispute window if it applies."""

    position: int
    provider: Provider
    estimated_cents: int
    billed_cents: int
    overage_cents: int
    level: str
    last_bill_date: date | None
    dispute_deadline: date | None


@dataclass(frozen=True)
class BillingSummary:
    providers: list[ProviderBilling]
    bills: list[BilledAmount]
    level: str

    @property
    def disputable(self) -> list[ProviderBilling]:
        return [p for p in self.providers if p.level == "dispute_eligible"]

    @property
    def has_bills(self) -> bool:
        return any(b.voided_at is None for b in self.bills)


def thresholds() -> dict[str, int]:
    """The warning and dispute levels in cents, as configured (the rule's defaults if not)."""
    cfg = current_app.config
    return {"warning_cents": int(cfg.get("GFE_WARNING_THRESHOLD_CENTS", WARNING_CENTS)),
            "dispute_cents": int(cfg.get("GFE_DISPUTE_THRESHOLD_CENTS", DISPUTE_CENTS))}


def summary_of(estimate: GoodFaithEstimate, document: GfeDocument) -> BillingSummary:
    """Compare billed with estimated per provider (never per line) under the configured levels."""
    bills = list(db.session.scalars(
        select(BilledAmount).where(BilledAmount.estimate_id == estimate.id)
        .order_by(BilledAmount.bill_date, BilledAmount.recorded_at)))
    live = [b for b in bills if b.voided_at is None]
    totals = document.provider_totals()
    keys = [str(i) for i in range(len(document.providers))]
    estimated = {key: totals.get(p.npi, 0) for key, p in zip(keys, document.providers,
                                                              strict=True)}
    billed: dict[str, int] = {}
    last: dict[str, date] = {}
    for bill in live:
        key = str(bill.provider_position)
        billed[key] = billed.get(key, 0) + bill.amount_cents
        last[key] = max(last.get(key, bill.bill_date), bill.bill_date)
    results = compare(estimated, billed, **thresholds())
    providers = []
    for result in results:
        position = int(result.provider)
        if not 0 <= position < len(document.providers):
            continue
        bill_date = last.get(result.provider)
        deadline = (dispute_deadline(bill_date)
                    if result.level == "dispute_eligible" and bill_date else None)
        providers.append(ProviderBilling(
            position, document.providers[position], result.estimated_cents,
            result.billed_cents, result.overage_cents, result.level, bill_date, deadline))
    return BillingSummary(providers, bills, worst_level(results))


def record_bill(actor: User, estimate: GoodFaithEstimate, *, provider_position: int,
                amount_cents: int, bill_date: date) -> BillingSummary:
    """Record an amount billed by one provider of an issued estimate and re-check the levels."""
    if not estimate.is_issued:
        raise RuleError("Bills are recorded against an issued estimate.")
    if not isinstance(amount_cents, int) or amount_cents < 0:
        raise RuleError("The amount cannot be negative.", field="amount")
    document = open_document(estimate)
    if not 0 <= provider_position < len(document.providers):
        raise RuleError("Choose a provider listed on the estimate.", field="provider")
    db.session.add(BilledAmount(estimate_id=estimate.id, provider_position=provider_position,
                                amount_cents=amount_cents, bill_date=bill_date,
                                recorded_by_id=actor.id))
    db.session.flush()
    record("estimate.bill.recorded", actor=actor, target=(TABLE, estimate.id),
           subject_id=estimate.client_id)
    return _update_level(actor, estimate, document)


def void_bill(actor: User, estimate: GoodFaithEstimate, bill_id: uuid.UUID) -> BillingSummary:
    """Void a mistyped billed amount (it stays in the history, struck through).

    Only on an issued estimate, and only if its document opens (EstimateUnavailable
    otherwise): both are checked before anything changes.
    """
    if not estimate.is_issued:
        raise RuleError("Bills are voided only on an issued estimate.")
    document = open_document(estimate)
    bill = db.session.scalar(select(BilledAmount).where(
        BilledAmount.id == bill_id, BilledAmount.estimate_id == estimate.id))
    if bill is None or bill.voided_at is not None:
        raise RuleError("That billed amount is not on this estimate.")
    bill.voided_at = utcnow()
    bill.voided_by_id = actor.id
    db.session.flush()
    record("estimate.bill.voided", actor=actor, target=(TABLE, estimate.id),
           subject_id=estimate.client_id)
    return _update_level(actor, estimate, document)


def _update_level(actor: User, estimate: GoodFaithEstimate,
                  document: GfeDocument) -> BillingSummary:
    summary = summary_of(estimate, document)
    if summary.level != estimate.billing_level:
        if summary.level == "dispute_eligible":
            record("estimate.dispute_eligible", actor=actor, target=(TABLE, estimate.id),
                   subject_id=estimate.client_id, severity="high")
        estimate.billing_level = summary.level
        estimate.updated_at = utcnow()
    db.session.commit()
    return summary
