"""Check a Good Faith Estimate against 45 CFR 149.610 before it is issued.

`check` lists every problem at once, in words a therapist can act on, so a draft can be fixed in
one pass instead of one error per submit.
"""

import re
from dataclasses import dataclass
from datetime import date, timedelta

from portal.estimates.document import (
    CONTACT_KEYS,
    DIAGNOSIS_TBD,
    NO_CHARGE_REASONS,
    GfeDocument,
    LineItem,
    Provider,
    format_cents,
)

NPI_RE = re.compile(r"\d{10}")
# CPT Category I (5 digits), Category II/III and PLA (4 digits + F/T/U), HCPCS Level II.
CPT_RE = re.compile(r"\d{5}|\d{4}[FTU]|[A-V]\d{4}")
# ICD-10-CM: letter, digit, letter-or-digit, then optionally a dot and 1-4 more characters.
ICD10_RE = re.compile(r"[A-Z]\d[0-9A-Z](\.[0-9A-Z]{1,4})?")
SSN_SHAPE_RE = re.compile(r"\d{3}-\d{2}-\d{4}")
EIN_SHAPE_RE = re.compile(r"\d{2}-?\d{7}")

# Prefixes the IRS assigns to EINs; anything else (00, 07-09, 17-19, 28, 29, 49, 69, 70, 78, 79,
# 89, 96, 97) cannot be an EIN.
VALID_EIN_PREFIXES = frozenset(
    f"{n:02d}"
    for n in (
        *range(1, 7), *range(10, 17), *range(20, 28), *range(30, 49), *range(50, 69),
        *range(71, 78), *range(80, 89), *range(90, 96), 98, 99,
    )
)
# Codes billed once per session (one visit), by kind of session. Add-on codes (90785, 90833,
# 90836, 90838, 90840) and crisis psychotherapy (unplanned) are not sessions of planned care.
EVALUATION_CODES = frozenset({"90791", "90792"})
SESSION_KINDS: dict[str, frozenset[str]] = {
    "individual psychotherapy": frozenset({"90832", "90834", "90837"}),
    "family psychotherapy": frozenset({"90846", "90847"}),
    "group psychotherapy": frozenset({"90849", "90853"}),
}
_CODE_IN_TEXT = re.compile(r"\b\d{5}\b")
US_STATES = frozenset({
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN",
    "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH",
    "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT",
    "VT", "VA", "WA", "WV", "WI", "WY", "PR", "GU", "VI", "AS", "MP",
})


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing to fix: where it is (a field path) and what to do, in plain words."""

    field: str
    message: str


def luhn_npi_valid(npi: str) -> bool:
    """Return whether npi is 10 digits whose last digit is its Luhn check digit.

    CMS computes the check digit over the NPI prefixed with 80840 (the US health card issuer).
    """
    if not NPI_RE.fullmatch(npi):
        return False
    total = 0
    for position, char in enumerate(reversed("80840" + npi)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def normalize_tin(tin: str) -> str:
    """Return an EIN as XX-XXXXXXX, or raise ValueError saying in plain words what is wrong.

    A Social Security number never goes on an estimate, so SSN-shaped input is refused and the
    message does not repeat it.
    """
    value = tin.strip()
    if not value:
        raise ValueError("Please enter the Tax Identification Number (EIN), like 12-3456789.")
    if SSN_SHAPE_RE.fullmatch(value):
        raise ValueError(
            "This looks like a Social Security number. Please use the Employer Identification "
            "Number (EIN) instead, written like 12-3456789."
        )
    if not EIN_SHAPE_RE.fullmatch(value):
        raise ValueError(
            "The Tax Identification Number should be a 9-digit EIN, written like 12-3456789."
        )
    digits = value.replace("-", "")
    if digits[:2] not in VALID_EIN_PREFIXES:
        raise ValueError(
            f"An EIN cannot start with {digits[:2]} — please re-check the number."
        )
    return f"{digits[:2]}-{digits[2:]}"


def check(doc: GfeDocument) -> list[Problem]:
    """Return every problem with the estimate; an empty list means it may be issued."""
    problems: list[Problem] = []
    problems += _check_header(doc)
    problems += _check_period(doc)
    problems += _check_practice(doc)
    problems += _check_providers(doc)
    for index, item in enumerate(doc.line_items):
        problems += _check_line(doc, index, item)
    problems += check_sessions(doc)
    return problems


def _kind_of(code: str) -> str | None:
    return next((kind for kind, codes in SESSION_KINDS.items() if code in codes), None)


def _primary_kind(doc: GfeDocument) -> str | None:
    """The kind of session the primary service is: the one its description names by code
    ("... (CPT 90837) ...") or by word ("Individual psychotherapy"), or else the kind with the
    most sessions on the lines."""
    named = {_kind_of(code) for code in _CODE_IN_TEXT.findall(doc.primary_service)} - {None}
    if not named:
        words = set(re.findall(r"[a-z]+", doc.primary_service.lower()))
        named = {kind for kind in SESSION_KINDS if kind.split()[0] in words}
    if len(named) == 1:
        return named.pop()
    counts: dict[str, int] = {}
    for item in doc.line_items:
        kind = _kind_of(item.cpt_code)
        if kind is not None and (not named or kind in named):
            counts[kind] = counts.get(kind, 0) + item.quantity
    return max(counts, key=counts.__getitem__) if counts else None


def check_sessions(doc: GfeDocument) -> list[Problem]:
    """Recurring care: the lines price exactly the number of sessions the estimate says it prices.

    The estimate states the expected number of sessions as a range (sessions_min to sessions_max)
    and says in print that it prices the higher number, because it must cover the expected
    number of sessions (45 CFR 149.610(c)(1)(iii); for recurring care, the total number of
    recurring items within the period). So for recurring care (sessions_max > 1) the sessions
    of the primary service on the lines must add up to sessions_max exactly: fewer would leave
    expected sessions unpriced (and the printed statement false), more would price sessions
    the estimate says are not expected. Anything between min and max is not enough: a bill for
    sessions_max sessions must be within the estimate.

    The sessions of the primary service are the lines of its kind (individual, family or group
    psychotherapy: the kind its description names by code or by word, or else the kind with
    the most sessions), plus a diagnostic evaluation (90791, 90792), which is the first of
    them. Other lines, such as family sessions alongside individual therapy or crisis
    psychotherapy, are items furnished in conjunction with the primary service and are priced
    on their own.
    """
    expected = doc.sessions_max
    if expected <= 1 or doc.sessions_min > expected:
        return []
    kind = _primary_kind(doc)
    sessions = [(index, item) for index, item in enumerate(doc.line_items)
                if kind is not None and _kind_of(item.cpt_code) == kind]
    if not sessions:
        what = f"a line of {kind}" if kind else "a session (a psychotherapy code such as 90837)"
        return [Problem(
            "line_items",
            f"The estimate says it prices {expected} sessions, but no line is {what}. Add a "
            "line for the sessions, with the number of sessions as its quantity.")]
    counted = [(index, item) for index, item in enumerate(doc.line_items)
               if item.cpt_code in EVALUATION_CODES] + sessions
    priced = sum(item.quantity for _, item in counted)
    if priced == expected:
        return []
    codes = sorted({item.cpt_code for _, item in counted})
    index, main = max(sessions, key=lambda pair: pair[1].quantity)
    fixed = main.quantity + expected - priced
    evaluation = (" (the evaluation counts as the first session)"
                  if any(item.cpt_code in EVALUATION_CODES for _, item in counted) else "")
    how = (f"make line {index + 1}'s quantity {fixed}, or change the most sessions expected "
           f"to {priced}" if fixed >= 1 else f"change the most sessions expected to {priced}")
    return [Problem(
        f"line_items[{index}].quantity",
        f"The estimate says it prices {expected} sessions of {kind}, but the lines for them "
        f"({' and '.join(codes)}) add up to {priced}{evaluation}: {how}.")]



def _missing(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _check_header(doc: GfeDocument) -> list[Problem]:
    problems = []
    required = (
        ("gfe_number", "Please give the estimate a number."),
        ("client_legal_name", "Please enter the client's full legal name."),
        ("client_dob", "Please enter the client's date of birth."),
        ("client_address", "Please enter the client's address."),
        ("primary_service", "Please describe the main service, e.g. individual psychotherapy."),
        ("frequency", "Please say how often sessions are expected, e.g. weekly."),
        ("separately_scheduled", 'List separately scheduled items, or write "None anticipated".'),
    )
    for name, message in required:
        if _missing(getattr(doc, name)):
            problems.append(Problem(name, message))
    if doc.client_dob is not None and doc.client_dob > doc.issue_date:
        problems.append(Problem("client_dob", "The date of birth is after the issue date."))
    if doc.sessions_min < 1:
        problems.append(Problem("sessions_min", "Expect at least 1 session."))
    if doc.sessions_max < doc.sessions_min:
        problems.append(
            Problem(
                "sessions_max",
                f"The most sessions ({doc.sessions_max}) is fewer than the fewest "
                f"({doc.sessions_min}).",
            )
        )
    return problems


def _one_year_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February: the anniversary falls on 1 March
        return date(day.year + 1, 3, 1)


def _check_period(doc: GfeDocument) -> list[Problem]:
    if doc.period_end < doc.period_start:
        return [Problem("period_end", "The period ends before it starts.")]
    last_allowed = _one_year_after(doc.period_start) - timedelta(days=1)
    if doc.period_end > last_allowed:
        return [
            Problem(
                "period_end",
                "An estimate can cover at most 12 months; with this start date the period "
                f"must end by {last_allowed:%B} {last_allowed.day}, {last_allowed.year}.",
            )
        ]
    return []


def _check_practice(doc: GfeDocument) -> list[Problem]:
    return [
        Problem(f"practice.{key}", f"The practice's {key.replace('_', ' ')} is missing.")
        for key in CONTACT_KEYS
        if _missing(doc.practice.get(key))
    ]


def _check_providers(doc: GfeDocument) -> list[Problem]:
    if not doc.providers:
        return [Problem("providers", "Please list at least one provider.")]
    problems = []
    seen: set[str] = set()
    for index, provider in enumerate(doc.providers):
        problems += _check_provider(doc, index, provider)
        if provider.npi in seen:
            problems.append(
                Problem(f"providers[{index}].npi", f"NPI {provider.npi} is listed twice.")
            )
        seen.add(provider.npi)
    return problems


def _check_provider(doc: GfeDocument, index: int, provider: Provider) -> list[Problem]:
    path = f"providers[{index}]"
    who = provider.name.strip() or f"Provider {index + 1}"
    problems = []
    if _missing(provider.name):
        problems.append(Problem(f"{path}.name", f"Please enter the name of provider {index + 1}."))
    if not NPI_RE.fullmatch(provider.npi):
        problems.append(
            Problem(f"{path}.npi", f"{who}: the NPI should be exactly 10 digits.")
        )
    elif not luhn_npi_valid(provider.npi):
        problems.append(
            Problem(
                f"{path}.npi",
                f"NPI {provider.npi} fails its check digit — please re-check the number.",
            )
        )
    try:
        normalize_tin(provider.tin)
    except ValueError as error:
        problems.append(Problem(f"{path}.tin", f"{who}: {error}"))
    if _missing(provider.location):
        problems.append(
            Problem(f"{path}.location", f"{who}: enter the office address, or Telehealth.")
        )
    if provider.state not in US_STATES:
        problems.append(
            Problem(f"{path}.state", f"{who}: enter the state as two capital letters, like PA.")
        )
    if not doc.lines_for(provider.npi):
        problems.append(Problem(path, f"{who} has no items or services in the estimate."))
    return problems


def _check_line(doc: GfeDocument, index: int, item: LineItem) -> list[Problem]:
    path = f"line_items[{index}]"
    line = f"Line {index + 1}"
    problems = []
    if doc.provider(item.provider_npi) is None:
        problems.append(
            Problem(
                f"{path}.provider_npi",
                f"{line} is for NPI {item.provider_npi}, which is not a listed provider.",
            )
        )
    if not CPT_RE.fullmatch(item.cpt_code):
        problems.append(
            Problem(
                f"{path}.cpt_code",
                f"{line}: service code {item.cpt_code!r} should be 5 characters, like 90837.",
            )
        )
    if _missing(item.description):
        problems.append(Problem(f"{path}.description", f"{line}: please describe the service."))
    problems += _check_diagnoses(path, line, item.diagnosis_codes)
    if not isinstance(item.quantity, int) or item.quantity < 1:
        problems.append(Problem(f"{path}.quantity", f"{line}: the quantity must be at least 1."))
    if not isinstance(item.unit_cents, int) or item.unit_cents < 0:
        problems.append(
            Problem(f"{path}.unit_cents", f"{line}: the charge cannot be less than $0.00.")
        )
    else:
        problems += _check_no_charge(path, line, item)
    if item.line_total_cents != item.expected_total_cents:
        problems.append(
            Problem(
                f"{path}.line_total_cents",
                f"{line}: the total does not equal quantity times the charge.",
            )
        )
    return problems


def _check_no_charge(path: str, line: str, item: LineItem) -> list[Problem]:
    """A $0.00 line says so on purpose: "No charge" with a reason, never a forgotten price."""
    reason = item.no_charge_reason
    if reason is not None and reason not in NO_CHARGE_REASONS:
        return [Problem(f"{path}.no_charge_reason", f"{line}: choose why there is no charge.")]
    if item.unit_cents == 0 and reason is None:
        return [Problem(
            f"{path}.unit_cents",
            f"{line}: the charge is $0.00. If there is really no charge, tick “No charge” "
            "and choose why; otherwise enter the charge.")]
    if item.unit_cents > 0 and reason is not None:
        return [Problem(
            f"{path}.no_charge_reason",
            f"{line} is marked “No charge” but charges {format_cents(item.unit_cents)} "
            "each: untick “No charge”, or make the charge 0.")]
    return []


def _check_diagnoses(path: str, line: str, codes: tuple[str, ...] | str) -> list[Problem]:
    field = f"{path}.diagnosis_codes"
    if isinstance(codes, str):
        if codes == DIAGNOSIS_TBD:
            return []
        return [Problem(field, f'{line}: list diagnosis codes, or "{DIAGNOSIS_TBD}".')]
    if not codes:
        return [Problem(field, f'{line}: add a diagnosis code, or "{DIAGNOSIS_TBD}".')]
    return [
        Problem(field, f"{line}: {code!r} is not a valid ICD-10 code (examples: F41.1, Z63.0).")
        for code in codes
        if not (isinstance(code, str) and ICD10_RE.fullmatch(code))
    ]
