"""Minors and guardians (#16): ages, links, consent, shares and the end at 18, on a frozen
clock. Pennsylvania Act 147 of 2004: a minor of 14 or over may consent themselves."""

from datetime import date

import pytest
from sqlalchemy import func, select

from portal.audit import AuditEvent, verify
from portal.errors import RuleError
from portal.extensions import db
from portal.guardians import links
from portal.guardians.models import Guardianship, Minor
from portal.mail.models import OutboxMessage
from tests.support.clock import freeze
from tests.support.outbox import outbox
from tests.support.people import make_admin, make_client, make_guardian, make_minor


@pytest.fixture
def today(monkeypatch):
    return freeze(monkeypatch, date(2026, 6, 15))


def test_ages_and_the_18th_birthday_including_29_february():
    assert links.age_on(date(2010, 6, 15), date(2026, 6, 14)) == 15
    assert links.age_on(date(2010, 6, 15), date(2026, 6, 15)) == 16
    assert links.birthday(date(2008, 2, 29), 18) == date(2026, 3, 1)
    assert not links.is_adult(date(2008, 6, 16), date(2026, 6, 15))
    assert links.is_adult(date(2008, 6, 15), date(2026, 6, 15))


def test_recording_a_minor_refuses_adults_the_future_and_self_consent_under_14(app, today):
    admin, client = make_admin(), make_client()
    for born, consent, field in ((date(2008, 6, 15), "guardian", "date_of_birth"),
                                 (date(2026, 7, 1), "guardian", "date_of_birth"),
                                 (date(2013, 1, 1), "minor", "consent_by"),
                                 (date(2012, 1, 1), "nobody", "consent_by")):
        with pytest.raises(RuleError) as refused:
            links.record_minor(admin, client, born=born, consent_by=consent)
        assert refused.value.field == field
    assert db.session.scalar(select(func.count()).select_from(Minor)) == 0
    minor = links.record_minor(admin, client, born=date(2012, 6, 15), consent_by="minor")
    assert links.date_of_birth(minor) == date(2012, 6, 15)
    assert b"2012" not in minor.date_of_birth_sealed  # sealed under the minor's key


def test_a_link_needs_a_guardian_account_and_a_minor(app, today):
    admin, guardian, adult = make_admin(), make_guardian(), make_client()
    with pytest.raises(RuleError, match="minor"):
        links.link(admin, guardian, adult)
    minor = make_minor(date(2011, 1, 1))
    with pytest.raises(RuleError, match="guardian account"):
        links.link(admin, make_client(), minor)
    row = links.link(admin, guardian, minor)
    with pytest.raises(RuleError, match="already linked"):
        links.link(admin, guardian, minor)
    assert links.live_minor_ids(guardian.id) == [minor.id]
    assert [r.id for r in links.guardians_of(minor.id)] == [row.id]


def test_access_ends_on_the_18th_birthday_before_the_job_runs_and_the_job_says_so(
        app, monkeypatch):
    clock = freeze(monkeypatch, date(2026, 6, 14))
    guardian = make_guardian()
    minor = make_minor(date(2008, 6, 15), guardian=guardian)
    assert links.live_link(guardian.id, minor.id) is not None
    assert links.end_links_of_adults() == 0

    clock.advance(1)  # the 18th birthday
    assert links.live_link(guardian.id, minor.id) is None  # on the day, before any job
    assert links.live_minor_ids(guardian.id) == []
    assert links.end_links_of_adults() == 1
    assert links.end_links_of_adults() == 0  # a second loop finds nothing to do
    (row,) = db.session.scalars(select(Guardianship))
    assert row.end_reason == "turned_18" and row.ended_at is not None
    (notice,) = outbox("guardian_access_ended", OutboxMessage.user_id == guardian.id)
    assert "turned 18" not in notice.subject  # subjects say nothing
    events = list(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.subject_id == minor.id)))
    assert "guardianship.ended.turned_18" in events
    assert verify().ok


def test_an_unlinked_guardian_has_no_access_and_the_history_stays(app, today):
    admin, guardian = make_admin(), make_guardian()
    minor = make_minor(date(2012, 3, 3), guardian=guardian)
    row = links.live_link(guardian.id, minor.id)
    links.unlink(admin, row)
    assert links.live_link(guardian.id, minor.id) is None
    with pytest.raises(RuleError, match="already ended"):
        links.unlink(admin, row)
    assert [r.end_reason for r in links.links_history(minor.id)] == ["unlinked"]
    links.link(admin, guardian, minor)  # linked again later: a new row
    assert len(links.links_history(minor.id)) == 2


def test_who_consented_decides_what_a_guardian_sees_of_estimates(app, today):
    import uuid

    guardian = make_guardian()
    by_guardian = make_minor(date(2013, 1, 1), guardian=guardian, consent_by="guardian")
    by_minor = make_minor(date(2011, 1, 1), guardian=guardian, consent_by="minor")
    estimate = uuid.uuid4()
    assert links.may_see_estimate(links.live_link(guardian.id, by_guardian.id), estimate)
    row = links.live_link(guardian.id, by_minor.id)
    assert not links.may_see_estimate(row, estimate)
    links.share(by_minor, row, "estimate", estimate)
    assert links.may_see_estimate(row, estimate)
    with pytest.raises(RuleError, match="already shared"):
        links.share(by_minor, row, "estimate", estimate)
    links.withdraw(by_minor, row, "estimate", estimate)
    assert not links.may_see_estimate(row, estimate)
    with pytest.raises(RuleError, match="Only a Good Faith Estimate"):
        links.share(by_minor, row, "conversation", estimate)
