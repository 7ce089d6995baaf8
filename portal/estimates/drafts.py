"""A Good Faith Estimate being written: every field optional, so a draft can be saved half done.

A `Draft` is what the builder edits and what is sealed while the estimate is a draft. `assemble`
turns it into the frozen `GfeDocument` and lists every problem at once: what is missing (which
the document type cannot even hold), what the compliance check finds, and any character the PDF
font cannot print.
"""

import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from typing import Any, Self

from portal.estimates.compliance import Problem, check
from portal.estimates.document import (
    COEO_CONTACT,
    DIAGNOSIS_TBD,
    NONE_ANTICIPATED,
    GfeDocument,
    LineItem,
    Provider,
    format_cents,
)
from portal.estimates.pdf import unrenderable_characters

DRAFT_VERSION = 1
# No outpatient estimate comes near this; a total above it is a typing mistake.
TOTAL_SANITY_CENTS = 1_000_000_00
# A line whose provider row is blank or gone points at no NPI; this never passes the check.
NO_PROVIDER = ""


@dataclass(frozen=True, slots=True)
class DraftProvider:
    """A provider row as typed; blanks are empty strings."""

    name: str = ""
    npi: str = ""
    tin: str = ""
    location: str = ""
    state: str = ""

    def is_blank(self) -> bool:
        """Return whether nothing was entered in this row."""
        return not any(value.strip() for value in (self.name, self.npi, self.tin, self.location))


@dataclass(frozen=True, slots=True)
class DraftLine:
    """A line item as typed; `provider` is the index of its provider in the draft, or None."""

    provider: int | None = None
    cpt_code: str = ""
    description: str = ""
    quantity: int | None = None
    unit_cents: int | None = None
    diagnosis_codes: tuple[str, ...] = ()
    diagnosis_tbd: bool = False
    no_charge: bool = False  # ticked: the $0.00 is on purpose, for no_charge_reason
    no_charge_reason: str = ""  # a key of NO_CHARGE_REASONS, or "" when none is chosen

    def is_blank(self) -> bool:
        """Return whether nothing was entered in this row (the provider choice alone is not)."""
        return (not self.cpt_code.strip() and not self.description.strip()
                and self.quantity is None and self.unit_cents is None
                and not self.diagnosis_codes and not self.diagnosis_tbd
                and not self.no_charge)

    @property
    def total_cents(self) -> int | None:
        """Quantity times unit charge, once both are known."""
        if self.quantity is None or self.unit_cents is None:
            return None
        return self.quantity * self.unit_cents


