"""Record retention: find clients past the retention period, and purge their conversations.

The retention clock (practice policy under 45 CFR 164.316(b)(2): keep records six years, the
practice keeps RETENTION_YEARS, 7 by default) starts on the later of two days:

- the client's last portal activity, as a day at the practice: the newest of a message in any
  of their conversations, a sign-in, a change to one of their Good Faith Estimates (created,
  saved, issued, downloaded, acknowledged) and, for someone who never did anything, the day
  their account was made;
- their last date of service as staff record it (`User.last_service_on`: a discharge or the
  last session; `portal.accounts.service.set_last_service_on`).

A client becomes eligible the day after the clock start plus the retention period
(`ClientRecord.eligible_on`), and the report names which fact started the clock.

A legal hold (`portal.ops.holds`: a dispute, litigation, an investigation) blocks the purge:
the report shows a held client as "held (dispute, since <date>)", and `purge` checks for an
open hold again inside each client's transaction, under the client's row lock, so a client
held since the report, or passed to `purge` directly, is skipped (`PurgeResult.on_hold`,
audited `retention.purge_blocked.legal_hold`).

`report_named` is the administrator's report with names: it records one
`retention.reported` event per client named (ids only), which their access log words as
"Your name appeared in the practice's retention report".

`purge` removes a client's conversations (threads, messages, attachments), their queued mail
and the notices still waiting to tell their therapist about those conversations, ends their
sessions, deactivates the account and crypto-shreds their data keys
(`portal.crypto.rotation.shred`), so whatever sealed value is left anywhere (the account's
name and email, old estimates and drafts, a copy in a WAL file) never opens again. Their
emergency-access grants are deleted with the conversations (the written reasons are sealed
under the administrator's key, out of the shred's reach). All of it happens in one
transaction per client.

Good Faith Estimates are never deleted. An issued one must stay readable for six years after
it was issued (45 CFR 149.610 asks for six years), and it is sealed under the same data key:
a client with such an estimate keeps their key (their conversations still go) until the
youngest one turns six; a later purge then shreds it. Audit events carry ids only, and stay.
"""

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import delete, func, inspect, select, update

from portal import practice
from portal.accounts import sessions
from portal.accounts.identity import names_by_id
from portal.accounts.models import Assignment, OneTimeToken, Role, User, new_alt_id
from portal.audit import record
from portal.audit.service import record_many
from portal.crypto.models import DataKey
from portal.crypto.rotation import shred
from portal.db import utcnow
from portal.db.connections import scrub_deleted
from portal.estimates.models import GoodFaithEstimate
from portal.extensions import db
from portal.mail.models import OutboxMessage
from portal.messaging.emergency_index import client_index
from portal.messaging.models import Attachment, EmergencyGrant, Message, Thread
from portal.ops import holds

DEFAULT_YEARS = 7
GFE_KEEP_YEARS = 6
SERVICE_KIND = "last date of service"


class RetentionError(Exception):
    """A purge that must not go ahead; the message says why in one line."""


@dataclass
class ClientRecord:
    """One client's retention facts: ids, dates and counts, never content."""

    client_id: uuid.UUID
    last_activity: datetime
    last_activity_kind: str  # message, sign-in, estimate, account created
    clock_start: date | None = None  # the later of the activity's day and the service date
    clock_kind: str = ""  # the activity's kind, or "last date of service"
    eligible_on: date | None = None  # the first day the purge may take them
    hold_reason: str | None = None  # an open legal hold's reason (its oldest)
    hold_since: date | None = None
    threads: int = 0
    messages: int = 0
    attachments: int = 0
    issued_estimates: int = 0
    keep_estimates_until: date | None = None  # the youngest issued GFE turns six then

    @property
    def key_held(self) -> bool:
        """True when an issued estimate younger than six years needs the data key."""
        return self.keep_estimates_until is not None

    @property
    def on_hold(self) -> bool:
        """True when a legal hold is open on the record: never purged while it is."""
        return self.hold_reason is not None

    @property
    def hold_status(self) -> str:
        """'held (dispute, since 2026-11-30)' or 'no hold'."""
        if not self.on_hold:
            return "no hold"
        return f"held ({self.hold_reason}, since {self.hold_since.isoformat()})"


