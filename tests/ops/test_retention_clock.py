"""The retention clock: it starts on the later of the client's last portal activity and the
last date of service staff record, and `retention report` names each client for the
administrator who runs it.

Practice policy on record retention (45 CFR 164.316(b)(2) asks for six years; the practice
keeps RETENTION_YEARS, 7 by default), counted from the end of care as well as from the last
use of the portal.
"""

import logging
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import event, func, select

from portal.accounts import service
from portal.accounts.identity import names_by_id
from portal.audit import AuditEvent
from portal.audit.access_log import access_log
from portal.errors import RuleError
from portal.extensions import db
from portal.ops import retention
from portal.practice import today as practice_today
from portal.practice import zone
from tests.accounts.support import (
    guarded_requests,  # noqa: F401 - fixture (500 guard)
    post_form,
    sign_in,
)
from tests.accounts.support import make_user as make_person
from tests.messaging.conftest import make_user
from tests.ops.test_retention import conversation_at, person_at, years_ago


def _local_day(when: datetime) -> date:
    return when.astimezone(zone()).date()


def _set_service(client, day: date) -> None:
    """Record a last date of service as an administrator would."""
    admin = make_user("admin", "Ad Ministrator")
    service.set_last_service_on(admin, client, day)


@pytest.fixture
def therapist(app):
    return person_at(years_ago(12), "therapist", "Colleen Xu")


# ----------------------------------------------------------------------------- the clock


def test_a_later_last_date_of_service_restarts_the_clock(app, therapist):
    """45 CFR 164.316(b)(2) / practice policy: a client discharged three years ago, who last
    used the portal eight years ago, is kept seven years from the discharge."""
    client = person_at(years_ago(9), "client", "Dee Scharged", therapist)
    conversation_at(years_ago(8), client, therapist)
    assert [r.client_id for r in retention.report()[1]] == [client.id]  # by activity alone

    discharged = practice_today() - timedelta(days=3 * 365)
    _set_service(client, discharged)
    assert retention.report()[1] == []

    app.config["RETENTION_YEARS"] = 2
    [found] = retention.report()[1]
    assert (found.clock_start, found.clock_kind) == (discharged, "last date of service")
    assert found.last_activity_kind == "message"  # the activity is still known
    assert found.eligible_on == retention.years_before(discharged, -2) + timedelta(days=1)


def test_an_earlier_last_date_of_service_leaves_the_clock_with_the_activity(app, therapist):
    client = person_at(years_ago(10), "client", "Ear Lier", therapist)
    conversation_at(years_ago(8), client, therapist)
    _set_service(client, _local_day(years_ago(9)))
    [found] = retention.report()[1]
    assert found.clock_kind == "message"
    assert found.clock_start == _local_day(years_ago(8))


def test_the_service_date_starts_the_clock_when_both_fall_on_one_day(app):
    activity = datetime(2019, 6, 3, 15, 0, tzinfo=UTC)
    assert retention.clock_start(activity, date(2019, 6, 3)) == (date(2019, 6, 3),
                                                                "last date of service")
    assert retention.clock_start(activity, date(2019, 6, 2)) == (date(2019, 6, 3), "")
    assert retention.clock_start(activity, None) == (date(2019, 6, 3), "")
    # The activity counts as a day at the practice (New York), not in UTC.
    late = datetime(2019, 6, 4, 2, 30, tzinfo=UTC)  # 22:30 on 3 June in New York
    assert retention.clock_start(late, None) == (date(2019, 6, 3), "")


@pytest.mark.parametrize("start", [date(2018, 3, 10), date(2020, 2, 29), date(2019, 12, 31)])
def test_a_client_is_eligible_from_exactly_the_day_the_report_says(app, start):
    """45 CFR 164.316(b)(2) / practice policy: not a day early."""
    eligible = retention.eligible_on(start)
    for today, listed in ((eligible - timedelta(days=1), False), (eligible, True)):
        assert (start < retention.retention_cutoff(today)) is listed, (start, today)
    assert eligible == {date(2018, 3, 10): date(2025, 3, 11), date(2020, 2, 29): date(2027, 3, 1),
                        date(2019, 12, 31): date(2027, 1, 1)}[start]