@dataclass(frozen=True, slots=True)
class Draft:
    """Everything the builder holds; None or "" where nothing is entered yet."""

    client_legal_name: str = ""
    client_dob: date | None = None
    client_address: str = ""
    primary_service: str = ""
    period_start: date | None = None
    period_end: date | None = None
    frequency: str = ""
    sessions_min: int | None = None
    sessions_max: int | None = None
    providers: tuple[DraftProvider, ...] = ()
    lines: tuple[DraftLine, ...] = ()
    separately_scheduled: str = NONE_ANTICIPATED
    practice: Mapping[str, str] = field(default_factory=lambda: dict(COEO_CONTACT))

    @property
    def total_cents(self) -> int:
        """Sum of the lines whose total is known."""
        return sum(line.total_cents or 0 for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict for sealed storage."""
        return {
            "draft_version": DRAFT_VERSION,
            "client_legal_name": self.client_legal_name,
            "client_dob": _iso(self.client_dob),
            "client_address": self.client_address,
            "primary_service": self.primary_service,
            "period_start": _iso(self.period_start),
            "period_end": _iso(self.period_end),
            "frequency": self.frequency,
            "sessions_min": self.sessions_min,
            "sessions_max": self.sessions_max,
            "providers": [asdict(p) for p in self.providers],
            "lines": [
                {"provider": line.provider, "cpt_code": line.cpt_code,
                 "description": line.description, "quantity": line.quantity,
                 "unit_cents": line.unit_cents, "diagnosis_codes": list(line.diagnosis_codes),
                 "diagnosis_tbd": line.diagnosis_tbd, "no_charge": line.no_charge,
                 "no_charge_reason": line.no_charge_reason}
                for line in self.lines
            ],
            "separately_scheduled": self.separately_scheduled,
            "practice": dict(self.practice),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a draft from to_dict() output."""
        if data.get("draft_version") != DRAFT_VERSION:
            raise ValueError("unsupported draft version")
        return cls(
            client_legal_name=data.get("client_legal_name") or "",
            client_dob=_date(data.get("client_dob")),
            client_address=data.get("client_address") or "",
            primary_service=data.get("primary_service") or "",
            period_start=_date(data.get("period_start")),
            period_end=_date(data.get("period_end")),
            frequency=data.get("frequency") or "",
            sessions_min=data.get("sessions_min"),
            sessions_max=data.get("sessions_max"),
            providers=tuple(DraftProvider(**p) for p in data.get("providers") or ()),
            lines=tuple(
                DraftLine(
                    provider=line.get("provider"),
                    cpt_code=line.get("cpt_code") or "",
                    description=line.get("description") or "",
                    quantity=line.get("quantity"),
                    unit_cents=line.get("unit_cents"),
                    diagnosis_codes=tuple(line.get("diagnosis_codes") or ()),
                    diagnosis_tbd=bool(line.get("diagnosis_tbd")),
                    no_charge=bool(line.get("no_charge")),
                    no_charge_reason=line.get("no_charge_reason") or "",
                )
                for line in data.get("lines") or ()
            ),
            separately_scheduled=data.get("separately_scheduled") or "",
            practice=dict(data.get("practice") or COEO_CONTACT),
        )

    @classmethod
    def from_document(cls, doc: GfeDocument) -> Self:
        """Start a draft from an issued estimate (a correction or a renewal)."""
        index = {p.npi: i for i, p in enumerate(doc.providers)}
        return cls(
            client_legal_name=doc.client_legal_name,
            client_dob=doc.client_dob,
            client_address=doc.client_address,
            primary_service=doc.primary_service,
            period_start=doc.period_start,
            period_end=doc.period_end,
            frequency=doc.frequency,
            sessions_min=doc.sessions_min,
            sessions_max=doc.sessions_max,
            providers=tuple(DraftProvider(p.name, p.npi, p.tin, p.location, p.state)
                            for p in doc.providers),
            lines=tuple(
                DraftLine(
                    provider=index.get(item.provider_npi),
                    cpt_code=item.cpt_code,
                    description=item.description,
                    quantity=item.quantity,
                    unit_cents=item.unit_cents,
                    diagnosis_codes=(() if isinstance(item.diagnosis_codes, str)
                                     else tuple(item.diagnosis_codes)),
                    diagnosis_tbd=isinstance(item.diagnosis_codes, str),
                    no_charge=item.no_charge_reason is not None,
                    no_charge_reason=item.no_charge_reason or "",
                )
                for item in doc.line_items
            ),
            separately_scheduled=doc.separately_scheduled,
            practice=dict(COEO_CONTACT),
        )


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


# ---------------------------------------------------------------- draft -> document

MISSING = {
    "period_start": "Please enter the first date of the period of care.",
    "period_end": "Please enter the last date of the period of care.",
    "sessions_min": "Please enter the expected number of sessions.",
    "sessions_max": "Please enter the highest expected number of sessions (or the same number).",
}


def assemble(draft: Draft, *, gfe_number: str, issue_date: date,
             service_date: date | None = None) -> tuple[GfeDocument | None, list[Problem]]:
    """Return the document a draft would issue as, and every problem; None when it cannot exist.

    `service_date` is the date the primary service is scheduled (the estimate's plain column),
    printed as 45 CFR 149.610(c)(1)(ii) asks; None prints "Not yet scheduled". With no problems
    the document is exactly what will be frozen and printed.
    """
    problems: list[Problem] = []
    for name, message in MISSING.items():
        if getattr(draft, name) is None:
            problems.append(Problem(name, message))
    line_problems, lines = _lines(draft)
    problems += line_problems
    sessions_min = draft.sessions_min if draft.sessions_min is not None else 1
    sessions_max = draft.sessions_max if draft.sessions_max is not None else sessions_min
    doc = GfeDocument(
        gfe_number=gfe_number,
        issue_date=issue_date,
        client_legal_name=draft.client_legal_name.strip(),
        client_dob=draft.client_dob,
        client_address=draft.client_address.strip(),
        primary_service=draft.primary_service.strip(),
        period_start=draft.period_start or issue_date,
        period_end=draft.period_end or draft.period_start or issue_date,
        frequency=draft.frequency.strip(),
        sessions_min=sessions_min,
        sessions_max=sessions_max,
        providers=tuple(
            Provider(p.name.strip(), p.npi.strip(), p.tin.strip(), p.location.strip(),
                     p.state.strip().upper())
            for p in draft.providers
        ),
        line_items=lines,
        separately_scheduled=draft.separately_scheduled.strip(),
        practice=dict(draft.practice),
        service_date=service_date,
    )
    known = {problem.field for problem in problems}
    problems += [p for p in check(doc) if p.field not in known]
    problems += unprintable(doc)
    if not doc.line_items and not any(p.field == "line_items" for p in problems):
        problems.append(Problem("line_items", "Please add at least one item or service."))
    if doc.total_cents > TOTAL_SANITY_CENTS:
        problems.append(Problem(
            "line_items", f"The estimate comes to {format_cents(doc.total_cents)}, more than "
            f"{format_cents(TOTAL_SANITY_CENTS)}: please check the quantities and charges."))
    return (None if _unbuildable(draft) else doc), sorted(problems, key=_form_order)


# Problems are listed in the order the builder asks for things.
_SECTIONS = ("gfe_number", "client_legal_name", "client_dob", "client_address",
             "primary_service", "period_start", "period_end", "frequency", "sessions_min",
             "sessions_max", "providers", "line_items", "separately_scheduled", "practice")
_ROW_FIELDS = ("name", "npi", "tin", "location", "state", "provider_npi", "cpt_code",
               "description", "diagnosis_codes", "quantity", "unit_cents", "no_charge_reason",
               "line_total_cents")
_PATH = re.compile(r"(\w+)(?:\[(\d+)\])?(?:\.(\w+))?")


def _form_order(problem: Problem) -> tuple[int, int, int]:
    match = _PATH.fullmatch(problem.field)
    if not match:
        return (len(_SECTIONS), 0, 0)
    section, row, attr = match.groups()
    first = _SECTIONS.index(section) if section in _SECTIONS else len(_SECTIONS)
    second = int(row) if row is not None else -1
    third = _ROW_FIELDS.index(attr) if attr in _ROW_FIELDS else -1
    return (first, second, third)


def _unbuildable(draft: Draft) -> bool:
    return any(getattr(draft, name) is None for name in MISSING) or any(
        line.quantity is None or line.unit_cents is None for line in draft.lines)


def _lines(draft: Draft) -> tuple[list[Problem], tuple[LineItem, ...]]:
    problems: list[Problem] = []
    items = []
    for index, line in enumerate(draft.lines):
        path, label = f"line_items[{index}]", f"Line {index + 1}"
        provider = (draft.providers[line.provider]
                    if line.provider is not None and 0 <= line.provider < len(draft.providers)
                    else None)
        if provider is None:
            problems.append(Problem(f"{path}.provider_npi", f"{label}: choose the provider."))
        if line.quantity is None:
            problems.append(Problem(f"{path}.quantity", f"{label}: enter the quantity."))
        if line.unit_cents is None:
            problems.append(Problem(f"{path}.unit_cents", f"{label}: enter the charge per unit."))
        if not line.cpt_code.strip():
            problems.append(Problem(f"{path}.cpt_code",
                                    f"{label}: enter the service code (CPT or HCPCS)."))
        if line.diagnosis_tbd and line.diagnosis_codes:
            problems.append(Problem(
                f"{path}.diagnosis_codes",
                f'{label}: give diagnosis codes or tick "{DIAGNOSIS_TBD}", not both.'))
        quantity = line.quantity if line.quantity is not None else 0
        unit = line.unit_cents if line.unit_cents is not None else 0
        items.append(LineItem.priced(
            provider.npi.strip() if provider else NO_PROVIDER,
            line.cpt_code.strip().upper(),
            line.description.strip(),
            quantity,
            unit,
            DIAGNOSIS_TBD if line.diagnosis_tbd else tuple(line.diagnosis_codes),
            # Ticked without a reason gives "" here, which the check asks to choose.
            no_charge_reason=line.no_charge_reason if line.no_charge else None,
        ))
    return problems, tuple(items)


def unprintable(doc: GfeDocument) -> list[Problem]:
    """Return one problem per field holding characters the PDF font would print blank."""
    missing = set(unrenderable_characters(doc))
    if not missing:
        return []
    problems = []
    for path, text in _text_fields(doc):
        bad = sorted({char for char in text if char in missing})
        if bad:
            shown = " ".join(repr(c) if not c.isprintable() or c.isspace() else c for c in bad)
            problems.append(Problem(
                path,
                f"The PDF cannot print these characters: {shown}. Please write them with "
                "Latin, Greek or Cyrillic letters (for example the name as on an ID)."))
    return problems


def _text_fields(doc: GfeDocument) -> Iterator[tuple[str, str]]:
    for name in ("client_legal_name", "client_address", "primary_service", "frequency",
                 "separately_scheduled"):
        yield name, getattr(doc, name)
    for index, provider in enumerate(doc.providers):
        for name in ("name", "npi", "tin", "location", "state"):
            yield f"providers[{index}].{name}", getattr(provider, name)
    for index, item in enumerate(doc.line_items):
        yield f"line_items[{index}].cpt_code", item.cpt_code
        yield f"line_items[{index}].description", item.description
        yield f"line_items[{index}].diagnosis_codes", item.diagnosis_text
    for key, value in doc.practice.items():
        yield f"practice.{key}", value


def without_blank_rows(draft: Draft) -> Draft:
    """Drop blank provider and line rows, re-pointing lines at the providers that remain."""
    keep = [i for i, p in enumerate(draft.providers) if not p.is_blank()]
    moved = {old: new for new, old in enumerate(keep)}
    lines = tuple(
        replace(line, provider=moved.get(line.provider) if line.provider is not None else None)
        for line in draft.lines if not line.is_blank()
    )
    return replace(draft, providers=tuple(draft.providers[i] for i in keep), lines=lines)
