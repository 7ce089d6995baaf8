"""What every feature's forms share: the button-only form and how a refusal is shown.

One status for a page that shows a form again with errors: `INVALID` (422), whether the
input failed validation or a service refused it with a `RuleError`. A form shown for the
first time, or again after a GET, is 200.
"""

from flask import abort, request
from flask_wtf import FlaskForm

from portal.errors import RuleError

INVALID = 422


class EmptyForm(FlaskForm):
    """No fields but the CSRF token: for button-only actions (templates: `button_form()`)."""


def require_button() -> None:
    """Check a button-only POST's CSRF token (an `EmptyForm`); 400 when it does not hold."""
    if not EmptyForm().validate_on_submit():
        abort(400)


def refuse(form: FlaskForm, error: RuleError) -> None:
    """Show a service's refusal on the field it names, or above the form when none does."""
    field = form._fields.get(error.field) if error.field else None
    if field is not None:
        field.errors = [*field.errors, error.message]
    else:
        form.form_errors.append(error.message)


def form_status() -> int:
    """The status of a page that renders a form: `INVALID` after a POST, else 200."""
    return INVALID if request.method == "POST" else 200
