"""How the crypto layer reports what the audit trail records, without importing audit.

It calls the `decrypt_failure` and `key_event` extension points of `portal.hooks`:
`decrypt_failure` whenever `open_text_safe` shows the "could not be decrypted" text, with
`(owner_id, context, reason)`; `key_event` for rewrap, re-encrypt and shred, inside the
command's transaction (before its last commit), with `(action, *, actor, target, details)`.
Ids and counts only, never content.
"""

import logging
import uuid
from typing import Any

from portal import hooks

logger = logging.getLogger("portal.crypto")


def log_decrypt_failure(owner_id: uuid.UUID, context: Any, reason: str) -> None:
    """Log a failed open with ids only (always provided)."""
    logger.warning(
        "sealed value could not be opened: owner=%s table=%s column=%s row=%s reason=%s",
        owner_id, getattr(context, "table", "?"), getattr(context, "column", "?"),
        getattr(context, "row_id", "?"), reason,
    )


hooks.decrypt_failure.provide(log_decrypt_failure)


def report_decrypt_failure(owner_id: uuid.UUID, context: Any, reason: str) -> None:
    """Call every decrypt-failure hook; a failing hook is logged, never raised to the page."""
    for hook in hooks.decrypt_failure:
        try:
            hook(owner_id, context, reason)
        except Exception:
            logger.exception("decrypt-failure hook %r failed", hook)


def report_key_event(action: str, *, actor: Any = None, target: uuid.UUID | None = None,
                     details: dict[str, Any] | None = None) -> None:
    """Call every key-event hook (the audit trail); errors propagate so the command rolls back."""
    for hook in hooks.key_event:
        hook(action, actor=actor, target=target, details=dict(details or {}))