@dataclass
class PurgeResult:
    before: date
    shredded: list[uuid.UUID] = field(default_factory=list)
    held: list[ClientRecord] = field(default_factory=list)  # conversations gone, key kept
    on_hold: list[ClientRecord] = field(default_factory=list)  # a legal hold: left alone
    threads: int = 0
    messages: int = 0
    attachments: int = 0


# ----------------------------------------------------------------------------- dates


def retention_years() -> int:
    """The retention period in whole years (RETENTION_YEARS, 7 by default)."""
    years = int(current_app.config.get("RETENTION_YEARS", DEFAULT_YEARS))
    if years < 1:
        raise RetentionError("RETENTION_YEARS must be at least 1")
    return years


def years_before(day: date, years: int) -> date:
    """The same calendar day `years` earlier (28 February for a 29 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def retention_cutoff(today: date | None = None) -> date:
    """A clock that started before this day is past the retention period."""
    return years_before(today or practice.today(), retention_years())


def eligible_on(clock_start: date) -> date:
    """The first day a clock that started on `clock_start` is past the retention period."""
    return _add_years(clock_start, retention_years()) + timedelta(days=1)


def clock_start(last_activity: datetime, last_service_on: date | None) -> tuple[date, str]:
    """The day the clock started, and whether the activity or the service date started it
    (the service date when both fall on one day)."""
    active_on = last_activity.astimezone(practice.zone()).date()
    if last_service_on is not None and last_service_on >= active_on:
        return last_service_on, SERVICE_KIND
    return active_on, ""


# ----------------------------------------------------------------------------- report


def _estimates_table():
    if not inspect(db.session.connection()).has_table(GoodFaithEstimate.__tablename__):
        return None  # the estimates feature's tables are not migrated in yet
    return GoodFaithEstimate


def _purged_clients() -> set[uuid.UUID]:
    """Clients whose data keys are all shredded: nothing of theirs opens any more."""
    shredded = select(DataKey.owner_id).where(DataKey.shredded_at.is_not(None))
    live = select(DataKey.owner_id).where(DataKey.shredded_at.is_(None))
    return set(db.session.scalars(shredded.except_(live)))


def _latest(into: dict[uuid.UUID, tuple[datetime, str]], rows, kind: str) -> None:
    for client_id, at in rows:
        if at is not None and (client_id not in into or at > into[client_id][0]):
            into[client_id] = (at, kind)


def client_records(before: date, today: date | None = None, *,
                   only: uuid.UUID | None = None) -> list[ClientRecord]:
    """Clients whose clock started before `before` (and not yet shredded), oldest first,
    with any open legal hold.

    `only` limits the answer to one client (a purge checks each again in its transaction).
    """
    today = today or practice.today()
    latest: dict[uuid.UUID, tuple[datetime, str]] = {}
    clients = select(User.id).where(User.role == Role.CLIENT)
    if only is not None:
        clients = clients.where(User.id == only)
    served: dict[uuid.UUID, date] = {}
    created = []
    for client_id, at, service_on in db.session.execute(
            select(User.id, User.created_at, User.last_service_on).where(User.id.in_(clients))):
        created.append((client_id, at))
        if service_on is not None:
            served[client_id] = service_on
    _latest(latest, created, "account created")
    _latest(latest, db.session.execute(
        select(User.id, User.last_signin_at).where(User.id.in_(clients))), "sign-in")
    _latest(latest, db.session.execute(
        select(Thread.client_id, func.max(Thread.last_message_at))
        .where(Thread.client_id.in_(clients)).group_by(Thread.client_id)), "message")
    estimate = _estimates_table()
    if estimate is not None:
        for column in (estimate.created_at, estimate.updated_at, estimate.issued_at,
                       estimate.last_downloaded_at, estimate.acknowledged_at):
            _latest(latest, db.session.execute(
                select(estimate.client_id, func.max(column))
                .where(estimate.client_id.in_(clients)).group_by(estimate.client_id)),
                "estimate")

    purged = _purged_clients()
    records: dict[uuid.UUID, ClientRecord] = {}
    for client_id, (at, kind) in latest.items():
        start, started_by = clock_start(at, served.get(client_id))
        if start < before and client_id not in purged:
            records[client_id] = ClientRecord(client_id, at, kind, clock_start=start,
                                              clock_kind=started_by or kind,
                                              eligible_on=eligible_on(start))
    if not records:
        return []
    ids = list(records)
    for start in range(0, len(ids), 500):
        _count_into(records, ids[start:start + 500], estimate, today)
    for client_id, hold in holds.open_holds(ids).items():
        records[client_id].hold_reason = hold.reason
        records[client_id].hold_since = hold.placed_at.astimezone(practice.zone()).date()
    return sorted(records.values(),
                  key=lambda r: (r.clock_start, r.last_activity, str(r.client_id)))


def _count_into(records: dict[uuid.UUID, ClientRecord], ids: list[uuid.UUID], estimate,
                today: date) -> None:
    for client_id, count in db.session.execute(
            select(Thread.client_id, func.count()).where(Thread.client_id.in_(ids))
            .group_by(Thread.client_id)):
        records[client_id].threads = count
    for client_id, count in db.session.execute(
            select(Thread.client_id, func.count(Message.id))
            .join(Message, Message.thread_id == Thread.id)
            .where(Thread.client_id.in_(ids)).group_by(Thread.client_id)):
        records[client_id].messages = count
    for client_id, count in db.session.execute(
            select(Thread.client_id, func.count(Attachment.id))
            .join(Message, Message.thread_id == Thread.id)
            .join(Attachment, Attachment.message_id == Message.id)
            .where(Thread.client_id.in_(ids)).group_by(Thread.client_id)):
        records[client_id].attachments = count
    if estimate is None:
        return
    keep_from = years_before(today, GFE_KEEP_YEARS)
    for client_id, count, youngest in db.session.execute(
            select(estimate.client_id, func.count(), func.max(estimate.issue_date))
            .where(estimate.client_id.in_(ids), estimate.status.in_(("issued", "superseded")))
            .group_by(estimate.client_id)):
        record_ = records[client_id]
        record_.issued_estimates = count
        if youngest is not None and youngest > keep_from:
            record_.keep_estimates_until = _add_years(youngest, GFE_KEEP_YEARS)


def _add_years(day: date, years: int) -> date:
    return years_before(day, -years)


def report(today: date | None = None) -> tuple[date, list[ClientRecord]]:
    """Clients past the retention period: (the cutoff day, their records)."""
    cutoff = retention_cutoff(today)
    return cutoff, client_records(cutoff, today)


@dataclass
class NamedReport:
    """The administrator's report: the records, and who each client and therapist is."""

    cutoff: date
    records: list[ClientRecord]
    names: dict[uuid.UUID, str]  # clients and therapists
    therapists: dict[uuid.UUID, list[uuid.UUID]]  # client id -> their therapists' ids


