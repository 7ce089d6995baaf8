"""`portal retention report` and `portal retention purge --before DATE`."""

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select, update

from portal.accounts.models import User, UserSession
from portal.audit import AuditEvent, verify
from portal.crypto import Context, DecryptionError, open_text
from portal.crypto.models import DataKey
from portal.estimates import content, delivery, drafting, issuing
from portal.estimates.models import GoodFaithEstimate
from portal.extensions import db
from portal.mail.models import OutboxMessage
from portal.messaging import sending
from portal.messaging.models import Attachment, Message, Thread
from portal.ops import retention
from portal.practice import today as practice_today
from tests.estimates.conftest import complete_draft
from tests.messaging.conftest import PDF, PNG, assign, make_user
from tests.ops.support import read_all


def years_ago(years: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=round(365.25 * years))


def person_at(when: datetime, role: str, name: str, therapist: User | None = None) -> User:
    with time_machine.travel(when, tick=False):
        user = make_user(role, name)
        if therapist is not None:
            assign(user, therapist)
    return user


def conversation_at(when: datetime, client: User, therapist: User, *, files=(),
                    client_last: bool = False) -> Thread:
    with time_machine.travel(when, tick=False):
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject="An old subject", body="An old message",
                                         files=files)
        sending.reply(client, thread.id, body="And one more thing")
        sending.reply(therapist, thread.id, body="An old reply")  # queues mail for the client
        if client_last:
            sending.reply(client, thread.id, body="Thanks")  # a notice waits for the therapist
    return thread


def estimate_at(when: datetime, client: User, therapist: User) -> GoodFaithEstimate:
    with time_machine.travel(when, tick=False):
        draft = drafting.create_draft(therapist, client)
        drafting.save_draft(therapist, draft, complete_draft(practice_today()))
        return issuing.issue(therapist, draft.id)


@dataclass
class Practice:
    therapist: User
    inactive: User  # nothing for 8 years: purged
    inactive_gfe: User  # nothing for 8.5 years, an estimate issued then: purged, key shredded
    signed_in: User  # old conversations, signed in 18 months ago
    replied_to: User  # old conversations, a therapist reply 2 years ago
    downloaded: User  # old estimate, downloaded 2 years ago
    newcomer: User  # invited today


@pytest.fixture
def practice(app) -> Practice:
    """Clients with every kind of last activity, some past seven years and some not."""
    therapist = person_at(years_ago(9), "therapist", "Colleen Xu")
    found = Practice(
        therapist=therapist,
        inactive=person_at(years_ago(8.2), "client", "Ina Active", therapist),
        inactive_gfe=person_at(years_ago(8.6), "client", "Gia Fe", therapist),
        signed_in=person_at(years_ago(8.2), "client", "Sig Nedin", therapist),
        replied_to=person_at(years_ago(8.2), "client", "Rep Lied", therapist),
        downloaded=person_at(years_ago(8.2), "client", "Dow Nload", therapist),
        newcomer=person_at(datetime.now(UTC), "client", "New Comer", therapist),
    )
    conversation_at(years_ago(8), found.inactive, therapist,
                    files=[("letter.pdf", PDF), ("drawing.png", PNG)])
    conversation_at(years_ago(8.1), found.inactive, therapist, client_last=True)
    conversation_at(years_ago(8.5), found.inactive_gfe, therapist)
    estimate_at(years_ago(8.5), found.inactive_gfe, therapist)
    conversation_at(years_ago(8), found.signed_in, therapist)
    db.session.execute(update(User).where(User.id == found.signed_in.id)
                       .values(last_signin_at=years_ago(1.5)))
    db.session.commit()
    old = conversation_at(years_ago(8), found.replied_to, therapist)
    with time_machine.travel(years_ago(2), tick=False):
        sending.reply(therapist, old.id, body="Checking in after a long while", notify=False)
    gfe = estimate_at(years_ago(8), found.downloaded, therapist)
    with time_machine.travel(years_ago(2), tick=False):
        delivery.record_download(found.downloaded, gfe)
    return found


def listed(output: str) -> set[str]:
    return set(re.findall(r"^([0-9a-f-]{36}) ", output, re.MULTILINE))


