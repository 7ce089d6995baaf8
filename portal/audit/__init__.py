"""The append-only, hash-chained audit trail: `record()` inside a transaction, `verify()`."""

from portal.audit import hooks
from portal.audit.models import AppendOnlyError, AuditEvent, AuditHead
from portal.audit.service import VerifyResult, events_for_subject, record, verify

hooks.install()

__all__ = ["AppendOnlyError", "AuditEvent", "AuditHead", "VerifyResult", "events_for_subject",
           "record", "verify"]
