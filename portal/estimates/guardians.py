"""A minor's Good Faith Estimates as their parent or guardian sees them, and sharing one.

`portal.guardians.links` decides what a guardian may see (consent by the guardian: every
issued estimate; consent by the minor, Act 147 of 2004: only what the minor or their therapist
shared). This module lists those estimates, puts every look by a guardian on the minor's
access log (`portal.audit.looks`, in the words declared here), and says who may share or stop
sharing an estimate: the minor, or their assigned therapist. Conversations are never shared.
"""

import uuid
from dataclasses import dataclass

from sqlalchemy import and_, or_, select

from portal.accounts.identity import names_by_id
from portal.accounts.models import Assignment, Role, User
from portal.audit.catalogue import declare
from portal.audit.looks import Look, record_looks
from portal.errors import RuleError
from portal.estimates import access
from portal.estimates.models import TABLE, GoodFaithEstimate, Status
from portal.extensions import db
from portal.guardians import links
from portal.guardians.models import Guardianship

GUARDIAN_LISTED = "estimate.guardian_listed"
GUARDIAN_OPENED = "estimate.guardian_opened"
GUARDIAN_DOWNLOADED = "estimate.guardian_downloaded"

# The minor's access log; the "Who" column says "Parent or guardian".
declare(GUARDIAN_LISTED, "Saw your Good Faith Estimates in their list of estimates")
declare(GUARDIAN_OPENED, "Looked at {target}")
declare(GUARDIAN_DOWNLOADED, "Downloaded {target}")
# Sharing (`links.share`, `links.withdraw`) is worded in `portal.guardians.audited`.


# ------------------------------------------------------------------------------ the guardian

def guardian_estimates(guardian: User) -> list[GoodFaithEstimate]:
    """Every issued estimate this guardian may see, across their live links, newest first
    (the list's side of `access.estimate_for`, which holds each one to the same rule)."""
    wanted = []
    for row in links.live_links(guardian.id):
        if links.guardian_consented(row.minor_id):
            wanted.append(GoodFaithEstimate.client_id == row.minor_id)
            continue
        shared = links.shared_ids(row, "estimate")
        if shared:
            wanted.append(and_(GoodFaithEstimate.client_id == row.minor_id,
                               GoodFaithEstimate.id.in_(shared)))
    if not wanted:
        return []
    return list(db.session.scalars(
        select(GoodFaithEstimate)
        .where(or_(*wanted), GoodFaithEstimate.status != Status.DRAFT)
        .order_by(GoodFaithEstimate.issued_at.desc(), GoodFaithEstimate.sequence.desc())))


def visible_links(guardian: User, linked: dict) -> dict:
    """`follow_ups.linked` for a guardian's page: only estimates they may see themselves (a
    newer estimate the minor has not shared is not even named)."""
    return {key: estimate if estimate is not None and access.visible(guardian, estimate)
            else None for key, estimate in linked.items()}


def listed(guardian: User, estimates: list[GoodFaithEstimate]) -> int:
    """The guardian's list of estimates: one look per minor whose estimates it shows."""
    return record_looks(guardian, [Look(GUARDIAN_LISTED, None, client_id)
                                   for client_id in dict.fromkeys(e.client_id
                                                                  for e in estimates)])


def opened(guardian: User, estimate: GoodFaithEstimate) -> int:
    return record_looks(guardian, [Look(GUARDIAN_OPENED, (TABLE, estimate.id),
                                        estimate.client_id)])


def downloaded(guardian: User, estimate: GoodFaithEstimate) -> int:
    return record_looks(guardian, [Look(GUARDIAN_DOWNLOADED, (TABLE, estimate.id),
                                        estimate.client_id)])


# ------------------------------------------------------------------------------- sharing

@dataclass(frozen=True)
class ShareRow:
    link_id: uuid.UUID
    guardian_name: str
    shared: bool


@dataclass(frozen=True)
class Sharing:
    """What an estimate page says about the minor's guardians (None when there are none)."""

    guardian_consented: bool
    rows: tuple[ShareRow, ...]
    may_change: bool  # the viewer may share and stop sharing (the minor, their therapist)


def may_share(viewer: User, estimate: GoodFaithEstimate) -> bool:
    """The minor themselves, or a therapist assigned to them (not a covering clinician, not
    an administrator: the choice belongs to the minor and the people caring for them)."""
    if estimate.is_draft:
        return False
    if viewer.role == Role.CLIENT:
        return viewer.id == estimate.client_id
    if viewer.role == Role.THERAPIST:
        return db.session.scalar(select(Assignment.id).where(
            Assignment.client_id == estimate.client_id,
            Assignment.therapist_id == viewer.id)) is not None
    return False


def sharing_for(viewer: User, estimate: GoodFaithEstimate) -> Sharing | None:
    """The estimate's guardians and whether each sees it, for the estimate page."""
    if estimate.is_draft:
        return None
    rows = links.guardians_of(estimate.client_id)
    if not rows:
        return None
    consented = links.guardian_consented(estimate.client_id)
    names = names_by_id([r.guardian_id for r in rows])
    return Sharing(
        guardian_consented=consented,
        rows=tuple(ShareRow(r.id, names.get(r.guardian_id, "Their parent or guardian"),
                            consented or estimate.id in links.shared_ids(r, "estimate"))
                   for r in rows),
        may_change=not consented and may_share(viewer, estimate))


def share_link(viewer: User, estimate: GoodFaithEstimate,
               link_id: uuid.UUID) -> Guardianship | None:
    """The live link a share or withdrawal by this viewer is about, or None (the view's 404):
    a link to this estimate's minor, who consented themselves, by someone who may share."""
    if not may_share(viewer, estimate) or links.guardian_consented(estimate.client_id):
        return None
    row = db.session.get(Guardianship, link_id)
    if row is None or row.minor_id != estimate.client_id:
        return None
    return links.live_link(row.guardian_id, row.minor_id)


def change_share(viewer: User, estimate: GoodFaithEstimate, row: Guardianship, *,
                 shared: bool) -> None:
    """Share the estimate with the guardian of `row`, or stop sharing it (RuleError when it
    already is, or is not)."""
    if row.minor_id != estimate.client_id:  # share_link checked; never trust a caller
        raise RuleError("This estimate is not theirs to see.")
    if shared:
        links.share(viewer, row, "estimate", estimate.id)
    else:
        links.withdraw(viewer, row, "estimate", estimate.id)