def counts(client) -> tuple[int, int, int]:
    """(threads, messages, attachments) of a client (a User or an id)."""
    client_id = client if isinstance(client, uuid.UUID) else client.id
    threads = select(Thread.id).where(Thread.client_id == client_id)
    messages = select(Message.id).where(Message.thread_id.in_(threads))
    return (db.session.scalar(select(func.count()).select_from(Thread)
                              .where(Thread.client_id == client_id)),
            db.session.scalar(select(func.count()).select_from(Message)
                              .where(Message.thread_id.in_(threads))),
            db.session.scalar(select(func.count()).select_from(Attachment)
                              .where(Attachment.message_id.in_(messages))))


def test_report_lists_only_clients_inactive_for_longer_than_seven_years(practice, runner):
    admin = make_user("admin", "Ada Min")
    result = runner.invoke(args=["portal", "retention", "report", "--by", admin.email_address])
    assert result.exit_code == 0, result.output
    assert set(re.findall(r"^  client id +([0-9a-f-]{36})$", result.output, re.MULTILINE)) == {
        str(practice.inactive.id), str(practice.inactive_gfe.id)}
    block = result.output.split("\nIna Active\n", 1)[1].split("\n\n", 1)[0]
    assert f"clock started  {years_ago(8).date().isoformat()} (message)" in block
    assert "therapist      Colleen Xu" in block
    assert "2 conversation(s), 7 message(s), 2 file(s); estimates: -" in block
    cutoff = retention.years_before(practice_today(), 7)
    assert f"clock started before {cutoff}" in result.output
    assert f"portal retention purge --before {cutoff}" in result.output
    for private in ("Sig Nedin", "New Comer", "An old", practice.inactive.email_address):
        assert private not in result.output  # names of clients listed only; no email, no text


def test_the_retention_period_comes_from_the_configuration(practice, app):
    app.config["RETENTION_YEARS"] = 10
    assert retention.report()[1] == []
    app.config["RETENTION_YEARS"] = 1
    found = {r.client_id: r.last_activity_kind for r in retention.report()[1]}
    assert found == {practice.inactive.id: "message", practice.inactive_gfe.id: "estimate",
                     practice.signed_in.id: "sign-in", practice.replied_to.id: "message",
                     practice.downloaded.id: "estimate"}


def test_purge_does_nothing_without_the_typed_confirmation(practice, runner):
    cutoff = retention.retention_cutoff().isoformat()
    result = runner.invoke(args=["portal", "retention", "purge", "--before", cutoff],
                           input="yes\n")
    assert result.exit_code == 1
    assert 'Type "purge 2 clients" to go ahead' in result.output
    assert "not confirmed; nothing was purged" in result.output
    assert counts(practice.inactive) == (2, 7, 2)
    assert db.session.get(User, practice.inactive.id).active


def test_purge_refuses_a_day_inside_the_retention_period(practice, runner):
    result = runner.invoke(args=["portal", "retention", "purge", "--before",
                                 date.today().isoformat(), "--confirm", "purge 7 clients"])
    assert result.exit_code == 1
    assert "inside the retention period of 7 years" in result.output
    assert counts(practice.signed_in) == (1, 3, 0)


