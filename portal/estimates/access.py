"""Who may see which Good Faith Estimate: the one way estimates views load one.

Anything that is not the user's is a 404, whatever the id, so the answer does not even say
that the estimate exists.
"""

import uuid

from flask import abort
from sqlalchemy import select

from portal.accounts.models import Assignment, Role, User
from portal.estimates.clients import covers_for
from portal.estimates.models import GoodFaithEstimate
from portal.extensions import db
from portal.guardians import links


def _assigned(client_id: uuid.UUID, therapist_id: uuid.UUID) -> bool:
    return db.session.scalar(select(Assignment.id).where(
        Assignment.client_id == client_id, Assignment.therapist_id == therapist_id)) is not None


def _estimate_visible(user, estimate: GoodFaithEstimate) -> bool:
    if user.role == Role.CLIENT:
        return estimate.client_id == user.id and not estimate.is_draft
    if user.role == Role.THERAPIST:
        # A covering clinician also looks after a client with no therapist (their requests
        # are routed there: clients.request_routing).
        return _assigned(estimate.client_id, user.id) or covers_for(user, estimate.client_id)
    if user.role == Role.GUARDIAN:
        # A minor's parent or guardian: issued estimates only, through a live link (it ends
        # on the 18th birthday), as consent allows (portal.guardians.links).
        if estimate.is_draft:
            return False
        row = links.live_link(user.id, estimate.client_id)
        return row is not None and links.may_see_estimate(row, estimate.id)
    # Admins see every estimate: estimates are billing documents the practice must issue,
    # correct and keep (unlike message content, which admins never read).
    return user.role == Role.ADMIN


def visible(user, estimate: GoodFaithEstimate) -> bool:
    """Whether this user may see this estimate (for links from one estimate to another)."""
    return _estimate_visible(user, estimate)


def estimate_for(user, estimate_id) -> GoodFaithEstimate:
    """Return a Good Faith Estimate this user may see, or 404.

    A client: their own issued estimates (never a draft, even their own). A guardian: the
    issued estimates of a minor they are linked to today, when the guardian consented to the
    minor's care or the estimate was shared with them. A therapist: their assigned clients'
    estimates, drafts included. An admin: every estimate. Anyone else: 404.
    """
    if user is None or not getattr(user, "is_authenticated", False):
        abort(404)
    if not isinstance(estimate_id, uuid.UUID):
        abort(404)
    estimate = db.session.get(GoodFaithEstimate, estimate_id)
    if estimate is None or not _estimate_visible(user, estimate):
        abort(404)
    return estimate


def draft_estimate_for(user, estimate_id) -> GoodFaithEstimate:
    """Return a draft this member of staff may edit, or 404 (issued estimates are never edited)."""
    if user is None or not getattr(user, "is_staff", False):
        abort(404)
    estimate = estimate_for(user, estimate_id)
    if not estimate.is_draft:
        abort(404)
    return estimate


def estimate_client_for(user, client_id) -> User:
    """Return an active client this member of staff may write estimates for, or 404."""
    if user is None or not getattr(user, "is_staff", False):
        abort(404)
    if not isinstance(client_id, uuid.UUID):
        abort(404)
    client = db.session.get(User, client_id)
    if client is None or client.role != Role.CLIENT or not client.active:
        abort(404)
    if user.role == Role.THERAPIST and not _assigned(client.id, user.id):
        abort(404)
    return client
