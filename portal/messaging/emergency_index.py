"""Whom an emergency grant concerns, said without naming them to someone holding only the
database (#17): a keyed blind index in the grant row, a keyed stand-in as the subject of its
audit events, and what an event concerns (a conversation, a file) in its sealed detail.

Both digests are under the "emergency-index" subkey of PORTAL_INDEX_KEY (kept outside the
database), so nobody without the key can test a client's id against a row. The stand-in is
what `portal.audit.service.events_for_subject` also looks for, so the client's access log
still lists the events; the catalogue words them from the grant and the detail
(`portal.messaging.audited`).

This module imports only the crypto base and the audit trail, so the access checks, the
reading service and the emergency service can all use it without a cycle.
"""

import hmac
import uuid

from portal.audit import record
from portal.crypto.blind_index import keyed_digest, pseudonym

INDEX = "emergency-index"


def client_index(client_id: uuid.UUID) -> bytes:
    """The 32-byte blind index of a client's id, as `EmergencyGrant.client_index` holds it."""
    return keyed_digest(INDEX, client_id.bytes)


def is_index_of(index: bytes | None, client_id: uuid.UUID) -> bool:
    """Does this stored index belong to this client? (constant time)"""
    return index is not None and hmac.compare_digest(bytes(index), client_index(client_id))


def audit_subject(client_id: uuid.UUID) -> uuid.UUID:
    """The subject id of an emergency event: the client's keyed stand-in, not their id."""
    return pseudonym(INDEX, client_id)


def record_emergency(*, action: str, admin, grant_id: uuid.UUID, client_id: uuid.UUID,
                     **about: uuid.UUID) -> None:
    """Record an `emergency.*` event that names nobody at rest: the grant as its target, the
    client's stand-in as its subject, and the client and whatever it concerns
    (`thread=`, `attachment=`) in its detail, sealed under the administrator's key.

    `action=` is a keyword so tests/audit/test_catalogue.py's scan finds every action."""
    record(action, actor=admin, target=("emergency_grant", grant_id),
           subject_id=audit_subject(client_id), severity="high",
           detail={"client": client_id, **about})
