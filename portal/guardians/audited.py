"""How the minor's access log ("Who has seen my record") words what staff did about their
guardians, and how it names a link (the guardian's name), for `portal.audit.catalogue`."""

import uuid

from sqlalchemy import select

from portal.accounts.identity import names_by_id
from portal.audit.catalogue import declare, name_targets
from portal.extensions import db
from portal.guardians.models import Guardianship

ACTIONS = (
    ("minor.recorded", "Recorded that you are under 18, with your date of birth and who "
                       "consented to your treatment"),
    ("minor.updated", "Changed your date of birth or who consented to your treatment"),
    ("guardianship.linked", "Linked {target} to your record as your parent or guardian"),
    ("guardianship.ended.unlinked", "Unlinked {target}: they no longer see anything of yours "
                                    "in the portal"),
    ("guardianship.ended.turned_18", "Ended the access of {target} because you turned 18"),
    ("guardian_share.estimate.shared", "Shared {target} with your parent or guardian"),
    ("guardian_share.estimate.withdrawn", "Stopped sharing {target} with your parent or "
                                          "guardian"),
)


def declare_actions() -> None:
    for name, words in ACTIONS:
        declare(name, words)
    name_targets(("guardianship",), _guardian_names, otherwise="your parent or guardian")


def _guardian_names(client_id: uuid.UUID, ids: dict[str, list[uuid.UUID]]) -> dict[str, str]:
    """The guardian's name for each of this minor's links (their own links only)."""
    rows = db.session.execute(
        select(Guardianship.id, Guardianship.guardian_id)
        .where(Guardianship.minor_id == client_id,
               Guardianship.id.in_(ids.get("guardianship", [])))).all()
    names = names_by_id({guardian_id for _, guardian_id in rows}) if rows else {}
    return {str(link_id): names[guardian_id] for link_id, guardian_id in rows
            if guardian_id in names}