def test_purge_crypto_shreds_and_deletes_conversations_but_never_an_estimate(practice, runner):
    others = {c.id: counts(c) for c in (practice.signed_in, practice.replied_to)}
    purged = [practice.inactive_gfe.id, practice.inactive.id]  # the longest inactive first
    gfe_id, gfe_pdf = db.session.execute(
        select(GoodFaithEstimate.id, GoodFaithEstimate.pdf_sealed)
        .where(GoodFaithEstimate.client_id == practice.inactive_gfe.id)).one()
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)
                             .where(OutboxMessage.user_id == practice.inactive.id))
    therapist_id = practice.therapist.id
    waiting = (select(func.count()).select_from(OutboxMessage)
               .where(OutboxMessage.user_id == therapist_id, OutboxMessage.sent_at.is_(None)))
    assert db.session.scalar(waiting) == 1  # "new message" about the inactive client's thread
    cutoff = retention.retention_cutoff().isoformat()

    result = runner.invoke(args=["portal", "retention", "purge", "--before", cutoff],
                           input="purge 2 clients\n")
    assert result.exit_code == 0, result.output
    assert ("Purged 2 client(s): 3 conversations, 10 messages, 2 attachments deleted; "
            "2 data key set(s) shredded.") in result.output
    db.session.remove()

    for gone in purged:
        assert counts(gone) == (0, 0, 0)
        keys = list(db.session.scalars(select(DataKey).where(DataKey.owner_id == gone)))
        assert keys and all(k.wrapped is None and k.shredded_at for k in keys)
        assert not db.session.get(User, gone).active
        assert db.session.scalar(select(func.count()).select_from(UserSession)
                                 .where(UserSession.user_id == gone)) == 0
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                 .where(OutboxMessage.user_id == gone)) == 0
    assert db.session.scalar(waiting) == 0  # no notice about a conversation that is gone
    # The 8.5-year-old estimate is still there, unreadable now, never deleted.
    kept = db.session.get(GoodFaithEstimate, gfe_id)
    assert kept is not None and kept.status == "issued" and kept.pdf_sealed == gfe_pdf
    with pytest.raises(content.EstimateUnavailable):
        content.open_pdf(kept)
    # Everyone else is untouched and readable.
    assert {c: counts(c) for c in others} == others
    assert "Checking in after a long while" in read_all().bodies.values()

    events = list(db.session.scalars(select(AuditEvent).where(
        AuditEvent.action.in_(["retention.purged", "crypto.shred"])).order_by(AuditEvent.seq)))
    assert [(e.action, e.target_type, e.target_id, e.subject_id) for e in events] == [
        (action, "user", str(who), who) for who in purged
        for action in ("retention.purged", "crypto.shred")]
    assert verify().ok
    assert retention.report()[1] == []


def test_an_issued_estimate_younger_than_six_years_keeps_its_data_key(app, runner):
    app.config["RETENTION_YEARS"] = 3
    therapist = person_at(years_ago(5), "therapist", "Kristen Young")
    client = person_at(years_ago(4.2), "client", "Rue Tained", therapist)
    conversation_at(years_ago(4.1), client, therapist, files=[("scan.pdf", PDF)])
    gfe = estimate_at(years_ago(4), client, therapist)
    pdf = content.open_pdf(gfe)
    client_id, gfe_id, issued_on = client.id, gfe.id, gfe.issue_date
    cutoff = retention.retention_cutoff().isoformat()

    result = runner.invoke(args=["portal", "retention", "purge", "--before", cutoff,
                                 "--confirm", "purge 1 client"])
    assert result.exit_code == 0, result.output
    keep_until = retention.years_before(issued_on, -6)
    assert f"{client_id}: data key kept until {keep_until}" in result.output
    db.session.remove()

    assert counts(client_id) == (0, 0, 0)
    assert not db.session.get(User, client_id).active
    assert db.session.scalar(select(func.count()).select_from(DataKey).where(
        DataKey.owner_id == client_id, DataKey.shredded_at.is_(None))) >= 1
    assert content.open_pdf(db.session.get(GoodFaithEstimate, gfe_id)) == pdf
    held = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "retention.key_held"))
    assert held.target_id == str(client_id)
    [again] = retention.report()[1]  # listed until the estimate turns six, then shredded
    assert again.client_id == client_id and again.messages == 0
    assert again.keep_estimates_until == keep_until
    assert verify().ok


def test_a_client_active_again_since_the_report_is_left_alone(practice):
    cutoff = retention.retention_cutoff()
    confirmed = retention.client_records(cutoff)
    db.session.execute(update(User).where(User.id == practice.inactive.id)
                       .values(last_signin_at=datetime.now(UTC)))
    db.session.commit()

    result = retention.purge(cutoff, records=confirmed)
    assert result.shredded == [practice.inactive_gfe.id]
    assert counts(practice.inactive) == (2, 7, 2)
    read_all()  # every remaining conversation still opens
    user = db.session.get(User, practice.inactive_gfe.id)
    with pytest.raises(DecryptionError):  # shredded: even the name no longer opens
        open_text(user.id, Context("users", "name", user.id), user.name_sealed)
