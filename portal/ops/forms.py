"""The form for a legal hold (a client's last date of service is accounts' LastServiceForm).

Which reasons are allowed is the service's rule (`ops.holds.place`); this only parses.
"""

from flask_wtf import FlaskForm
from wtforms import RadioField, SelectChoice
from wtforms.validators import InputRequired

from portal.ops.holds import REASON_LABELS


class HoldForm(FlaskForm):
    reason = RadioField(
        "Why the record is held",
        choices=[SelectChoice(key, label) for key, label in REASON_LABELS.items()],
        validators=[InputRequired("Choose why the record is held.")],
        description="While a hold is open, the retention purge never deletes this record.")
