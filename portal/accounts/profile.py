"""How a person is named: the name they go by, pronouns, a client's legal name, and staff's
credentials and reply hours. The one function that changes them, for the person themselves
(their Account page) and for an administrator correcting someone's record.
"""

from dataclasses import dataclass

from portal.accounts.identity import (
    NAME_MAX,
    PRONOUNS_MAX,
    legal_name_of,
    name_of,
    pronouns_of,
    set_names,
)
from portal.accounts.models import Role, User
from portal.audit import record
from portal.errors import RuleError
from portal.extensions import db

CREDENTIALS_MAX = 40
REPLY_HOURS_MAX = 120


@dataclass(frozen=True)
class Profile:
    """What may change; None leaves a part as it is, "" clears an optional part."""

    name: str | None = None
    pronouns: str | None = None
    legal_name: str | None = None  # clients only
    credentials: str | None = None  # staff only
    reply_hours: str | None = None  # staff only


def _clean(value: str | None, limit: int, field: str, label: str, *,
           required: bool = False) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    if required and not value:
        raise RuleError(f"Please enter {label}.", field=field)
    if len(value) > limit:
        raise RuleError(f"{label[0].upper()}{label[1:]} can be at most {limit} characters.",
                        field=field)
    if any(ord(ch) < 32 for ch in value):
        raise RuleError(f"{label[0].upper()}{label[1:]} cannot hold control characters.",
                        field=field)
    return value


def update_profile(actor: User, user: User, change: Profile) -> list[str]:
    """Apply a change of names and details; returns which parts changed (audited, ids only).

    A person changes their own; an administrator may change anyone's. A legal name is a
    client's; credentials and reply hours are staff's.
    """
    if actor.id != user.id and actor.role != Role.ADMIN:
        raise RuleError("Only an administrator can change someone else's details.")
    name = _clean(change.name, NAME_MAX, "name", "the name you go by", required=True)
    pronouns = _clean(change.pronouns, PRONOUNS_MAX, "pronouns", "pronouns")
    legal = _clean(change.legal_name, NAME_MAX, "legal_name", "a legal name")
    credentials = _clean(change.credentials, CREDENTIALS_MAX, "credentials", "credentials")
    hours = _clean(change.reply_hours, REPLY_HOURS_MAX, "reply_hours", "reply hours")
    if user.role != Role.CLIENT:
        legal = None
    if not user.is_staff:
        credentials = hours = None

    changed = []
    if name is not None and name != name_of(user):
        changed.append("name")
    if pronouns is not None and pronouns != pronouns_of(user):
        changed.append("pronouns")
    # A client's legal name changes only when someone sets it: a new name they go by leaves
    # it as it was (a legal name not set yet is pinned to the old name), "" makes it the
    # name they go by.
    legal_after = None
    if user.role == Role.CLIENT and (legal is not None or "name" in changed):
        before = legal_name_of(user)
        new_name = name if name is not None else name_of(user)
        legal_after = before if legal is None else (legal or new_name)
        if legal_after != before:
            changed.append("legal_name")
        elif "name" not in changed:
            legal_after = None
    if credentials is not None and (credentials or None) != user.credentials:
        changed.append("credentials")
        user.credentials = credentials or None
    if hours is not None and (hours or None) != user.reply_hours:
        changed.append("reply_hours")
        user.reply_hours = hours or None
    if not changed:
        return []
    set_names(user, name=name if "name" in changed else None, legal_name=legal_after,
              pronouns=pronouns if "pronouns" in changed else None)
    subject = user.id if user.role == Role.CLIENT else None
    for part in changed:
        record(f"account.{part}_changed", actor=actor, target=("user", user.id),
               subject_id=subject)
    db.session.commit()
    return changed
