"""The $400 rule: billed against estimated, per provider (45 CFR 149.620)."""

from datetime import date

import pytest

from portal.estimates.billing import compare, dispute_deadline, level_for, worst_level
from portal.estimates.document import DIAGNOSIS_TBD, GfeDocument, LineItem, Provider

NPI_A = "1234567893"
NPI_B = "1245319599"


def two_provider_estimate() -> GfeDocument:
    return GfeDocument(
        gfe_number="GFE-2026-0007",
        issue_date=date(2026, 1, 5),
        client_legal_name="Alex Rivera",
        client_dob=date(1990, 4, 2),
        client_address="1 Main Street, Trappe, PA 19426",
        primary_service="Individual psychotherapy",
        period_start=date(2026, 1, 12),
        period_end=date(2026, 6, 30),
        frequency="Weekly",
        sessions_min=20,
        sessions_max=24,
        providers=(
            Provider("Colleen Example, LPC", NPI_A, "12-3456789", "Collegeville", "PA"),
            Provider("Kristen Example, LCSW", NPI_B, "23-4567890", "Telehealth", "PA"),
        ),
        line_items=(
            LineItem.priced(NPI_A, "90791", "Diagnostic evaluation", 1, 20000, DIAGNOSIS_TBD),
            LineItem.priced(NPI_A, "90837", "Psychotherapy, 60 minutes", 23, 16000, ("F41.1",)),
            LineItem.priced(NPI_B, "90847", "Family psychotherapy", 2, 17500, ("F41.1",)),
        ),
    )


@pytest.mark.parametrize(
    ("overage", "level"),
    [
        (-5000, "ok"),
        (0, "ok"),
        (29999, "ok"),
        (30000, "warning"),
        (39999, "warning"),
        (40000, "dispute_eligible"),
        (250000, "dispute_eligible"),
    ],
)
def test_level_for_overage(overage, level):
    assert level_for(overage) == level


def test_custom_thresholds():
    assert level_for(10000, warning_cents=10000) == "warning"
    assert level_for(10000, warning_cents=5000, dispute_cents=10000) == "dispute_eligible"


@pytest.mark.parametrize(
    ("over_a", "over_b", "levels", "worst"),
    [
        (39999, 0, ("warning", "ok"), "warning"),
        (40000, 0, ("dispute_eligible", "ok"), "dispute_eligible"),
        (39999, 39999, ("warning", "warning"), "warning"),  # never added across providers
        (0, 40000, ("ok", "dispute_eligible"), "dispute_eligible"),
        (-10000, 45000, ("ok", "dispute_eligible"), "dispute_eligible"),  # no offsetting
        (0, 0, ("ok", "ok"), "ok"),
    ],
)
def test_rule_is_applied_per_provider(over_a, over_b, levels, worst):
    estimated = two_provider_estimate().provider_totals()
    billed = {NPI_A: estimated[NPI_A] + over_a, NPI_B: estimated[NPI_B] + over_b}
    results = compare(estimated, billed)
    assert tuple(r.level for r in results) == levels
    assert tuple(r.overage_cents for r in results) == (over_a, over_b)
    assert worst_level(results) == worst


def test_overages_on_several_lines_of_one_provider_add_up():
    doc = two_provider_estimate()
    # Each of provider A's two lines is billed $250 more than estimated: $500 in all.
    billed_lines = [
        (item.provider_npi, item.line_total_cents + (25000 if item.provider_npi == NPI_A else 0))
        for item in doc.line_items
    ]
    billed: dict[str, int] = {}
    for npi, cents in billed_lines:
        billed[npi] = billed.get(npi, 0) + cents
    results = {r.provider: r for r in compare(doc.provider_totals(), billed)}
    assert results[NPI_A].overage_cents == 50000
    assert results[NPI_A].level == "dispute_eligible"
    assert results[NPI_B].level == "ok"


def test_provider_billed_but_not_on_the_estimate_is_compared_with_zero():
    estimated = {NPI_A: 100000}
    results = compare(estimated, {NPI_A: 100000, NPI_B: 45000})
    assert [(r.provider, r.on_estimate, r.estimated_cents, r.level) for r in results] == [
        (NPI_A, True, 100000, "ok"),
        (NPI_B, False, 0, "dispute_eligible"),
    ]


def test_provider_not_yet_billed_is_ok():
    results = compare({NPI_A: 100000, NPI_B: 35000}, {NPI_A: 90000})
    assert [(r.billed_cents, r.overage_cents, r.level) for r in results] == [
        (90000, -10000, "ok"),
        (0, -35000, "ok"),
    ]


def test_worst_level_of_nothing_is_ok():
    assert worst_level([]) == "ok"


@pytest.mark.parametrize(
    ("bill_date", "deadline"),
    [
        (date(2026, 1, 15), date(2026, 5, 15)),
        (date(2026, 11, 2), date(2027, 3, 2)),
        (date(2028, 1, 1), date(2028, 4, 30)),  # leap year
        (date(2027, 1, 1), date(2027, 5, 1)),
    ],
)
def test_dispute_deadline_is_120_calendar_days_after_the_bill(bill_date, deadline):
    assert dispute_deadline(bill_date) == deadline
