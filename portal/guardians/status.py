"""A minor's status in a few words, for staff pages of other features (the admin's person
page, the therapist's record page): template globals, so those pages need no import of this
feature, only a line of template. Each page records its own look at the client."""

import uuid
from dataclasses import dataclass

from portal.accounts.identity import names_by_id
from portal.accounts.models import Role
from portal.guardians import links
from portal.guardians.views import bp

CONSENT_WORDS = {
    "minor": "consent by the minor (14 or over)",
    "guardian": "consent by a parent or guardian",
}


@dataclass(frozen=True)
class MinorStatus:
    recorded: bool  # a Minor row exists
    minor: bool  # under 18 today
    consent_by: str | None
    guardian_names: tuple[str, ...]  # live links, oldest first

    @property
    def words(self) -> str:
        if not self.recorded:
            return "Not recorded as a minor"
        if not self.minor:
            return "No longer a minor (18 or over): guardian access has ended"
        return "Minor, " + CONSENT_WORDS.get(self.consent_by or "", "consent not recorded")


def minor_status(client_id: uuid.UUID) -> MinorStatus:
    minor = links.minor_of(client_id)
    if minor is None:
        return MinorStatus(False, False, None, ())
    live = links.guardians_of(client_id)
    names = names_by_id({r.guardian_id for r in live}) if live else {}
    return MinorStatus(True, links.is_minor_today(minor), minor.consent_by,
                       tuple(names.get(r.guardian_id, "A parent or guardian") for r in live))


@bp.app_template_global("guardians_minor_status")
def minor_status_of(person) -> MinorStatus | None:
    """A client's status as a minor (None for anyone else)."""
    if person is None or getattr(person, "role", None) != Role.CLIENT:
        return None
    return minor_status(person.id)


@bp.app_template_global("guardians_linked_count")
def linked_count(person) -> int | None:
    """How many minors a guardian account is linked to today (None for anyone else)."""
    if person is None or getattr(person, "role", None) != Role.GUARDIAN:
        return None
    return len(links.live_links(person.id))
