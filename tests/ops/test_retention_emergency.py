"""The retention purge deletes a purged client's emergency grants: their written reasons are
sealed under the administrator's key (the row names its client only by a keyed index), so
the shred of the client's keys would not reach them."""

import time_machine
from sqlalchemy import func, select

from portal.crypto import open_text
from portal.extensions import db
from portal.messaging import emergency
from portal.messaging.models import EmergencyGrant
from portal.ops import retention
from tests.messaging.conftest import make_user
from tests.ops.test_retention import practice, years_ago  # noqa: F401 (the fixture)

REASON = "Her sister called: she has not been heard from since Friday, therapist away"


def test_purge_deletes_the_emergency_grants_of_the_clients_it_purges(practice):  # noqa: F811
    admin = make_user("admin", "Morgan Admin")
    with time_machine.travel(years_ago(8), tick=False):
        purged = emergency.grant(admin, client_id=practice.inactive.id, reason=REASON)
        kept = emergency.grant(admin, client_id=practice.signed_in.id, reason=REASON)
    purged_id, kept_id = purged.id, kept.id
    admin_id, inactive_id, signed_in_id = admin.id, practice.inactive.id, practice.signed_in.id
    assert db.session.scalar(select(func.count()).select_from(EmergencyGrant)) == 2

    result = retention.purge(retention.retention_cutoff())
    assert inactive_id in result.shredded
    db.session.remove()

    assert db.session.get(EmergencyGrant, purged_id) is None
    still = db.session.get(EmergencyGrant, kept_id)  # a client who is not purged keeps theirs
    assert still is not None
    assert open_text(admin_id, still.reason_context(), still.reason_sealed) == REASON
    assert emergency.client_of(still) == signed_in_id
