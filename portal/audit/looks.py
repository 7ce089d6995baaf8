"""Staff looks at a client's record: the one way a page that shows a client's information to a
member of staff puts that on the client's access log ("Who has seen my record").

A view calls `record_looks(viewer, [Look(action, target, client_id), ...])` once it has read
what the page shows and before it renders it (the page goes out only once the look is on the
trail). A page that lists several clients records one event per client, all in one short
transaction of a fixed number of statements (`audit.record_many`), whatever the count.

- Only looks by staff and by a minor's parent or guardian are recorded here: a client looking
  at their own record is not a look by anyone else (their first view of an estimate is
  delivery evidence, recorded apart). A guardian's look at a minor's estimate goes on the
  minor's log through the same helpers.
- One event per client per page: a client shown twice on one page is one look.
- Looks are recorded on GET: a refused form shown again (422) repeats a page its GET logged.
- Durability (docs/ARCHITECTURE.md, "Durability"): a therapist's look is a participant's
  read, so its commit need not wait for the disk (`durable=False`); an administrator is not
  in the client's care, so their looks are fsynced like any change, as are a guardian's and
  looks under emergency access.
"""

import uuid
from collections.abc import Iterable
from typing import Any, NamedTuple

from flask import has_request_context, request

from portal.audit.catalogue import declare
from portal.audit.service import LOGGED_ROLES, STAFF_ROLES, record_many
from portal.db.transactions import write_transaction


class Look(NamedTuple):
    """One client's information seen on one page: the action says which page, in the
    catalogue's words; `target` is what was opened (None for a list)."""

    action: str
    target: tuple[str, Any] | None
    client_id: uuid.UUID


# Generic looks any feature's pages may record (their words are the client's, see below).
CLIENT_LISTED = "client.listed"
ACCOUNT_VIEWED = "client.account_viewed"

declare(CLIENT_LISTED, "Saw your name in a list of the practice's clients")
declare(ACCOUNT_VIEWED, "Opened your account details (your name, email address and "
                        "therapists)")


def is_staff(viewer) -> bool:
    return getattr(viewer, "role", None) is not None and str(viewer.role) in STAFF_ROLES


def is_logged(viewer) -> bool:
    """Staff, or a minor's parent or guardian: someone whose looks the client's log lists."""
    return getattr(viewer, "role", None) is not None and str(viewer.role) in LOGGED_ROLES


def record_looks(viewer, looks: Iterable[Look], *, emergency: bool = False) -> int:
    """Put these looks by `viewer` on the trail in a short transaction of their own (see the
    module docstring); return how many events were written (0 for a client's own looks)."""
    if not is_logged(viewer):
        return 0
    if has_request_context() and request.method not in ("GET", "HEAD"):
        # A refused form shown again is the page already opened (and logged) by its GET: a
        # POST that changes nothing leaves nothing behind, not even a look.
        return 0
    seen: set[uuid.UUID] = set()
    events = []
    for look in looks:
        if look.client_id is None or look.client_id in seen:
            continue
        seen.add(look.client_id)
        events.append((look.action, look.target, look.client_id))
    if not events:
        return 0
    durable = emergency or str(viewer.role) != "therapist"
    with write_transaction(durable=durable):
        return record_many(events, actor=viewer, severity="high" if emergency else "info")


def record_look(viewer, action: str, client_id: uuid.UUID,
                target: tuple[str, Any] | None = None) -> int:
    """One client's record seen on one page (see `record_looks`)."""
    return record_looks(viewer, [Look(action, target, client_id)])


def clients_listed(viewer, client_ids: Iterable[uuid.UUID],
                   action: str = CLIENT_LISTED) -> int:
    """A page listing several clients: one event per client shown, in one transaction."""
    return record_looks(viewer, [Look(action, None, client_id) for client_id in client_ids])
