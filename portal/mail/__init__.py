"""Transactional mail: `enqueue()` inside the caller's transaction, delivery after commit."""

from portal.mail.models import OutboxMessage
from portal.mail.service import (
    DeliveryReport,
    deliver_pending,
    enqueue,
    init_app,
    purge_delivered,
)
from portal.mail.templates import SUBJECTS

__all__ = ["SUBJECTS", "DeliveryReport", "OutboxMessage", "deliver_pending", "enqueue",
           "init_app", "purge_delivered"]
