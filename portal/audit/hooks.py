"""Audit what the crypto layer reports through `portal.hooks` (crypto never imports audit).

Key events (rewrap, re-encrypt, shred) arrive inside the command's transaction and are recorded
there. A value that would not open is usually found while a page renders, in a request whose
transaction is never committed (a GET), so in a request the event is kept aside and written in
a short transaction of its own as the request tears down; outside a request (a CLI command) it
is recorded in the current transaction, which the command commits.
"""

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from flask import g, has_request_context, request_tearing_down
from flask_login import current_user

from portal import hooks
from portal.audit.service import record
from portal.db.transactions import write_transaction
from portal.extensions import db

log = logging.getLogger("portal.audit")
_PENDING = "_audit_decrypt_failures"


@dataclass(frozen=True)
class _ActorRef:
    """Who was signed in when the failure happened (read before any rollback expires it)."""

    id: uuid.UUID
    role: str | None


def on_decrypt_failure(owner_id: uuid.UUID, context: Any, reason: str) -> None:
    """Audit a sealed value that would not open (ids only; the reason code is logged only)."""
    target = (context.table, context.row_id)
    if not has_request_context():
        _record_failure(None, target, owner_id)
        return
    pending = g.setdefault(_PENDING, [])
    pending.append((_current_actor(), target, owner_id))


def on_key_event(action: str, *, actor: Any = None, target: uuid.UUID | None = None,
                 details: dict[str, Any] | None = None) -> None:
    """Audit a key operation inside its transaction; counts in `details` are not stored."""
    record(action, actor=actor, target=("user", target) if target else None,
           subject_id=target, severity="high")


def _current_actor() -> _ActorRef | None:
    try:
        if current_user and current_user.is_authenticated:
            return _ActorRef(current_user.id, str(current_user.role))
    except Exception:  # no login manager, or the user could not load: record without one
        return None
    return None


def _record_failure(actor, target, owner_id) -> None:
    record("crypto.decrypt_failure", actor=actor, target=target, subject_id=owner_id,
           outcome="failure", severity="high")


def _write_pending(sender, exc=None, **extra) -> None:
    """At request teardown, write the decrypt failures this request met."""
    pending = g.pop(_PENDING, None)
    if not pending:
        return
    try:
        db.session.rollback()  # whatever the view left uncommitted was going to be discarded
        with write_transaction():
            for actor, target, owner_id in pending:
                _record_failure(actor, target, owner_id)
    except Exception as error:  # the page has been served; never fail its teardown
        db.session.rollback()
        log.error("audit: could not record %d decrypt failures (%s)", len(pending),
                  type(error).__name__)


def install() -> None:
    """Provide the crypto extension points and write pending failures at teardown."""
    hooks.decrypt_failure.provide(on_decrypt_failure)
    hooks.key_event.provide(on_key_event)
    request_tearing_down.connect(_write_pending, weak=False)
