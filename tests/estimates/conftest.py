"""Builders for the estimate tests: people, sign-in without the UI, a complete draft."""

from datetime import date, timedelta

import pytest
from flask.testing import FlaskClient

from portal.accounts.models import Assignment, User
from portal.estimates import drafting, issuing
from portal.estimates.document import TELEHEALTH
from portal.estimates.drafts import Draft, DraftLine, DraftProvider
from portal.extensions import db
from portal.practice import today as practice_today
from tests.support.auth import inject_session
from tests.support.people import csrf_from, make_user, unique_email  # noqa: F401

NPI_A = "1234567893"
NPI_B = "1245319599"


def assign(client: User, therapist: User) -> None:
    db.session.add(Assignment(client_id=client.id, therapist_id=therapist.id))
    db.session.commit()


def sign_in(client: FlaskClient, user: User) -> FlaskClient:
    """Sign `user` in to this test client (session injected; the sign-in UI has its own tests)."""
    return inject_session(client, user)


def csrf(client: FlaskClient) -> str:
    """Return the CSRF token of the signed-in session (from any page's meta tag)."""
    page = client.get("/estimates/")  # staff get the 404 page, which carries the token too
    return csrf_from(page.get_data(as_text=True))


def complete_draft(today: date | None = None, **changes) -> Draft:
    """Return a draft that passes every check: two providers, three lines."""
    from dataclasses import replace

    start = (today or date(2026, 3, 2)) + timedelta(days=14)
    draft = Draft(
        client_legal_name="Zoë Nguyễn-Ōtsuka",
        client_dob=date(1991, 7, 14),
        client_address="12 Walnut Street, Apt 3\nTrappe, PA 19426",
        primary_service="Individual psychotherapy, 53+ minutes (CPT 90837), weekly",
        period_start=start,
        period_end=start + timedelta(days=180),
        frequency="Weekly",
        sessions_min=20,
        sessions_max=26,
        providers=(
            DraftProvider("Colleen Example, LPC", NPI_A, "12-3456789",
                          "555 2nd Ave, Suite C 650, Collegeville, PA 19426", "PA"),
            DraftProvider("Kristen Example, LCSW", NPI_B, "23-4567890", TELEHEALTH, "PA"),
        ),
        lines=(
            DraftLine(0, "90791", "Diagnostic evaluation", 1, 200_00, diagnosis_tbd=True),
            DraftLine(0, "90837", "Individual psychotherapy, 60 minutes", 25, 160_00,
                      ("F41.1",)),
            DraftLine(1, "90847", "Family psychotherapy", 2, 175_00, ("F41.1", "Z63.0")),
        ),
    )
    return replace(draft, **changes)


class Practice:
    """A small practice: two therapists, each with a client, and an admin."""

    def __init__(self) -> None:
        self.therapist = make_user("therapist", "Colleen Example")
        self.other_therapist = make_user("therapist", "Kristen Example")
        self.admin = make_user("admin", "Morgan Admin")
        self.client = make_user("client", "Zoë Nguyễn-Ōtsuka")
        self.other_client = make_user("client", "Sam Okafor")
        assign(self.client, self.therapist)
        assign(self.other_client, self.other_therapist)

    def issued(self, client: User | None = None, therapist: User | None = None, **changes):
        """Issue a complete estimate for a client (default: self.client by self.therapist)."""
        client = client or self.client
        therapist = therapist or self.therapist
        estimate = drafting.create_draft(therapist, client)
        drafting.save_draft(therapist, estimate,
                           complete_draft(practice_today(), **changes))
        return issuing.issue(therapist, estimate.id)

    def draft(self, client: User | None = None, therapist: User | None = None, **changes):
        client = client or self.client
        therapist = therapist or self.therapist
        estimate = drafting.create_draft(therapist, client)
        drafting.save_draft(therapist, estimate,
                           complete_draft(practice_today(), **changes))
        return estimate


@pytest.fixture(autouse=True)
def _isolated(isolated_requests):
    """Every estimate test runs its test-client requests in isolation (see tests/conftest.py)."""


@pytest.fixture
def practice(app) -> Practice:
    """Return a practice with people and assignments."""
    return Practice()


def builder_payload(draft: Draft, *, token: str, action: str = "save", scheduled_on="",
                    service_date="", requested_on="", **overrides) -> dict:
    """Return the builder's POST fields for a draft, as a browser would send them."""
    from portal.estimates.money import cents_input

    def day(value) -> str:
        return value.isoformat() if value else ""

    data = {
        "csrf_token": token, "action": action,
        "client_legal_name": draft.client_legal_name, "client_dob": day(draft.client_dob),
        "client_address": draft.client_address, "primary_service": draft.primary_service,
        "period_start": day(draft.period_start), "period_end": day(draft.period_end),
        "frequency": draft.frequency,
        "sessions_min": "" if draft.sessions_min is None else str(draft.sessions_min),
        "sessions_max": "" if draft.sessions_max is None else str(draft.sessions_max),
        "separately_scheduled": draft.separately_scheduled,
        "scheduled_on": day(scheduled_on), "service_date": day(service_date),
        "requested_on": day(requested_on),
    }
    for i, p in enumerate(draft.providers):
        data.update({f"providers-{i}-name": p.name, f"providers-{i}-npi": p.npi,
                     f"providers-{i}-tin": p.tin, f"providers-{i}-location": p.location,
                     f"providers-{i}-state": p.state})
    for i, line in enumerate(draft.lines):
        data.update({
            f"lines-{i}-provider": "" if line.provider is None else str(line.provider),
            f"lines-{i}-cpt_code": line.cpt_code,
            f"lines-{i}-description": line.description,
            f"lines-{i}-diagnosis": ", ".join(line.diagnosis_codes),
            f"lines-{i}-quantity": "" if line.quantity is None else str(line.quantity),
            f"lines-{i}-unit_charge": cents_input(line.unit_cents),
        })
        if line.diagnosis_tbd:
            data[f"lines-{i}-diagnosis_tbd"] = "y"
    data.update(overrides)
    return data


@pytest.fixture
def fast_pdf(monkeypatch):
    """Skip real PDF rendering where a test is about who may reach what, not the PDF."""
    monkeypatch.setattr(issuing, "render_pdf",
                        lambda document: b"%PDF-1.4\n% " + document.gfe_number.encode() + b"\n")