def report_named(actor: User, today: date | None = None) -> NamedReport:
    """The report with each client's name and therapists, for an administrator to read.

    Names are opened in one call for everyone listed. One `retention.reported` event per
    client named (ids only; the client's access log shows it) is committed before the names
    are handed back, so nobody is named without the trail saying so.
    """
    if actor is None or actor.role != Role.ADMIN or not actor.active:
        raise RetentionError("the report names clients: run it as an active administrator")
    cutoff, records = report(today)
    ids = [r.client_id for r in records]
    therapists: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for start in range(0, len(ids), 500):
        for client_id, therapist_id in db.session.execute(
                select(Assignment.client_id, Assignment.therapist_id)
                .where(Assignment.client_id.in_(ids[start:start + 500]))
                .order_by(Assignment.created_at, Assignment.id)):
            therapists[client_id].append(therapist_id)
    try:
        record_many([("retention.reported", ("user", client_id), client_id)
                     for client_id in ids], actor=actor)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    people = list(dict.fromkeys([*ids, *(t for listed in therapists.values() for t in listed)]))
    names = names_by_id(people) if people else {}
    return NamedReport(cutoff, records, names, dict(therapists))


# ----------------------------------------------------------------------------- purge


def confirmation_phrase(count: int) -> str:
    """What the operator types to purge `count` clients."""
    return f"purge {count} client{'' if count == 1 else 's'}"


