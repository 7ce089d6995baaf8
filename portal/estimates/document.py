"""The Good Faith Estimate as plain, frozen data: what is stored sealed, rendered and checked."""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Literal, Self

# Version 2 states the date the primary service is scheduled (45 CFR 149.610(c)(1)(ii)) and why
# a line costs nothing. Version 1 documents (issued before) still open and keep their shape.
SCHEMA_VERSION = 2
KNOWN_SCHEMA_VERSIONS = (1, 2)
DIAGNOSIS_TBD: Literal["TBD pending evaluation"] = "TBD pending evaluation"
TELEHEALTH = "Telehealth"
NONE_ANTICIPATED = "None anticipated"

# Where a client learns about disputes; fixed by CMS, printed on every estimate.
CMS_URL = "www.cms.gov/nosurprises"
CMS_PHONE = "1-800-985-3059"

COEO_CONTACT: Mapping[str, str] = {
    "name": "coeo",
    "street": "555 2nd Ave, Suite C 650",
    "city": "Collegeville",
    "state": "PA",
    "postal_code": "19426",
    "phone": "(215) 360-3308",
    "email": "team@coeocommunity.com",
}
CONTACT_KEYS = ("name", "street", "city", "state", "postal_code", "phone", "email")

# The four disclaimers 45 CFR 149.610(c)(1) requires, in plain words; the PDF and HTML share them.
DISCLAIMERS: tuple[str, ...] = (
    "Your therapist may recommend other items or services as part of your care that are not "
    "included in this estimate. Those would need to be scheduled or requested separately, and "
    "you would receive a separate Good Faith Estimate for them.",
    "This Good Faith Estimate is only an estimate. The actual items, services or charges may be "
    "different from what is shown here.",
    "If you are billed at least $400 more than the expected charges for any provider listed in "
    "this estimate, you have the right to start a dispute through the patient-provider dispute "
    "resolution process. You must start it within 120 calendar days (about 4 months) of the "
    f"date on the original bill. To learn how, visit {CMS_URL} or call {CMS_PHONE}. Starting "
    "a dispute will not affect the quality of the care you receive.",
    "This Good Faith Estimate is not a contract. It does not require you to receive any of the "
    "items or services listed.",
)
# Why a line may cost $0.00: the key is stored on the line, the words are printed on it.
NO_CHARGE_REASONS: Mapping[str, str] = {
    "included": "included in another service",
    "courtesy": "a courtesy from the practice",
    "sliding_scale": "sliding scale",
}
NOT_YET_SCHEDULED = "Not yet scheduled"

# What the CMS model notice adds about a bill higher than the estimate (45 CFR 149.620): talk to
# the provider first, the $25 fee, and what the independent reviewer's decision means. Printed
# after the disclaimers on the PDF and on every estimate page.
IF_BILLED_MORE_TITLE = "If your bill is higher than this estimate"
IF_BILLED_MORE: tuple[str, ...] = (
    "Talk with the provider first. You can ask them to update the bill to match this Good "
    "Faith Estimate, to talk the amount over with you, or whether financial help or a payment "
    "plan is available.",
    "If you start the patient-provider dispute resolution process, there is a $25 fee to use "
    "it. An independent reviewer (a selected dispute resolution entity) then decides how much "
    "you have to pay.",
    "If the reviewer finds the extra charges are not justified, you pay the amount on this "
    "Good Faith Estimate. If the reviewer finds they are justified, you pay the amount the "
    "reviewer sets, which can be higher than this estimate but not higher than the bill. "
    "Whenever the amount the reviewer sets is lower than the bill, the $25 fee is taken off "
    "what you pay.",
)
KEEP_A_COPY = (
    "Keep a copy of this Good Faith Estimate. Please print it or save it somewhere safe; you "
    "may need it if your bill is higher than expected."
)
# Printed directly above the list of separately scheduled items, as 149.610(c)(1)(viii) asks.
SEPARATELY_SCHEDULED_NOTE = (
    "Items or services listed here are scheduled separately and are not priced in this "
    "estimate; details such as codes, providers and charges may not be shown. You will receive "
    "a separate Good Faith Estimate for each of them when it is scheduled, or sooner if you ask. "
    "To ask for one, call us at {phone} or email {email}."
)


