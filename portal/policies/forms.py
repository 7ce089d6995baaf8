"""Policy forms: publishing a version (admins) and accepting or declining (clients)."""

import uuid

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, HiddenField, StringField, TextAreaField
from wtforms.validators import (
    AnyOf,
    DataRequired,
    InputRequired,
    Length,
    Optional,
    ValidationError,
)

from portal.policies.models import SUMMARY_MAX, TEXT_MAX

MAX_VERSIONS_PER_FORM = 20


def _required_text(label: str, missing: str, most: int, too_long: str,
                   description: str) -> TextAreaField:
    return TextAreaField(label, validators=[DataRequired(missing),
                                            Length(max=most, message=too_long)],
                         description=description)


class PublishForm(FlaskForm):
    text = _required_text(
        "Policy text (Markdown)", "Write the policy text.", TEXT_MAX,
        f"Keep the text under {TEXT_MAX:,} characters.",
        "Start with the title as a heading (# Title); use ## for sections, - for lists, "
        "**bold** and [links](https://example.com). Images, scripts and raw HTML are removed.")
    summary = _required_text(
        "What changed", "Say in a sentence or two what changed.", SUMMARY_MAX,
        f"Keep the summary under {SUMMARY_MAX} characters.",
        "Clients read this above the text and, when they must accept the new version, on "
        "the page that asks them.")
    effective_date = DateField(
        "Takes effect on",
        validators=[InputRequired("Choose the date this version takes effect.")],
        invalid_value_message="Enter a real date, such as 2027-01-01.",
        description="Today or later. Until then the current version stays in effect, and "
                    "the new one is shown as upcoming.")
    requires_acceptance = BooleanField(
        "Clients must accept this version",
        description="They are asked at their next visit on or after the date it takes "
                    "effect, before they can do anything else. Leave this off for small "
                    "corrections.")
    preview_hash = HiddenField(validators=[Optional(), Length(max=64)])


class AcceptForm(FlaskForm):
    versions = HiddenField(validators=[DataRequired("Nothing to accept.")])
    next = HiddenField(validators=[Optional(), Length(max=2000)])
    decision = StringField(validators=[AnyOf(("accept", "decline"),
                                             message="Choose Accept or Decline.")])

    def validate_versions(self, field) -> None:
        """Check the list of version ids the page showed."""
        self.version_ids = parse_ids(field.data)

    version_ids: list[uuid.UUID] = []


def parse_ids(raw: str | None) -> list[uuid.UUID]:
    """Parse a comma-separated list of version ids, refusing anything else."""
    parts = [part for part in (raw or "").split(",") if part]
    if not parts or len(parts) > MAX_VERSIONS_PER_FORM:
        raise ValidationError("Nothing to accept.")
    try:
        return [uuid.UUID(part) for part in parts]
    except ValueError:
        raise ValidationError("Nothing to accept.") from None


def join_ids(ids) -> str:
    return ",".join(str(i) for i in ids)
