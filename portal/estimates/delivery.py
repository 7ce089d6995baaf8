"""Evidence that the client received an estimate: first view, downloads, acknowledgement."""

from sqlalchemy import select, update

from portal.accounts.models import User
from portal.audit import record
from portal.db import utcnow
from portal.errors import RuleError
from portal.estimates.models import TABLE, DeliveryEvent, GoodFaithEstimate
from portal.extensions import db


def record_view(user: User, estimate: GoodFaithEstimate) -> bool:
    """Record the client's first look at an issued estimate (once); True the first time."""
    if user.id != estimate.client_id or not estimate.is_issued:
        return False
    return _mark_once(user, estimate, "first_viewed_at", kind="viewed", action="estimate.viewed")


def record_download(user: User, estimate: GoodFaithEstimate) -> None:
    """Record a PDF download: the client's count as delivery evidence; everyone's audited."""
    now = utcnow()
    if user.id == estimate.client_id:
        db.session.execute(
            update(GoodFaithEstimate).where(GoodFaithEstimate.id == estimate.id)
            .values(download_count=GoodFaithEstimate.download_count + 1,
                    last_downloaded_at=now),
            execution_options={"synchronize_session": False})
        db.session.add(DeliveryEvent(estimate_id=estimate.id, user_id=user.id,
                                     kind="downloaded", at=now))
    record("estimate.downloaded", actor=user, target=(TABLE, estimate.id),
           subject_id=estimate.client_id)
    db.session.commit()


def acknowledge(user: User, estimate: GoodFaithEstimate) -> bool:
    """The client confirms they received the estimate (optional; once, timestamped)."""
    if user.id != estimate.client_id or not estimate.is_issued:
        raise RuleError("Only the client can acknowledge their estimate.")
    return _mark_once(user, estimate, "acknowledged_at", kind="acknowledged",
                      action="estimate.acknowledged")


def _mark_once(user: User, estimate: GoodFaithEstimate, column: str, *, kind: str,
               action: str) -> bool:
    """Stamp a once-only delivery column and log it; False if it was already stamped.

    Delivery evidence must say when something first happened, so the stamp is set by one
    conditional UPDATE (only while the column is empty): a double click or two open tabs
    cannot both win, and only the winner adds the delivery event and the audit record, with
    the same timestamp as the column.

    The UPDATE runs in a SAVEPOINT, so losing (or an error) undoes only that statement: the
    caller's own pending work stays in its transaction (uncommitted, for the caller to commit
    or discard). SQLite honours the SAVEPOINT because `portal.db.transactions` has SQLAlchemy,
    not the driver, begin each transaction.
    """
    now = utcnow()
    with db.session.begin_nested() as savepoint:
        result = db.session.execute(
            update(GoodFaithEstimate)
            .where(GoodFaithEstimate.id == estimate.id,
                   getattr(GoodFaithEstimate, column).is_(None))
            .values({column: now}),
            execution_options={"synchronize_session": False})
        if result.rowcount != 1:
            savepoint.rollback()
            return False
    db.session.add(DeliveryEvent(estimate_id=estimate.id, user_id=user.id, kind=kind, at=now))
    record(action, actor=user, target=(TABLE, estimate.id), subject_id=estimate.client_id)
    db.session.commit()
    return True


def delivery_events(estimate: GoodFaithEstimate) -> list[DeliveryEvent]:
    """The client's views, downloads and acknowledgement, oldest first."""
    return list(db.session.scalars(
        select(DeliveryEvent).where(DeliveryEvent.estimate_id == estimate.id)
        .order_by(DeliveryEvent.at)))