def format_cents(cents: int) -> str:
    """Format integer cents as US dollars, e.g. 123456 -> "$1,234.56"."""
    sign = "-" if cents < 0 else ""
    dollars, rest = divmod(abs(cents), 100)
    return f"{sign}${dollars:,}.{rest:02d}"


def separately_scheduled_note(practice: Mapping[str, str]) -> str:
    """Return the note that goes above the separately scheduled list, with contact details."""
    return SEPARATELY_SCHEDULED_NOTE.format(
        phone=practice.get("phone", ""), email=practice.get("email", "")
    )


@dataclass(frozen=True, slots=True)
class Provider:
    """A provider or facility expected to furnish items or services in the estimate."""

    name: str
    npi: str
    tin: str
    location: str  # office address, or TELEHEALTH
    state: str


@dataclass(frozen=True, slots=True)
class LineItem:
    """One expected item or service; the provider is referenced by NPI so order never matters."""

    provider_npi: str
    cpt_code: str
    description: str
    quantity: int
    unit_cents: int
    diagnosis_codes: tuple[str, ...] | Literal["TBD pending evaluation"]
    line_total_cents: int
    no_charge_reason: str | None = None  # a key of NO_CHARGE_REASONS, for a $0.00 line

    @classmethod
    def priced(
        cls,
        provider_npi: str,
        cpt_code: str,
        description: str,
        quantity: int,
        unit_cents: int,
        diagnosis_codes: tuple[str, ...] | Literal["TBD pending evaluation"],
        no_charge_reason: str | None = None,
    ) -> Self:
        """Build a line whose declared total is quantity times unit charge."""
        return cls(
            provider_npi, cpt_code, description, quantity, unit_cents, diagnosis_codes,
            quantity * unit_cents, no_charge_reason,
        )

    @property
    def expected_total_cents(self) -> int:
        """Quantity times unit charge, to compare with the declared total."""
        return self.quantity * self.unit_cents

    @property
    def diagnosis_text(self) -> str:
        """Diagnosis codes as printed: "F41.1, Z63.0" or the TBD wording."""
        if isinstance(self.diagnosis_codes, str):
            return self.diagnosis_codes
        return ", ".join(self.diagnosis_codes)

    @property
    def no_charge_text(self) -> str:
        """What prints on a $0.00 line, e.g. "No charge: courtesy"; "" for a priced line."""
        if not self.no_charge_reason:
            return ""
        words = NO_CHARGE_REASONS.get(self.no_charge_reason, self.no_charge_reason)
        return f"No charge: {words}"


