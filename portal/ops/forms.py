"""Forms for the retention facts staff record: a client's last date of service, a legal hold.

Which dates and reasons are allowed is the services' rule
(`accounts.service.set_last_service_on`, `ops.holds.place`); these only parse.
"""

from flask_wtf import FlaskForm
from wtforms import DateField, RadioField, SelectChoice
from wtforms.validators import InputRequired

from portal.ops.holds import REASON_LABELS


class LastServiceForm(FlaskForm):
    last_service_on = DateField(
        "Date",
        validators=[InputRequired("Enter the last date of service.")],
        invalid_value_message="Enter a real date, such as 2026-03-01.",
        description="A discharge or the last session. The record is kept for the retention "
                    "period from this day or the last portal activity, whichever is later.")


class HoldForm(FlaskForm):
    reason = RadioField(
        "Why the record is held",
        choices=[SelectChoice(key, label) for key, label in REASON_LABELS.items()],
        validators=[InputRequired("Choose why the record is held.")],
        description="While a hold is open, the retention purge never deletes this record.")
