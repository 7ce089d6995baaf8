"""Compare what was billed with what was estimated: the $400 rule (45 CFR 149.620).

A client may start patient-provider dispute resolution when the bill from any one provider is
at least $400 more than that provider's expected charges. The test is per provider, never per
line, so overages on several lines of one provider add up. The practice also wants an earlier
warning so it can look again before a bill goes out.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

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
