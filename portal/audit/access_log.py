"""The client's access log, "Who has seen my record": what practice staff did with their
record, newest first, read from the audit trail and worded by the action catalogue.

Features feed it through `portal.audit.catalogue` (the words for their actions, the names of
their targets) and `portal.hooks.display_names` (who the staff are); this module imports no
feature.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from portal import hooks
from portal.audit import catalogue
from portal.audit.service import detail_of, events_for_subject
from portal.crypto import preload_keys
from portal.extensions import db

ROLE_LABELS = {"therapist": "Therapist", "admin": "Practice administrator",
               "guardian": "Parent or guardian"}
GROUP_WITHIN = timedelta(minutes=30)


@dataclass
class AccessEntry:
    at: datetime
    who: str
    role: str
    what: str
    emergency: bool
    times: int = 1


@dataclass
class AccessLogPage:
    entries: list[AccessEntry]
    page: int
    has_older: bool


def access_log(client, limit: int = 200) -> list[AccessEntry]:
    """The newest page of `access_log_page`, as a list of entries."""
    return access_log_page(client, limit=limit).entries


def access_log_page(client, *, limit: int = 200, page: int = 1) -> AccessLogPage:
    """What practice staff did with this client's record, newest first, `limit` events a
    page (the oldest page is as readable as the newest: nothing falls off the end).

    Repeats of the same thing by the same person within half an hour are one entry, with a
    count. The read transaction ends before the page renders (on SQLite it holds the write
    lock).
    """
    found = events_for_subject(client.id, staff_only=True, limit=limit + 1,
                               offset=(page - 1) * limit)
    events, has_older = found[:limit], len(found) > limit
    actor_ids = list(dict.fromkeys(e.actor_id for e in events if e.actor_id))
    preload_keys([*actor_ids, client.id])  # one key query for the names and the targets
    ids: dict[str, list[uuid.UUID]] = {}
    abouts = [_about(event) for event in events]
    for target_type, target_id in abouts:
        target = _uuid(target_id)
        if target is not None and target_type:
            ids.setdefault(target_type, []).append(target)
    targets = catalogue.target_names(client.id, ids)
    names = hooks.display_names(actor_ids) if actor_ids else {}

    entries: list[AccessEntry] = []
    for event, about in zip(events, abouts, strict=True):
        what = catalogue.describe(event, targets, about)
        if what is None:
            continue
        who = names.get(event.actor_id, "A member of staff") if event.actor_id else "Staff"
        previous = entries[-1] if entries else None
        if (previous is not None and previous.what == what and previous.who == who
                and previous.at - event.at <= GROUP_WITHIN):
            previous.times += 1
            continue
        entries.append(AccessEntry(
            at=event.at, who=who, role=ROLE_LABELS.get(event.actor_role or "", "Staff"),
            what=what, emergency=catalogue.action(event.action).emergency))
    db.session.commit()
    return AccessLogPage(entries=entries, page=page, has_older=has_older)


def _about(event) -> tuple[str | None, str | None]:
    """What an event's words name: its target, or for an action declared with `about`, the
    object of that type in its sealed detail (opened only for those actions)."""
    kind = catalogue.action(event.action).about
    if kind is None:
        return event.target_type, event.target_id
    value = (detail_of(event) or {}).get(kind)
    return kind, str(value) if value else None


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None
