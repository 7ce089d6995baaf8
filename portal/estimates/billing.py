"""What was billed against what was estimated: the $400 rule (45 CFR 149.620), and the bills.

A client may start patient-provider dispute resolution when the bill from any one provider is
at least $400 more than that provider's expected charges. The test is per provider, never per
line, so overages on several lines of one provider add up. The practice also wants an earlier
warning so it can look again before a bill goes out.

The window to start it is 120 calendar days from the first (original) bill with those items
(45 CFR 149.620(c)), never from a later one: for each provider, the earliest bill that is not
voided. A later bill, a reminder or a corrected total does not start the window again.

The rule itself (`compare`, `level_for`, `dispute_deadline`) is plain arithmetic; below it,
recording and voiding billed amounts apply it to an issued estimate and keep its level. A bill
dated before the estimate was issued, before its period starts, or in the future cannot be
a bill for what this estimate covers, and is refused.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from flask import current_app
from sqlalchemy import select

from portal import practice
from portal.accounts.models import User
from portal.audit import record
from portal.db import utcnow
from portal.errors import RuleError
from portal.estimates.content import open_document
from portal.estimates.document import GfeDocument, Provider
from portal.estimates.models import TABLE, BilledAmount, GoodFaithEstimate
from portal.estimates.totals import open_bills, sealed_bill
from portal.extensions import db
from portal.templating import local_date

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


def dispute_deadline(first_bill_date: date) -> date:
    """Return the last day to start a dispute: 120 calendar days after the first bill.

    45 CFR 149.620(c) counts from the initial bill with the items, so pass the date of the
    provider's first (original) bill, never of a later one.
    """
    return first_bill_date + timedelta(days=DISPUTE_WINDOW_DAYS)


def window_passed(deadline: date, today: date) -> bool:
    """Whether the window has closed: the deadline itself is still a day to start it."""
    return today > deadline


# ------------------------------------------------------------------- an estimate's bills


@dataclass(frozen=True)
class ProviderBilling:
    """One provider's estimate against what was billed, with the dispute window if it applies.

    first_bill_date is the provider's original bill (voided ones do not count); the window
    (45 CFR 149.620(c)) runs from it, and window_passed says whether it has closed.
    latest_bill_date never moves the window: it only tells whether later bills exist (they
    may charge for care that was not on the first one, which has a window of its own).
    """

    position: int
    provider: Provider
    estimated_cents: int
    billed_cents: int
    overage_cents: int
    level: str
    first_bill_date: date | None
    dispute_deadline: date | None
    window_passed: bool = False
    latest_bill_date: date | None = None


@dataclass(frozen=True)
class BillingSummary:
    providers: list[ProviderBilling]
    bills: list[BilledAmount]
    level: str

    @property
    def disputable(self) -> list[ProviderBilling]:
        """Providers billed $400 or more over, whether their window is open or has passed."""
        return [p for p in self.providers if p.level == "dispute_eligible"]

    @property
    def window_open(self) -> list[ProviderBilling]:
        return [p for p in self.disputable if not p.window_passed]

    @property
    def has_bills(self) -> bool:
        return any(b.voided_at is None for b in self.bills)


def thresholds() -> dict[str, int]:
    """The warning and dispute levels in cents, as configured (the rule's defaults if not)."""
    cfg = current_app.config
    return {"warning_cents": int(cfg.get("GFE_WARNING_THRESHOLD_CENTS", WARNING_CENTS)),
            "dispute_cents": int(cfg.get("GFE_DISPUTE_THRESHOLD_CENTS", DISPUTE_CENTS))}


def summary_of(estimate: GoodFaithEstimate, document: GfeDocument, *,
               today: date | None = None) -> BillingSummary:
    """Compare billed with estimated per provider (never per line) under the configured levels.

    The dispute window of a provider $400 or more over runs from its first bill that is not
    voided (45 CFR 149.620(c)); whether it has passed is judged on `today` (the practice's).
    """
    today = today or practice.today()
    # Amounts and dates are sealed: opened, ordered and summed here, never in SQL.
    bills = open_bills(estimate.client_id, list(db.session.scalars(
        select(BilledAmount).where(BilledAmount.estimate_id == estimate.id))))
    live = [b for b in bills if b.voided_at is None]
    totals = document.provider_totals()
    keys = [str(i) for i in range(len(document.providers))]
    estimated = {key: totals.get(p.npi, 0) for key, p in zip(keys, document.providers,
                                                              strict=True)}
    billed: dict[str, int] = {}
    first: dict[str, date] = {}
    latest: dict[str, date] = {}
    for bill in live:
        key = str(bill.provider_position)
        billed[key] = billed.get(key, 0) + bill.amount_cents
        first[key] = min(first.get(key, bill.bill_date), bill.bill_date)
        latest[key] = max(latest.get(key, bill.bill_date), bill.bill_date)
    results = compare(estimated, billed, **thresholds())
    providers = []
    for result in results:
        position = int(result.provider)
        if not 0 <= position < len(document.providers):
            continue
        first_date = first.get(result.provider)
        deadline = (dispute_deadline(first_date)
                    if result.level == "dispute_eligible" and first_date else None)
        providers.append(ProviderBilling(
            position, document.providers[position], result.estimated_cents,
            result.billed_cents, result.overage_cents, result.level, first_date, deadline,
            deadline is not None and window_passed(deadline, today),
            latest.get(result.provider)))
    return BillingSummary(providers, bills, worst_level(results))


def record_bill(actor: User, estimate: GoodFaithEstimate, *, provider_position: int,
                amount_cents: int, bill_date: date) -> BillingSummary:
    """Record an amount billed by one provider of an issued estimate and re-check the levels.

    Refused (nothing written): a bill dated in the future, before the estimate was issued or
    before its period starts (`check_bill_date`).
    """
    if not estimate.is_issued:
        raise RuleError("Bills are recorded against an issued estimate.")
    if not isinstance(amount_cents, int) or amount_cents < 0:
        raise RuleError("The amount cannot be negative.", field="amount")
    document = open_document(estimate)
    if not 0 <= provider_position < len(document.providers):
        raise RuleError("Choose a provider listed on the estimate.", field="provider")
    check_bill_date(estimate, bill_date)
    db.session.add(BilledAmount(estimate_id=estimate.id, provider_position=provider_position,
                                recorded_by_id=actor.id,
                                **sealed_bill(estimate.client_id, amount_cents, bill_date)))
    db.session.flush()
    record("estimate.bill.recorded", actor=actor, target=(TABLE, estimate.id),
           subject_id=estimate.client_id)
    return _update_level(actor, estimate, document)


@dataclass(frozen=True)
class BillDates:
    """Which dates a bill against an estimate may carry, for the bill form's words."""

    earliest: date  # the issue date or the period start, whichever is later
    from_period_start: bool  # the period starts after the issue date
    started: bool  # today is on or after `earliest`, so some date is taken


def bill_dates(estimate: GoodFaithEstimate) -> BillDates | None:
    """The dates `check_bill_date` takes for this estimate (None before it is issued)."""
    if estimate.issue_date is None:
        return None
    start = estimate.period_start
    earliest = max(estimate.issue_date, start) if start else estimate.issue_date
    return BillDates(earliest, earliest != estimate.issue_date,
                     earliest <= practice.today())


def check_bill_date(estimate: GoodFaithEstimate, bill_date: date) -> None:
    """Refuse a date that cannot be on a bill for what this estimate covers.

    A bill comes after the care it charges for, and this estimate covers care from its period
    start, given on its issue date: a bill dated earlier belongs to another estimate (or to
    none), and a bill dated after today has not been sent.
    """
    if bill_date > practice.today():
        raise RuleError("The bill date cannot be in the future.", field="bill_date")
    if estimate.issue_date and bill_date < estimate.issue_date:
        raise RuleError(f"This bill is dated before the estimate was issued "
                        f"({local_date(estimate.issue_date)}), so it cannot be compared with it. "
                        "Record it against the estimate the client had then, or check the "
                        "date.", field="bill_date")
    if estimate.period_start and bill_date < estimate.period_start:
        raise RuleError(f"This bill is dated before the care this estimate covers begins "
                        f"({local_date(estimate.period_start)}), so it cannot be compared with it. "
                        "Check the date on the bill.", field="bill_date")


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