@dataclass(frozen=True, slots=True)
class GfeDocument:
    """Everything a Good Faith Estimate states; sessions_max is the count the estimate prices."""

    gfe_number: str
    issue_date: date
    client_legal_name: str
    client_dob: date | None
    client_address: str
    primary_service: str
    period_start: date
    period_end: date
    frequency: str
    sessions_min: int
    sessions_max: int
    providers: tuple[Provider, ...]
    line_items: tuple[LineItem, ...]
    separately_scheduled: str = NONE_ANTICIPATED
    practice: Mapping[str, str] = field(default_factory=lambda: dict(COEO_CONTACT))
    # The date the primary service is scheduled (the first session of recurring care), or None.
    service_date: date | None = None
    # 1 for documents issued before the scheduled date and no-charge reasons were stated; such a
    # document is shown as it was issued (no scheduled date) and serialises as it was stored.
    schema_version: int = SCHEMA_VERSION

    @property
    def states_service_date(self) -> bool:
        """Whether this document says when the primary service is scheduled (or that it is not)."""
        return self.schema_version >= 2

    @property
    def service_date_text(self) -> str:
        """The scheduled date as printed: "June 1, 2026 (the first session)" or "Not yet ..."."""
        if self.service_date is None:
            return NOT_YET_SCHEDULED
        day = self.service_date
        text = f"{day:%B} {day.day}, {day.year}"
        return f"{text} (the first session)" if self.sessions_max > 1 else text

    def provider(self, npi: str) -> Provider | None:
        """Return the provider with this NPI, if listed."""
        return next((p for p in self.providers if p.npi == npi), None)

    def lines_for(self, npi: str) -> tuple[LineItem, ...]:
        """Return the line items furnished by the provider with this NPI."""
        return tuple(item for item in self.line_items if item.provider_npi == npi)

    def provider_totals(self) -> dict[str, int]:
        """Declared total in cents per provider NPI, in listing order (unlisted NPIs last)."""
        totals = {p.npi: 0 for p in self.providers}
        for item in self.line_items:
            totals[item.provider_npi] = totals.get(item.provider_npi, 0) + item.line_total_cents
        return totals

    @property
    def total_cents(self) -> int:
        """Declared total of every line, in cents."""
        return sum(item.line_total_cents for item in self.line_items)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (dates as ISO strings) for sealed storage."""
        data = {
            "version": self.schema_version,
            "gfe_number": self.gfe_number,
            "issue_date": self.issue_date.isoformat(),
            "client_legal_name": self.client_legal_name,
            "client_dob": self.client_dob.isoformat() if self.client_dob else None,
            "client_address": self.client_address,
            "primary_service": self.primary_service,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "frequency": self.frequency,
            "sessions_min": self.sessions_min,
            "sessions_max": self.sessions_max,
            "providers": [asdict(p) for p in self.providers],
            "line_items": [
                {
                    "provider_npi": i.provider_npi,
                    "cpt_code": i.cpt_code,
                    "description": i.description,
                    "quantity": i.quantity,
                    "unit_cents": i.unit_cents,
                    "diagnosis_codes": (
                        i.diagnosis_codes if isinstance(i.diagnosis_codes, str)
                        else list(i.diagnosis_codes)
                    ),
                    "line_total_cents": i.line_total_cents,
                    **({"no_charge_reason": i.no_charge_reason}
                       if self.schema_version >= 2 else {}),
                }
                for i in self.line_items
            ],
            "separately_scheduled": self.separately_scheduled,
            "practice": dict(self.practice),
        }
        if self.schema_version >= 2:
            data["service_date"] = self.service_date.isoformat() if self.service_date else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a document from to_dict() output; refuses a schema version it does not know."""
        version = data.get("version", 1)
        if version not in KNOWN_SCHEMA_VERSIONS:
            raise ValueError(f"unsupported Good Faith Estimate schema version {version!r}")
        dob = data.get("client_dob")
        scheduled = data.get("service_date") if version >= 2 else None
        return cls(
            gfe_number=data["gfe_number"],
            issue_date=date.fromisoformat(data["issue_date"]),
            client_legal_name=data["client_legal_name"],
            client_dob=date.fromisoformat(dob) if dob else None,
            client_address=data["client_address"],
            primary_service=data["primary_service"],
            period_start=date.fromisoformat(data["period_start"]),
            period_end=date.fromisoformat(data["period_end"]),
            frequency=data["frequency"],
            sessions_min=int(data["sessions_min"]),
            sessions_max=int(data["sessions_max"]),
            providers=tuple(Provider(**p) for p in data["providers"]),
            line_items=tuple(_line_from_dict(i) for i in data["line_items"]),
            separately_scheduled=data.get("separately_scheduled", NONE_ANTICIPATED),
            practice=dict(data.get("practice") or COEO_CONTACT),
            service_date=date.fromisoformat(scheduled) if scheduled else None,
            schema_version=version,
        )


def _line_from_dict(data: Mapping[str, Any]) -> LineItem:
    codes = data["diagnosis_codes"]
    return LineItem(
        provider_npi=data["provider_npi"],
        cpt_code=data["cpt_code"],
        description=data["description"],
        quantity=int(data["quantity"]),
        unit_cents=int(data["unit_cents"]),
        diagnosis_codes=codes if isinstance(codes, str) else tuple(codes),
        line_total_cents=int(data["line_total_cents"]),
        no_charge_reason=data.get("no_charge_reason") or None,
    )
