"""Who may see which request, disclosure or client record: the one way records views load one.

Anything that is not the user's is a 404, whatever the id, so the answer does not even say
that it exists. A client: their own. An administrator: every client's. A therapist: the
clients assigned to them.
"""

import uuid

from flask import abort
from sqlalchemy import select

from portal.accounts.models import Assignment, Role, User
from portal.extensions import db
from portal.records.models import Disclosure, RecordRequest


def may_see(user, client_id: uuid.UUID) -> bool:
    """Whether this user may see this client's record here (no query for a client or an
    administrator)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.active:
        return False
    if user.role == Role.CLIENT:
        return user.id == client_id
    if user.role == Role.ADMIN:
        return True
    if user.role == Role.THERAPIST:
        return db.session.scalar(select(Assignment.id).where(
            Assignment.client_id == client_id, Assignment.therapist_id == user.id)) is not None
    return False


def client_for(user, client_id) -> User:
    """Return a client whose record this user may see (themselves, for a client), or 404."""
    if not isinstance(client_id, uuid.UUID):
        abort(404)
    client = db.session.get(User, client_id)
    if client is None or client.role != Role.CLIENT or not may_see(user, client.id):
        abort(404)
    return client


def staff_client_for(user, client_id) -> User:
    """Return a client this member of staff looks after (administrator: any), or 404."""
    if user is None or not getattr(user, "is_staff", False):
        abort(404)
    return client_for(user, client_id)


def request_for(user, request_id) -> RecordRequest:
    """Return a request for a copy or an amendment this user may see, or 404."""
    if not isinstance(request_id, uuid.UUID):
        abort(404)
    found = db.session.get(RecordRequest, request_id)
    if found is None or not may_see(user, found.client_id):
        abort(404)
    return found


def disclosure_for(user, disclosure_id) -> Disclosure:
    """Return a disclosure this user may see, or 404."""
    if not isinstance(disclosure_id, uuid.UUID):
        abort(404)
    found = db.session.get(Disclosure, disclosure_id)
    if found is None or not may_see(user, found.client_id):
        abort(404)
    return found
