"""Hooks the audit package registers, so crypto never imports audit (no import cycle).

`on_decrypt_failure` callbacks get `(owner_id, context, reason)` whenever `open_text_safe`
shows the "could not be decrypted" text; `on_key_event` callbacks get
`(action, *, actor, target, details)` for rewrap, reencrypt and shred, inside the command's
transaction (before its last commit). Ids and counts only, never content.
"""

import logging
import uuid
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("portal.crypto")


def log_decrypt_failure(owner_id: uuid.UUID, context: Any, reason: str) -> None:
    """Log a failed open with ids only (the default hook)."""
    logger.warning(
        "sealed value could not be opened: owner=%s table=%s column=%s row=%s reason=%s",
        owner_id, getattr(context, "table", "?"), getattr(context, "column", "?"),
        getattr(context, "row_id", "?"), reason,
    )


on_decrypt_failure: list[Callable[[uuid.UUID, Any, str], None]] = [log_decrypt_failure]
on_key_event: list[Callable[..., None]] = []


def report_decrypt_failure(owner_id: uuid.UUID, context: Any, reason: str) -> None:
    """Call every decrypt-failure hook; a failing hook is logged, never raised to the page."""
    for hook in list(on_decrypt_failure):
        try:
            hook(owner_id, context, reason)
        except Exception:
            logger.exception("decrypt-failure hook %r failed", hook)


def report_key_event(action: str, *, actor: Any = None, target: uuid.UUID | None = None,
                     details: dict[str, Any] | None = None) -> None:
    """Call every key-event hook (the audit trail); errors propagate so the command rolls back."""
    for hook in list(on_key_event):
        hook(action, actor=actor, target=target, details=dict(details or {}))
