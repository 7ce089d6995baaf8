"""Transactional mail: `enqueue()` inside the caller's transaction, delivery after commit."""

from portal.mail.models import OutboxMessage, subject_of, template_of
from portal.mail.service import (
    DeliveryReport,
    body_text_of,
    deliver_pending,
    enqueue,
    init_app,
    purge_delivered,
)
from portal.mail.templates import SUBJECTS

__all__ = ["SUBJECTS", "DeliveryReport", "OutboxMessage", "body_text_of", "deliver_pending",
           "enqueue", "init_app", "purge_delivered", "subject_of", "template_of"]