def check_before(before: date, today: date | None = None) -> None:
    """Refuse a date inside the retention period (or in the future)."""
    latest = retention_cutoff(today)
    if before > latest:
        raise RetentionError(
            f"{before.isoformat()} is inside the retention period of {retention_years()} "
            f"years: the latest date allowed today is {latest.isoformat()}")


def purge(before: date, *, today: date | None = None,
          records: list[ClientRecord] | None = None) -> PurgeResult:
    """Purge every client whose clock started before `before`; one commit per client.

    `records` is what the operator confirmed (from `client_records`); each is checked again
    inside its transaction, so a client who became active since, or is under a legal hold
    (even one passed here directly), is left alone; held ones are in `on_hold`.
    """
    today = today or practice.today()
    check_before(before, today)
    if records is None:
        records = client_records(before, today)
    result = PurgeResult(before)
    for confirmed in records:
        _purge_one(confirmed.client_id, before, today, result)
    if records:
        scrub_deleted(db.engine)  # no older copy of what went left in SQLite's WAL or file
    return result


def _purge_one(client_id: uuid.UUID, before: date, today: date, result: PurgeResult) -> None:
    try:
        # Lock the account (a sign-in writes this row), then check again: someone who became
        # active since the report, or was purged meanwhile, is left alone.
        db.session.execute(select(User.id).where(User.id == client_id).with_for_update())
        found = client_records(before, today, only=client_id)
        if not found:
            db.session.rollback()
            return
        client = found[0]
        if client.on_hold:  # a legal hold: nothing of theirs goes, and the trail says so
            record("retention.purge_blocked.legal_hold", target=("user", client_id),
                   subject_id=client_id, outcome="denied")
            db.session.commit()
            result.on_hold.append(client)
            return
        threads = select(Thread.id).where(Thread.client_id == client_id)
        messages = select(Message.id).where(Message.thread_id.in_(threads))
        notices = list(db.session.scalars(select(Thread.therapist_notice_id).where(
            Thread.client_id == client_id, Thread.therapist_notice_id.is_not(None))))
        removed = defaultdict(int)
        removed["attachments"] = db.session.execute(
            delete(Attachment).where(Attachment.message_id.in_(messages))
            .execution_options(synchronize_session=False)).rowcount or 0
        removed["messages"] = db.session.execute(
            delete(Message).where(Message.thread_id.in_(threads))
            .execution_options(synchronize_session=False)).rowcount or 0
        removed["threads"] = db.session.execute(
            delete(Thread).where(Thread.client_id == client_id)
            .execution_options(synchronize_session=False)).rowcount or 0
        # Emergency grants' reasons are sealed under the administrator's key (the row names
        # its client only by a keyed index), so the shred below would not reach them: they go
        # with the conversations they opened.
        db.session.execute(delete(EmergencyGrant)
                           .where(EmergencyGrant.client_index == client_index(client_id))
                           .execution_options(synchronize_session=False))
        db.session.execute(delete(OutboxMessage).where(OutboxMessage.user_id == client_id)
                           .execution_options(synchronize_session=False))
        if notices:  # "you have a new message" about a conversation that is gone
            db.session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(notices),
                                                           OutboxMessage.sent_at.is_(None))
                               .execution_options(synchronize_session=False))
        db.session.execute(update(OneTimeToken).where(OneTimeToken.user_id == client_id,
                                                      OneTimeToken.used_at.is_(None),
                                                      OneTimeToken.revoked_at.is_(None))
                           .values(revoked_at=utcnow()))
        sessions.end_all(client_id)
        db.session.execute(update(User).where(User.id == client_id)
                           .values(active=False, alt_id=new_alt_id()))
        record("retention.purged", target=("user", client_id), subject_id=client_id,
               severity="high")
        if client.key_held:
            record("retention.key_held", target=("user", client_id), subject_id=client_id)
            db.session.commit()
            result.held.append(client)
        else:
            shred(client_id)  # commits this whole transaction, with its own audit event
            result.shredded.append(client_id)
    except BaseException:
        db.session.rollback()
        raise
    result.threads += removed["threads"]
    result.messages += removed["messages"]
    result.attachments += removed["attachments"]