def test_a_client_past_the_period_on_one_day_is_listed_the_next(app, therapist):
    client = person_at(years_ago(9), "client", "Bo Undary", therapist)
    served = _local_day(years_ago(7.5))
    _set_service(client, served)
    eligible = retention.eligible_on(served)
    before = retention.client_records(retention.retention_cutoff(eligible - timedelta(days=1)),
                                      eligible - timedelta(days=1))
    on_the_day = retention.client_records(retention.retention_cutoff(eligible), eligible)
    assert client.id not in {r.client_id for r in before}
    assert [r.eligible_on for r in on_the_day if r.client_id == client.id] == [eligible]


# ----------------------------------------------------------------------------- recording it


def test_staff_record_the_last_date_of_service_audited_with_ids_only(app, therapist):
    client = person_at(years_ago(2), "client", "Rec Orded", therapist)
    day = practice_today() - timedelta(days=10)
    service.set_last_service_on(therapist, client, day)  # their assigned therapist
    db.session.expire_all()
    assert db.session.get(type(client), client.id).last_service_on == day
    row = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "account.last_service_recorded"))
    assert (row.actor_id, row.subject_id, row.target_type, row.target_id) == (
        therapist.id, client.id, "user", str(client.id))
    assert next(e.what for e in access_log(client)) == "Recorded your last date of service"


def test_a_last_date_of_service_is_not_in_the_future_nor_before_the_account(app, therapist):
    client = person_at(years_ago(1), "client", "Fu Ture", therapist)
    admin = make_user("admin")
    with pytest.raises(RuleError, match="cannot be in the future") as refused:
        service.set_last_service_on(admin, client, practice_today() + timedelta(days=1))
    assert refused.value.field == "last_service_on"
    with pytest.raises(RuleError, match="cannot be before that"):
        service.set_last_service_on(admin, client, _local_day(years_ago(1)) - timedelta(days=1))
    service.set_last_service_on(admin, client, practice_today())  # today is fine
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "account.last_service_recorded")) == 1


def test_only_an_administrator_or_the_clients_own_therapist_records_it(app, therapist):
    client = person_at(years_ago(1), "client", "Pri Vate", therapist)
    stranger = make_user("therapist", "Kristen Other")
    for who in (stranger, make_user("client")):
        with pytest.raises(RuleError, match="administrator or the client's therapist"):
            service.set_last_service_on(who, client, practice_today())
    with pytest.raises(RuleError, match="for a client"):
        service.set_last_service_on(make_user("admin"), therapist, practice_today())
    db.session.expire_all()
    assert db.session.get(type(client), client.id).last_service_on is None


def test_the_administrators_page_records_the_date_and_shows_refusals_inline(app, therapist):
    admin = make_person("admin", name="Ada Admin")
    browser = app.test_client()
    sign_in(browser, admin)
    client = person_at(years_ago(1), "client", "Pa Ge", therapist)
    page = f"/admin/users/{client.id}"
    assert "Not recorded yet." in browser.get(page).get_data(as_text=True)

    for value, words in (((practice_today() + timedelta(days=2)).isoformat(),
                          "cannot be in the future"),
                         ("31/02/2025", "Enter a real date"), ("", "Enter the last date")):
        refused = post_form(browser, f"{page}/last-service", {"last_service_on": value},
                            page=page)
        assert refused.status_code == 422, value
        html = refused.get_data(as_text=True)
        assert 'id="last_service_on-error"' in html and words in html, value
    day = practice_today() - timedelta(days=5)
    saved = post_form(browser, f"{page}/last-service", {"last_service_on": day.isoformat()},
                      page=page)
    assert saved.status_code == 302
    html = browser.get(page).get_data(as_text=True)
    assert f"{day:%B} {day.day}, {day.year}" in html
    assert browser.post(f"{page}/last-service",
                        data={"last_service_on": day.isoformat()}).status_code == 400


# ----------------------------------------------------------------------------- the report


@pytest.fixture
def past(app, therapist):
    """Three clients past the period: by a message, by a service date, one with two carers."""
    kristen = person_at(years_ago(12), "therapist", "Kristen Ray")
    by_message = person_at(years_ago(9), "client", "Mae Sage", therapist)
    conversation_at(years_ago(8), by_message, therapist)
    by_service = person_at(years_ago(9), "client", "Serv Iced", therapist)
    with time_machine.travel(years_ago(8.5), tick=False):
        service.set_last_service_on(therapist, by_service, practice_today())
    two = person_at(years_ago(9), "client", "Two Carers", kristen)
    with time_machine.travel(years_ago(9), tick=False):
        service.add_assignment(None, two, therapist)
    recent = person_at(years_ago(9), "client", "Still Here", therapist)
    with time_machine.travel(years_ago(1), tick=False):
        service.set_last_service_on(therapist, recent, practice_today())
    return by_message, by_service, two, recent


