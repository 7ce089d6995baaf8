"""Forms for the estimate builder and billed amounts (button-only actions: portal.forms).

The builder only checks that what was typed can be read (dates, counts, money, lengths): a
draft may be incomplete. Whether it may be issued is the compliance check's job (drafts.assemble).
"""

import re
from datetime import date, timedelta

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, ValidationError

from portal import practice
from portal.estimates.compliance import US_STATES
from portal.estimates.document import DIAGNOSIS_TBD, NO_CHARGE_REASONS, TELEHEALTH
from portal.estimates.drafts import Draft, DraftLine, DraftProvider
from portal.estimates.money import AmountError, cents_input, parse_cents, parse_count

MAX_PROVIDERS = 10
MAX_LINES = 60
MIN_PROVIDER_ROWS = 2
MIN_LINE_ROWS = 4
EARLIEST = date(1900, 1, 1)
LATEST = date(2100, 12, 31)
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_CODE_SPLIT = re.compile(r"[\s,;]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def multiline(value):
    """Browsers send CRLF from a textarea; keep plain newlines and no other control characters."""
    if not isinstance(value, str):
        return value
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return _CONTROL.sub("", value)


def one_line(value):
    """A single-line field holds no line breaks or control characters."""
    if not isinstance(value, str):
        return value
    return " ".join(_CONTROL.sub(" ", value.replace("\t", " ")).split("\n")).strip()


ONE = [one_line]
MULTI = [multiline]


def choices(pairs) -> list[SelectChoice]:
    """Build select options from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]


STATE_CHOICES = choices([("", "Choose…")] + [(s, s) for s in sorted(US_STATES)])
NO_CHARGE_CHOICES = choices([("", "Choose…")]
                            + [(key, words[0].upper() + words[1:])
                               for key, words in NO_CHARGE_REASONS.items()])


# ------------------------------------------------------------------ fields that parse text


class _ParsedField(StringField):
    """A text input whose value is parsed; bad text becomes an inline error, never a 500."""

    def process_formdata(self, valuelist):
        self.data = None
        if valuelist:
            self.data = self.parse(valuelist[0])

    def parse(self, text: str):  # pragma: no cover - overridden
        raise NotImplementedError

    def format(self, value) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def _value(self) -> str:
        raw = getattr(self, "raw_data", None)
        if raw:
            return raw[0]
        return self.format(self.data) if self.data is not None else ""


class CentsField(_ParsedField):
    """Dollars typed as text ("$1,234.50"), held as integer cents."""

    def parse(self, text):
        try:
            return parse_cents(text)
        except AmountError as error:
            raise ValueError(str(error)) from None

    def format(self, value):
        return cents_input(value)


class CountField(_ParsedField):
    """A whole number in a range."""

    def __init__(self, label=None, validators=None, low=1, high=999, what="number", **kwargs):
        super().__init__(label, validators, **kwargs)
        self.low, self.high, self.what = low, high, what

    def parse(self, text):
        try:
            return parse_count(text, low=self.low, high=self.high, what=self.what)
        except AmountError as error:
            raise ValueError(str(error)) from None

    def format(self, value):
        return str(value)


class DayField(_ParsedField):
    """A calendar date from <input type="date"> (YYYY-MM-DD), within sane years."""

    def parse(self, text):
        value = (text or "").strip()
        if not value:
            return None
        if not _DAY.fullmatch(value):
            raise ValueError("Enter the date like 2026-03-01 (year-month-day).")
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise ValueError("That date does not exist — please check it.") from None
        if not EARLIEST <= day <= LATEST:
            raise ValueError("That date is out of range — please check the year.")
        return day

    def format(self, value):
        return value.isoformat()


# ------------------------------------------------------------------------------- builder


class ProviderForm(Form):
    """One provider row."""

    name = StringField("Provider or facility name", validators=[Length(max=200)], filters=ONE)
    npi = StringField("NPI", validators=[Length(max=20)], filters=ONE,
                      description="10 digits, from the NPI registry.")
    tin = StringField("Tax ID (EIN)", validators=[Length(max=20)], filters=ONE,
                      description="Like 12-3456789. Never a Social Security number.")
    location = StringField("Where services are given", validators=[Length(max=300)],
                           filters=ONE,
                           description=f'Office address, or "{TELEHEALTH}".')
    state = SelectField("State", choices=STATE_CHOICES, validate_choice=True, default="PA")


class LineForm(Form):
    """One line item row."""

    provider = SelectField("Provider", choices=choices([("", "Choose…")]), validate_choice=False)
    cpt_code = StringField("Service code", validators=[Length(max=16)], filters=ONE)
    description = StringField("Description", validators=[Length(max=200)], filters=ONE)
    diagnosis = StringField("Diagnosis codes", validators=[Length(max=120)], filters=ONE)
    diagnosis_tbd = BooleanField(DIAGNOSIS_TBD)
    quantity = CountField("Quantity", what="quantity")
    unit_charge = CentsField("Unit charge")
    no_charge = BooleanField("No charge")
    no_charge_reason = SelectField("Why no charge", choices=NO_CHARGE_CHOICES,
                                   validate_choice=True, default="")

    def validate_provider(self, field):
        """Accept only a provider row of this form (or nothing yet)."""
        allowed = {choice.value for choice in field.choices}
        if (field.data or "") not in allowed:
            field.data = ""
            raise ValidationError("Choose a provider from the list.")


class BuilderForm(FlaskForm):
    """The whole estimate; every field optional so a draft can be saved part-way."""

    client_legal_name = StringField("Client's full legal name", validators=[Length(max=200)],
                                    filters=ONE)
    client_dob = DayField("Date of birth")
    client_address = TextAreaField("Mailing address", validators=[Length(max=500)],
                                   filters=MULTI)
    primary_service = StringField(
        "Primary service, in plain words", validators=[Length(max=300)], filters=ONE,
        description='For example "Individual psychotherapy, 53+ minutes (CPT 90837), weekly".')
    period_start = DayField("First day")
    period_end = DayField("Last day")
    frequency = StringField("How often", validators=[Length(max=120)], filters=ONE,
                            description='For example "Weekly" or "Every other week".')
    sessions_min = CountField("Fewest sessions expected", what="number of sessions")
    sessions_max = CountField("Most sessions expected", what="number of sessions")
    providers = FieldList(FormField(ProviderForm), min_entries=MIN_PROVIDER_ROWS,
                          max_entries=MAX_PROVIDERS)
    lines = FieldList(FormField(LineForm), min_entries=MIN_LINE_ROWS, max_entries=MAX_LINES)
    separately_scheduled = TextAreaField(
        "Items or services scheduled separately", validators=[Length(max=1000)],
        filters=MULTI,
        description='Care you expect that needs its own estimate, or "None anticipated".')
    scheduled_on = DayField("Date the service was scheduled")
    service_date = DayField("Date of the first scheduled service")
    requested_on = DayField("Date the client asked for an estimate")

    def validate_client_dob(self, field):
        """A date of birth is in the past."""
        if field.data is not None and field.data > practice.today():
            raise ValidationError("The date of birth cannot be in the future.")

    def validate_scheduled_on(self, field):
        """Scheduling is recorded when it happens: today, or within the past year."""
        _within(field, back=366, ahead=0, what="scheduling date")

    def validate_requested_on(self, field):
        """A request is recorded when it arrives: today, or within the past year."""
        _within(field, back=366, ahead=0, what="request date")

    def validate_service_date(self, field):
        """Scheduling needs both dates, the service on or after the day it was booked."""
        scheduled = self.scheduled_on.data
        if (field.data is None) != (scheduled is None) and not self.scheduled_on.errors \
                and not field.errors:
            raise ValidationError("Enter both the scheduling date and the service date, or "
                                  "neither.")
        if field.data and scheduled and field.data < scheduled:
            raise ValidationError("The service date is before the day it was scheduled.")
        _within(field, back=366, ahead=3 * 366, what="service date")


def _within(field, *, back: int, ahead: int, what: str) -> None:
    """Keep deadline dates near today (a typo of a year would make nonsense of the deadline)."""
    if field.data is None or field.errors:
        return
    today = practice.today()
    if field.data > today + timedelta(days=ahead):
        raise ValidationError(f"The {what} cannot be that far in the future." if ahead
                              else f"The {what} cannot be in the future.")
    if field.data < today - timedelta(days=back):
        raise ValidationError(f"The {what} is more than a year ago — please check the year.")


def set_provider_choices(form: BuilderForm, names: list[str]) -> None:
    """Offer every provider row in each line's provider list, named when known."""
    options = [("", "Choose…")]
    for index in range(len(form.providers)):
        name = names[index].strip() if index < len(names) else ""
        options.append((str(index), name or f"Provider {index + 1}"))
    for entry in form.lines:
        entry.form.provider.choices = choices(options)


def parse_diagnoses(text: str) -> tuple[str, ...]:
    """Split "F41.1, z63.0" into ("F41.1", "Z63.0")."""
    return tuple(code.upper() for code in _CODE_SPLIT.split(text or "") if code)


def draft_from_form(form: BuilderForm, practice: dict) -> Draft:
    """Read a validated builder form into a draft (blank rows are kept; the service drops them)."""
    providers = tuple(
        DraftProvider(
            name=entry.form.name.data or "", npi=(entry.form.npi.data or "").strip(),
            tin=(entry.form.tin.data or "").strip(), location=entry.form.location.data or "",
            state=entry.form.state.data or "")
        for entry in form.providers
    )
    lines = []
    for entry in form.lines:
        sub = entry.form
        provider = int(sub.provider.data) if (sub.provider.data or "").isdigit() else None
        lines.append(DraftLine(
            provider=provider, cpt_code=(sub.cpt_code.data or "").strip().upper(),
            description=sub.description.data or "", quantity=sub.quantity.data,
            # "No charge" with the charge left blank means $0.00.
            unit_cents=(0 if sub.no_charge.data and sub.unit_charge.data is None
                        else sub.unit_charge.data),
            diagnosis_codes=parse_diagnoses(sub.diagnosis.data or ""),
            diagnosis_tbd=bool(sub.diagnosis_tbd.data),
            no_charge=bool(sub.no_charge.data),
            no_charge_reason=sub.no_charge_reason.data or ""))
    return Draft(
        client_legal_name=form.client_legal_name.data or "",
        client_dob=form.client_dob.data,
        client_address=form.client_address.data or "",
        primary_service=form.primary_service.data or "",
        period_start=form.period_start.data,
        period_end=form.period_end.data,
        frequency=form.frequency.data or "",
        sessions_min=form.sessions_min.data,
        sessions_max=form.sessions_max.data,
        providers=providers,
        lines=tuple(lines),
        separately_scheduled=form.separately_scheduled.data or "",
        practice=practice,
    )


def form_data(draft: Draft, *, provider_rows: int, line_rows: int,
              scheduled_on=None, service_date=None, requested_on=None) -> dict:
    """Return data for BuilderForm(data=...) from a saved draft, padded with blank rows."""
    providers = [
        {"name": p.name, "npi": p.npi, "tin": p.tin, "location": p.location,
         "state": p.state or "PA"}
        for p in draft.providers
    ]
    while len(providers) < min(provider_rows, MAX_PROVIDERS):
        providers.append({"state": "PA"})
    lines = [
        {"provider": "" if line.provider is None else str(line.provider),
         "cpt_code": line.cpt_code, "description": line.description,
         "diagnosis": ", ".join(line.diagnosis_codes), "diagnosis_tbd": line.diagnosis_tbd,
         "quantity": line.quantity, "unit_charge": line.unit_cents,
         "no_charge": line.no_charge, "no_charge_reason": line.no_charge_reason}
        for line in draft.lines
    ]
    while len(lines) < min(line_rows, MAX_LINES):
        lines.append({})
    return {
        "client_legal_name": draft.client_legal_name,
        "client_dob": draft.client_dob,
        "client_address": draft.client_address,
        "primary_service": draft.primary_service,
        "period_start": draft.period_start,
        "period_end": draft.period_end,
        "frequency": draft.frequency,
        "sessions_min": draft.sessions_min,
        "sessions_max": draft.sessions_max,
        "providers": providers,
        "lines": lines,
        "separately_scheduled": draft.separately_scheduled,
        "scheduled_on": scheduled_on,
        "service_date": service_date,
        "requested_on": requested_on,
    }


# ------------------------------------------------------------------------- other forms


class NewEstimateForm(FlaskForm):
    """Choose the client a new estimate is for."""

    client = SelectField("Client", choices=[], validate_choice=True,
                         validators=[DataRequired("Choose a client.")])


class CorrectionForm(FlaskForm):
    """Correct a recorded deadline date: a new date (none when withdrawn), why, and a note.

    Which dates may be given is the service's rule (corrections.correct_date); the reasons'
    keys are fixed by the database, their words live in corrections.REASON_LABELS.
    """

    new_date = DayField("Corrected date", description="Leave empty when the reason is "
                                                      "“withdrawn”: the date is cleared.")
    reason = SelectField("Why it is being corrected", choices=[], validate_choice=True,
                         validators=[DataRequired("Choose why the date is being corrected.")])
    note = TextAreaField("Note (optional)", validators=[Length(max=500)], filters=MULTI,
                         description="Kept with the correction and seen by the practice only.")


class Needed:
    """A value is required; unlike DataRequired, zero counts as a value (a $0.00 bill)."""

    field_flags = {"required": True}

    def __init__(self, message: str):
        self.message = message

    def __call__(self, form, field):
        if field.data is None and not field.errors:
            raise ValidationError(self.message)


class NextServiceForm(FlaskForm):
    """When the client's next session is, for a correction's due date."""

    next_service = DayField("Next scheduled session",
                            validators=[Needed("Enter the date of the next session.")])


class BillForm(FlaskForm):
    """An amount billed by one provider of an issued estimate."""

    provider = SelectField("Provider", choices=[], validate_choice=True,
                           validators=[DataRequired("Choose the provider who billed.")])
    amount = CentsField("Amount billed ($)", validators=[Needed("Enter the amount billed.")])
    # Which dates a bill may carry (not in the future, not before the estimate was issued or
    # its period starts) is the service's rule: billing.check_bill_date.
    bill_date = DayField("Date on the bill", validators=[Needed("Enter the date on the bill.")])
