"""Demo estimates for `portal seed-demo`: one issued and one draft for Zoë, by Colleen."""

from dataclasses import replace
from datetime import timedelta

from portal import practice
from portal.estimates import drafting, issuing
from portal.estimates.document import TELEHEALTH
from portal.estimates.drafts import Draft, DraftLine, DraftProvider

CLIENT_EMAIL = "zoe@example.org"
THERAPIST_EMAIL = "colleen@coeo.example"
# Demo NPIs pass the NPI check digit; the EINs use valid prefixes. None belong to anyone real.
COLLEEN = DraftProvider("Colleen Demo, LPC", "1234567893", "12-3456789",
                        "555 2nd Ave, Suite C 650, Collegeville, PA 19426", "PA")
KRISTEN = DraftProvider("Kristen Demo, LCSW", "1245319599", "23-4567890", TELEHEALTH, "PA")


def demo_draft(today) -> Draft:
    """Return a complete, realistic estimate for the demo client."""
    start = today + timedelta(days=7)
    return Draft(
        client_legal_name="Zoë Nguyễn-Ōtsuka",
        client_dob=today.replace(year=today.year - 33, month=7, day=14),
        client_address="12 Walnut Street, Apt 3\nTrappe, PA 19426",
        primary_service="Individual psychotherapy, 53+ minutes (CPT 90837), weekly",
        period_start=start,
        period_end=start + timedelta(days=180),
        frequency="Weekly",
        sessions_min=20,
        sessions_max=26,
        providers=(COLLEEN, KRISTEN),
        lines=(
            DraftLine(0, "90791", "Diagnostic evaluation (first visit)", 1, 200_00,
                      diagnosis_tbd=True),
            DraftLine(0, "90837", "Individual psychotherapy, 60 minutes", 25, 160_00,
                      ("F41.1",)),
            DraftLine(1, "90847", "Family psychotherapy with the client present", 2, 175_00,
                      ("F41.1", "Z63.0")),
        ),
    )


def seed(by_email: dict) -> None:
    """Give the demo client one issued estimate and one draft (a renewal being prepared)."""
    client, therapist = by_email.get(CLIENT_EMAIL), by_email.get(THERAPIST_EMAIL)
    if client is None or therapist is None:
        return
    today = practice.today()
    draft = demo_draft(today)
    estimate = drafting.create_draft(therapist, client)
    drafting.save_draft(therapist, estimate, draft, scheduled_on=today,
                        service_date=today + timedelta(days=21))
    issuing.issue(therapist, estimate.id)
    pending = drafting.create_draft(therapist, client)
    later = draft.period_end + timedelta(days=1)
    drafting.save_draft(therapist, pending, replace(
        draft, period_start=later, period_end=later + timedelta(days=180),
        lines=(replace(draft.lines[1], quantity=13),), providers=(COLLEEN,),
        primary_service="Individual psychotherapy, 53+ minutes (CPT 90837), every other week",
        frequency="Every other week", sessions_min=10, sessions_max=13),
        requested_on=today)
