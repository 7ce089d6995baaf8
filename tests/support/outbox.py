"""The mail outbox as tests read it: the template and subject are sealed, so rows are opened
and filtered in Python (there is no readable column to put in a WHERE)."""

from sqlalchemy import select

from portal.extensions import db
from portal.mail.models import OutboxMessage, template_of


def outbox(template: str | None = None, *where) -> list[OutboxMessage]:
    """Queued mail rows (of one template, and matching `where`), oldest first."""
    stmt = select(OutboxMessage).where(*where).order_by(OutboxMessage.created_at)
    return [row for row in db.session.scalars(stmt)
            if template is None or template_of(row) == template]
