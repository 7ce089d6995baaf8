"""The append-only, MAC-chained audit trail: `record()` inside a transaction, `verify()`."""

from flask import Flask

from portal.audit import hooks
from portal.audit.models import AppendOnlyError, AuditEvent, AuditHead
from portal.audit.service import (
    VerifyResult,
    detail_of,
    events_for_subject,
    origin_of,
    record,
    record_many,
    verify,
)


def init_app(app: Flask) -> None:
    """Record what the crypto layer reports (see `portal.audit.hooks`)."""
    hooks.install()

__all__ = [
    "AppendOnlyError",
    "AuditEvent",
    "AuditHead",
    "VerifyResult",
    "detail_of",
    "events_for_subject",
    "init_app",
    "origin_of",
    "record",
    "record_many",
    "verify",
]
