"""The administrator's corrections of a person: names (through `accounts.profile`) and email
(through `accounts.email_change`). Field names match the `field` of the services' RuleErrors.
"""

from flask_wtf import FlaskForm
from wtforms import EmailField, StringField
from wtforms.validators import DataRequired, Length, Optional

from portal.accounts.identity import NAME_MAX, PRONOUNS_MAX
from portal.accounts.profile import CREDENTIALS_MAX, REPLY_HOURS_MAX


def _at_most(limit: int) -> Length:
    return Length(max=limit, message=f"Use at most {limit} characters.")


class NamesForm(FlaskForm):
    """How the person is named; the view drops the legal name for staff and the credentials
    and reply hours for clients (`update_profile` ignores them there anyway)."""

    name = StringField("The name they go by", validators=[
        DataRequired("Please enter the name they go by."), _at_most(NAME_MAX)],
        description="Shown everywhere in the portal and in emails.")
    pronouns = StringField("Pronouns (optional)", validators=[Optional(), _at_most(PRONOUNS_MAX)],
                           description="For example she/her, they/them or he/him.")
    legal_name = StringField("Legal name", validators=[Optional(), _at_most(NAME_MAX)],
                             description="Used only where the law needs it: Good Faith "
                                         "Estimates and the record export. Empty means the "
                                         "same as the name they go by.")
    credentials = StringField("Credentials (optional)",
                              validators=[Optional(), _at_most(CREDENTIALS_MAX)],
                              description="Shown after their name to clients, for example LPC.")
    reply_hours = StringField("When they usually reply (optional)",
                              validators=[Optional(), _at_most(REPLY_HOURS_MAX)],
                              description="Shown to clients where they write, for example "
                                          "“usually replies within a day”.")


class EmailForm(FlaskForm):
    email = EmailField("New email address", validators=[
        DataRequired("Enter the new email address."),
        Length(max=254, message="That email address is too long.")],
        description="We email this address a link to confirm it and tell the old address, "
                    "without a link. Nothing changes until the link is followed.")
