"""The administrator's forms for a minor and their guardians (the rules are `links`'s; these
only parse; field names match the `field` of its RuleErrors)."""

from flask_wtf import FlaskForm
from wtforms import DateField, EmailField, RadioField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length

from portal.accounts.identity import NAME_MAX

CONSENT_LABELS = {
    "minor": "The minor (14 or over)",
    "guardian": "A parent or guardian",
}


class MinorForm(FlaskForm):
    date_of_birth = DateField(
        "Date of birth",
        validators=[InputRequired("Enter the client's date of birth.")],
        invalid_value_message="Enter a real date, such as 2011-03-01.")
    consent_by = RadioField(
        "Who consented to treatment",
        choices=[SelectChoice(key, label) for key, label in CONSENT_LABELS.items()],
        validators=[InputRequired("Please choose who consented to treatment.")])


class LinkForm(FlaskForm):
    guardian = SelectField("Parent or guardian account", choices=[], validate_choice=False,
                           validators=[DataRequired("Choose a parent or guardian account.")])


class GuardianInviteForm(FlaskForm):
    name = StringField("Their name", validators=[
        DataRequired("Enter the parent or guardian's name."),
        Length(max=NAME_MAX, message=f"Use at most {NAME_MAX} characters.")])
    email = EmailField("Email address", validators=[
        DataRequired("Enter their email address."),
        Length(max=254, message="That email address is too long.")])