def test_the_report_names_each_client_their_therapists_and_the_clock(app, runner, past,
                                                                       caplog):
    by_message, by_service, two, _recent = past
    admin = make_user("admin", "Ada Min")
    caplog.set_level(logging.DEBUG)
    result = runner.invoke(args=["portal", "retention", "report", "--by", admin.email_address])
    assert result.exit_code == 0, result.output
    blocks = {b.split("\n", 1)[0]: b for b in result.output.split("\n\n")[1:]}
    assert set(blocks) >= {"Mae Sage", "Serv Iced", "Two Carers"}
    assert "Still Here" not in result.output
    served = _local_day(years_ago(8.5))
    assert f"clock started  {served.isoformat()} (last date of service)" in blocks["Serv Iced"]
    assert f"eligible from  {retention.eligible_on(served).isoformat()}" in blocks["Serv Iced"]
    assert "(message)" in blocks["Mae Sage"]
    assert "therapist      Kristen Ray, Colleen Xu" in blocks["Two Carers"]
    assert "legal hold     no hold" in blocks["Mae Sage"]
    # Names go to the administrator's terminal only: never to a log, never to the trail.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for name in ("Mae Sage", "Serv Iced", "Two Carers", "Colleen Xu"):
        assert name not in logged

    events = list(db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "retention.reported")))
    assert sorted(str(e.subject_id) for e in events) == sorted(
        str(c.id) for c in (by_message, by_service, two))
    assert {(e.actor_id, e.target_type) for e in events} == {(admin.id, "user")}
    assert next(e.what for e in access_log(two)) == (
        "Your name appeared in the practice's retention report")


def test_the_report_is_run_by_an_active_administrator(app, runner, past):
    therapist = make_user("therapist", "Thera Pist")
    for email in (therapist.email_address, "nobody@example.org"):
        result = runner.invoke(args=["portal", "retention", "report", "--by", email])
        assert result.exit_code == 1
        assert "no active administrator with the email" in result.output
        assert "Mae Sage" not in result.output
    assert runner.invoke(args=["portal", "retention", "report"]).exit_code == 2  # --by needed
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "retention.reported")) == 0


def test_the_report_opens_every_name_in_one_call_and_its_reads_stay_flat(app, therapist,
                                                                         monkeypatch):
    admin = make_user("admin")
    calls = []

    def counting(ids):
        calls.append(list(ids))
        return names_by_id(ids)

    monkeypatch.setattr(retention, "names_by_id", counting)

    def reads(clients: int) -> int:
        for n in range(clients):
            person_at(years_ago(9), "client", f"Client {n}", therapist)
        statements = []

        def seen(conn, cursor, statement, *args):
            if "audit" not in statement:  # one event per client named: writes, by design
                statements.append(statement)

        engine = db.engine
        event.listen(engine, "before_cursor_execute", seen)
        try:
            found = retention.report_named(admin)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert len(found.records) >= clients
        return len(statements)

    small = reads(2)
    large = reads(6)
    assert small == large
    assert len(calls) == 2 and len(calls[1]) == 9  # 8 clients and their therapist, at once


def test_a_therapist_records_the_date_from_their_clients_page(app, therapist):
    colleen = make_person("therapist", name="Colleen Page")
    browser = app.test_client()
    sign_in(browser, colleen)
    mine = person_at(years_ago(1), "client", "Mi Ne", colleen.user)
    theirs = person_at(years_ago(1), "client", "Not Mine", therapist)
    day = practice_today() - timedelta(days=3)

    refused = post_form(browser, f"/clients/{mine.id}/last-service",
                        {"last_service_on": (day + timedelta(days=9)).isoformat()},
                        page="/clients")
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert f'id="last-service-{mine.id}-error"' in html and "cannot be in the future" in html
    assert post_form(browser, f"/clients/{theirs.id}/last-service",
                     {"last_service_on": day.isoformat()}, page="/clients").status_code == 404
    saved = post_form(browser, f"/clients/{mine.id}/last-service",
                      {"last_service_on": day.isoformat()}, page="/clients")
    assert saved.status_code == 302
    assert f'value="{day.isoformat()}"' in browser.get("/clients").get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(type(mine), mine.id).last_service_on == day
    assert db.session.get(type(theirs), theirs.id).last_service_on is None
