"""Account forms; field names match the `field` of the service's RuleErrors."""

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    EmailField,
    HiddenField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length, Optional

from portal.accounts.identity import NAME_MAX, PRONOUNS_MAX
from portal.accounts.passwords import MAX_LENGTH
from portal.accounts.profile import CREDENTIALS_MAX, REPLY_HOURS_MAX

# Sign-in accepts whatever was typed (up to a sane bound) and never says which part was wrong.
SIGNIN_MAX = 1024


def _new_password(label: str, missing: str) -> PasswordField:
    return PasswordField(label, validators=[
        DataRequired(missing),
        Length(max=MAX_LENGTH, message=f"Use at most {MAX_LENGTH} characters.")])


def _same_as(other: str, label: str, missing: str) -> PasswordField:
    return PasswordField(label, validators=[
        DataRequired(missing), EqualTo(other, message="The two passwords are not the same.")])


def _current_password() -> PasswordField:
    return PasswordField("Current password", validators=[
        DataRequired("Enter your current password."), Length(max=SIGNIN_MAX)])


class SignInForm(FlaskForm):
    email = EmailField("Email address", validators=[DataRequired("Enter your email address."),
                                                    Length(max=254, message="That email "
                                                           "address is too long.")])
    password = PasswordField("Password", validators=[DataRequired("Enter your password."),
                                                     Length(max=SIGNIN_MAX)])
    next = HiddenField()


class CodeForm(FlaskForm):
    code = StringField("6-digit code from your app, or a recovery code",
                       validators=[DataRequired("Enter the code from your app."),
                                   Length(max=32, message="That code is too long.")])


class NewPasswordForm(FlaskForm):
    password = _new_password("New password", "Choose a password.")
    confirm = _same_as("password", "Type it again", "Type the password again.")


class ForgotPasswordForm(FlaskForm):
    email = EmailField("Email address", validators=[DataRequired("Enter your email address."),
                                                    Length(max=254)])


class ChangePasswordForm(FlaskForm):
    current_password = _current_password()
    new_password = _new_password("New password", "Choose a new password.")
    confirm = _same_as("new_password", "Type the new password again",
                       "Type the new password again.")


class ConfirmPasswordForm(FlaskForm):
    current_password = _current_password()


class MfaSetupForm(FlaskForm):
    current_password = PasswordField("Your password", validators=[
        DataRequired("Enter your password."), Length(max=SIGNIN_MAX)])
    code = StringField("6-digit code from your app", validators=[
        DataRequired("Enter the 6-digit code your app shows."),
        Length(max=16, message="That code is too long.")])


class InviteForm(FlaskForm):
    name = StringField("Full name", validators=[DataRequired("Enter the person's name."),
                                                Length(max=200)])
    email = EmailField("Email address", validators=[DataRequired("Enter an email address."),
                                                    Length(max=254)])
    role = SelectField("Role", choices=[SelectChoice("client", "Client"),
                                        SelectChoice("therapist", "Therapist"),
                                        SelectChoice("admin", "Administrator"),
                                        SelectChoice("guardian", "Parent or guardian")],
                       default="client")
    therapist = SelectField("Therapist (for clients)", choices=[], validate_choice=False,
                            validators=[Optional()])


class LastServiceForm(FlaskForm):
    """A client's last date of service (which dates are allowed is
    `service.set_last_service_on`'s rule; this only parses)."""

    last_service_on = DateField(
        "Date",
        validators=[InputRequired("Enter the last date of service.")],
        invalid_value_message="Enter a real date, such as 2026-03-01.",
        description="A discharge or the last session. The record is kept for the retention "
                    "period from this day or the last portal activity, whichever is later.")


def _at_most(limit: int) -> Length:
    return Length(max=limit, message=f"Use at most {limit} characters.")


class ProfileForm(FlaskForm):
    """The name someone goes by and their pronouns; staff also credentials and reply hours
    (`update_profile` checks and cleans them; the view drops the staff fields for clients)."""

    name = StringField("The name you go by", validators=[
        DataRequired("Please enter the name you go by."), _at_most(NAME_MAX)])
    pronouns = StringField("Pronouns (optional)", validators=[Optional(), _at_most(PRONOUNS_MAX)],
                           description="For example she/her, they/them or he/him. Leave it "
                                       "empty if you would rather not say.")
    credentials = StringField("Credentials (optional)",
                              validators=[Optional(), _at_most(CREDENTIALS_MAX)],
                              description="Shown after your name to clients, for example LPC.")
    reply_hours = StringField("When you usually reply (optional)",
                              validators=[Optional(), _at_most(REPLY_HOURS_MAX)],
                              description="Shown to clients where they write to you, for "
                                          "example “usually replies within a day”.")
