"""Who can read a conversation, and the rule that an open one always has somebody.

A conversation is readable by its therapist while that therapist is active and still assigned
to the client, and, when it was written to the practice, by every active covering clinician.
Every change of care (unassigning, deactivating, no longer covering) runs `refuse_orphans`
inside its transaction, after the change and before the commit (`hooks.care_checks`), so no
path through the code can leave an open conversation that nobody can read. A parent or
guardian's conversation about a minor is read by the minor's therapist (`care_client`), so it
counts as the minor's here.
"""

import uuid

from sqlalchemy import and_, exists, not_, or_, select
from sqlalchemy.orm import aliased

from portal.accounts.models import Assignment, Role, User
from portal.errors import RuleError
from portal.extensions import db
from portal.messaging.access import care_client
from portal.messaging.models import Thread, ThreadStatus

_therapist = aliased(User)
_covering = aliased(User)


def readable_clause():
    """SQL: at least one active clinician can read this thread."""
    by_therapist = exists(
        select(Assignment.id).join(_therapist, _therapist.id == Assignment.therapist_id)
        .where(Assignment.client_id == care_client(),
               Assignment.therapist_id == Thread.therapist_id,
               _therapist.active, _therapist.role == Role.THERAPIST))
    by_covering = and_(Thread.to_practice, exists(
        select(_covering.id).where(_covering.role == Role.THERAPIST, _covering.active,
                                   _covering.covering)))
    return or_(by_therapist, by_covering)


def orphaned_threads(client_ids: set[uuid.UUID] | None = None) -> list[uuid.UUID]:
    """Open conversations nobody active can read (of these clients, or of anyone)."""
    stmt = select(Thread.id).where(Thread.status == ThreadStatus.OPEN, not_(readable_clause()))
    if client_ids is not None:
        if not client_ids:
            return []
        stmt = stmt.where(care_client().in_(client_ids))
    return list(db.session.scalars(stmt))


def refuse_orphans(client_ids: set[uuid.UUID] | None) -> None:
    """The care check: refuse a change that leaves an open conversation without a reader."""
    orphans = orphaned_threads(client_ids)
    if orphans:
        count = len(orphans)
        raise RuleError(
            f"{count} open conversation{'s' if count != 1 else ''} would have nobody to "
            f"answer {'them' if count != 1 else 'it'}. Choose who takes "
            f"{'them' if count != 1 else 'it'} over first; nothing was changed.")
