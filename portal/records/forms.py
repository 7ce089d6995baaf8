"""Forms for requests for a copy or an amendment, and for disclosures made outside the portal.

These only parse; what is allowed (deadlines, dates, lengths) is the services' rule
(`portal.records.requests`, `portal.records.disclosures`).
"""

from flask_wtf import FlaskForm
from wtforms import DateField, RadioField, SelectChoice, StringField, TextAreaField
from wtforms.validators import InputRequired, Length

from portal.records.disclosures import RECIPIENT_MAX, TEXT_MAX
from portal.records.requests import DETAILS_MAX, KIND_LABELS, REASON_MAX


def _at_most(limit: int) -> Length:
    return Length(max=limit, message=f"Please keep this under {limit} characters.")


class RequestForm(FlaskForm):
    """The client asks for a copy or an amendment of what the portal does not hold."""

    kind = RadioField(
        "What are you asking for?",
        choices=[SelectChoice(key, label) for key, label in KIND_LABELS.items()],
        validators=[InputRequired("Choose what you are asking for.")])
    details = TextAreaField(
        "Tell us what you would like",
        validators=[InputRequired("Please say what you are asking for."),
                    _at_most(DETAILS_MAX)],
        description="For a copy: which records, or which dates, and how you would like to "
                    "receive it (on paper, by email or another way). For a change: what you "
                    "think is wrong or missing, and why.")


class StaffRequestForm(RequestForm):
    """Staff write down a request the client made on paper, in person or by phone."""

    kind = RadioField(
        "What the client asked for",
        choices=[SelectChoice("copy", "A copy of their record"),
                 SelectChoice("amendment", "A change (amendment) to their record")],
        validators=[InputRequired("Choose what the client asked for.")])
    details = TextAreaField(
        "What they asked for, in their words",
        validators=[InputRequired("Write down what the client asked for."),
                    _at_most(DETAILS_MAX)],
        description="The client reads this in the portal.")
    received_on = DateField(
        "Day the request arrived",
        validators=[InputRequired("Enter the day the request arrived.")],
        invalid_value_message="Enter a real date, such as 2026-03-01.",
        description="The deadline counts from this day.")


class ReasonForm(FlaskForm):
    """An extension's or a denial's written reason (the client reads it)."""

    reason = TextAreaField(
        "Reason",
        validators=[InputRequired("Write the reason; the client reads it."),
                    _at_most(REASON_MAX)])


class FulfilForm(FlaskForm):
    note = TextAreaField(
        "A note for the client (optional)",
        validators=[_at_most(REASON_MAX)],
        description="For example how the copy was sent, or what was changed.")


class DisclosureForm(FlaskForm):
    disclosed_on = DateField(
        "Date of the disclosure",
        validators=[InputRequired("Enter the date it was disclosed.")],
        invalid_value_message="Enter a real date, such as 2026-03-01.")
    recipient = StringField(
        "Who received it",
        validators=[InputRequired("Enter who received it."), _at_most(RECIPIENT_MAX)],
        description="A person or an organization, with their address if known.")
    content = TextAreaField(
        "What was disclosed",
        validators=[InputRequired("Describe what was disclosed."), _at_most(TEXT_MAX)],
        description="A short description, such as “attendance dates, March to May 2026”.")
    purpose = TextAreaField(
        "Purpose or legal basis",
        validators=[InputRequired("Enter the purpose or the legal basis."),
                    _at_most(TEXT_MAX)],
        description="For example “court order”, “required report to the health "
                    "department” or a copy of the request.")
