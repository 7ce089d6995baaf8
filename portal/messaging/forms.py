"""Messaging forms. Lengths are checked here as typed and again by the service."""

from flask import current_app, request
from flask_wtf import FlaskForm
from wtforms import BooleanField, MultipleFileField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from portal.messaging.attachments import read_upload
from portal.messaging.sending import SUBJECT_MAX


def _body_length(form, field) -> None:
    limit = current_app.config["MESSAGE_MAX_CHARS"]
    length = len(field.data or "")
    if length > limit:
        raise ValidationError(f"Your message is {length - limit:,} characters too long. "
                              f"Please keep it to {limit:,} characters; nothing you wrote "
                              "has been lost.")


def chosen_files(field) -> list[tuple[str | None, bytes]]:
    """Read a file field's chosen files (at most the limit + 1 byte each); skip empty inputs."""
    limit = current_app.config["ATTACHMENT_MAX_BYTES"]
    files = []
    for storage in request.files.getlist(field.name):
        data = read_upload(storage.stream, limit)
        if storage.filename or data:  # a file input left empty sends a nameless, empty part
            files.append((storage.filename, data))
    return files


class ReplyForm(FlaskForm):
    body = TextAreaField("Your message", validators=[_body_length])
    attachments = MultipleFileField("Attach files (optional)")


class ComposeForm(FlaskForm):
    recipient = SelectField("To", validate_choice=False)
    subject = StringField("Subject", validators=[
        DataRequired("Give the conversation a short subject."),
        Length(max=SUBJECT_MAX, message=f"Keep the subject to {SUBJECT_MAX} characters.")])
    body = TextAreaField("Your message", validators=[DataRequired("Write your message."),
                                                     _body_length])
    attachments = MultipleFileField("Attach files (optional)")

    def validate_recipient(self, field) -> None:
        if field.data not in {value for value, _ in field.choices}:
            raise ValidationError("Choose someone from the list.")


class EmergencyForm(FlaskForm):
    client = SelectField("Client", validate_choice=False)
    category = SelectField("What kind of reason is it?", validate_choice=False, validators=[
        DataRequired("Choose the kind of reason from the list.")])
    reason = TextAreaField("Why is emergency access needed?", validators=[
        DataRequired("Write down why you need emergency access.")])
    confirm = BooleanField(
        "I understand that this access is read-only, ends after an hour, is recorded, is "
        "shown to the client, and that the people listed above are emailed.",
        validators=[DataRequired("Please confirm that you understand.")])

    def validate_category(self, field) -> None:
        if field.data not in {value for value, _ in field.choices if value}:
            raise ValidationError("Choose the kind of reason from the list.")

    def validate_client(self, field) -> None:
        if field.data not in {value for value, _ in field.choices if value}:
            raise ValidationError("Choose a client from the list.")
