"""The retention feature's audited actions as a client's access log words them, for
`portal.audit.catalogue`: the report that names them, legal holds on their record, and the
last date of service staff record (it starts the retention clock)."""

from portal.accounts.models import HOLD_REASONS
from portal.audit.catalogue import declare

ACTIONS = (
    ("retention.reported", "Your name appeared in the practice's retention report"),
    ("retention.purge_blocked.legal_hold", None),  # the hold itself is listed
    # A purge runs from the command line, with no staff actor: the access log lists staff
    # only, so these are declared for completeness, worded for the day one is listed.
    ("retention.purged", "Removed your conversations at the end of the retention period"),
    ("retention.key_held", "Kept your key so your Good Faith Estimates stay readable for "
                           "six years after they were issued"),
    ("legal_hold.released", "Released the hold that kept your record from being deleted"),
    ("account.last_service_recorded", "Recorded your last date of service"),
)


def declare_actions() -> None:
    for name, words in ACTIONS:
        declare(name, words)
    for reason in HOLD_REASONS:  # the reason is in the action's name, not in the words
        declare(f"legal_hold.placed.{reason}",
                "Placed a hold that keeps your record from being deleted")
