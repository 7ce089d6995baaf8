"""What is due: estimates due today and overdue, renewals, on a business-day calendar."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from flask import render_template_string

from portal import hooks
from portal.estimates import (
    billing,
    clients,
    content,
    drafting,
    follow_ups,
    issuing,
    staff_lists,
)
from portal.estimates import (
    panel as estimates_panel,
)
from portal.estimates.drafts import Draft
from portal.practice import today as practice_today
from tests.estimates.conftest import complete_draft, sign_in


def at(day: date, hour: int = 15):
    """Travel to an afternoon in the practice's time zone (UTC 15:00 is 10:00 or 11:00 there)."""
    return time_machine.travel(datetime(day.year, day.month, day.day, hour, tzinfo=UTC),
                               tick=False)


WEDNESDAY = date(2026, 7, 1)  # Friday 3 July is the observed Independence Day holiday


@pytest.fixture
def due_drafts(practice):
    """Two drafts started on Wednesday 1 July 2026: one scheduled, one requested."""
    with at(WEDNESDAY):
        scheduled = drafting.create_draft(practice.therapist, practice.client)
        drafting.save_draft(practice.therapist, scheduled, Draft(client_legal_name="A"),
                           scheduled_on=WEDNESDAY, service_date=date(2026, 7, 8))
        requested, _ = clients.request_estimate(practice.other_client)
    return scheduled, requested


def panel(user):
    return estimates_panel.dashboard_panel(user)["estimates_panel"]


def test_due_dates_follow_the_business_day_rules(due_drafts):
    scheduled, requested = due_drafts
    assert scheduled.due_date == date(2026, 7, 2)  # 4 business days ahead: 1 business day
    assert requested.due_date == date(2026, 7, 7)  # 3 business days, skipping 3 July


def test_the_panel_lists_due_today_then_overdue(practice, due_drafts):
    scheduled, requested = due_drafts
    with at(date(2026, 7, 1)):
        assert panel(practice.therapist)["due_today"] == []
        assert panel(practice.therapist)["overdue"] == []
    with at(date(2026, 7, 2)):
        assert [e.id for e in panel(practice.therapist)["due_today"]] == [scheduled.id]
    with at(date(2026, 7, 6)):
        view = panel(practice.therapist)
        assert [e.id for e in view["overdue"]] == [scheduled.id] and view["due_today"] == []
    with at(date(2026, 7, 7)):
        assert [e.id for e in panel(practice.other_therapist)["due_today"]] == [requested.id]
    with at(date(2026, 7, 8)):
        admin_view = panel(practice.admin)
        assert {e.id for e in admin_view["overdue"]} == {scheduled.id, requested.id}


def test_each_therapist_sees_only_their_clients(practice, due_drafts):
    scheduled, requested = due_drafts
    with at(date(2026, 7, 8)):
        assert [e.id for e in panel(practice.therapist)["overdue"]] == [scheduled.id]
        assert [e.id for e in panel(practice.other_therapist)["overdue"]] == [requested.id]
        assert estimates_panel.dashboard_panel(practice.client) == {"estimates_panel": None}


def test_an_issued_estimate_is_no_longer_due(practice, due_drafts):
    scheduled, _ = due_drafts
    with at(date(2026, 7, 6)):
        drafting.save_draft(practice.therapist, scheduled, complete_draft(date(2026, 7, 6)),
                           scheduled_on=WEDNESDAY, service_date=date(2026, 7, 8))
        issuing.issue(practice.therapist, scheduled.id)
        assert panel(practice.therapist)["overdue"] == []


def test_the_practice_page_shows_the_panel(app, practice, due_drafts):
    with at(date(2026, 7, 8)):
        page = sign_in(app.test_client(), practice.therapist).get("/estimates/practice")
        body = page.get_data(as_text=True)
    assert "Overdue" in body and "was due Jul 2, 2026" in body
    assert "Sam Okafor" not in body  # the other therapist's client


def test_the_panel_is_offered_to_the_dashboard(app, practice, due_drafts):
    panel = next(p for p in hooks.dashboard_panels
                 if p.template == "estimates/_dashboard_panel.html")
    assert panel.stylesheet == "css/estimates.css"
    with at(date(2026, 7, 8)), app.test_request_context("/"):
        html = render_template_string('{% include template %}', template=panel.template,
                                      **panel.context(practice.therapist))
    assert "Good Faith Estimates to look at" in html
    assert "Zoë Nguyễn-Ōtsuka" in html and "was due Jul 2, 2026" in html
    assert f"/estimates/{due_drafts[0].id}/edit" in html


def test_recurring_estimates_are_due_for_renewal_30_days_before_they_end(practice):
    start = date(2026, 1, 5)
    with at(start):
        recurring = practice.issued(period_start=start, period_end=date(2026, 12, 31))
        single = practice.issued(client=practice.other_client,
                                 therapist=practice.other_therapist, period_start=start,
                                 period_end=date(2026, 12, 31), sessions_min=1,
                                 sessions_max=1)
    with at(date(2026, 11, 30)):
        assert panel(practice.admin)["renewals"] == []
    with at(date(2026, 12, 1)):
        assert [e.id for e in panel(practice.admin)["renewals"]] == [recurring.id]
        assert single.recurring is False
    with at(date(2026, 12, 10)):
        renewal = follow_ups.start_renewal(practice.therapist, recurring)
        assert [e.id for e in panel(practice.therapist)["renewals"]] == [recurring.id]
        drafting.save_draft(practice.therapist, renewal, content.open_draft(renewal))
        issuing.issue(practice.therapist, renewal.id)
        assert panel(practice.therapist)["renewals"] == []


def test_an_ended_estimate_leaves_the_renewal_list_after_a_while(practice):
    with at(date(2026, 1, 5)):
        recurring = practice.issued(period_start=date(2026, 1, 12),
                                    period_end=date(2026, 6, 30))
    with at(date(2026, 7, 20)):
        assert [e.id for e in panel(practice.therapist)["renewals"]] == [recurring.id]
    with at(date(2026, 6, 30) + timedelta(days=31)):
        assert panel(practice.therapist)["renewals"] == []


def test_billing_flags_show_in_the_panel(practice):
    estimate = practice.issued(period_start=practice_today())  # a bill today is for its care
    billing.record_bill(practice.therapist, estimate, provider_position=0,
                        amount_cents=4600_00, bill_date=practice_today())
    assert [e.id for e in panel(practice.therapist)["flagged"]] == [estimate.id]
    assert panel(practice.other_therapist)["flagged"] == []


def test_the_demo_has_an_issued_estimate_and_a_draft_for_zoe(app):
    from portal.estimates import demo
    from tests.estimates.conftest import make_user

    people = {"zoe@example.org": make_user("client", "Zoë Nguyễn-Ōtsuka",
                                           email="zoe@example.org"),
              "colleen@coeo.example": make_user("therapist", "Colleen Demo",
                                                email="colleen@coeo.example")}
    from tests.estimates.conftest import assign
    assign(people["zoe@example.org"], people["colleen@coeo.example"])
    assert demo.seed in list(hooks.demo_seeders)
    demo.seed(people)
    mine = staff_lists.staff_estimates(people["colleen@coeo.example"])[0]
    assert sorted(e.status for e in mine) == ["draft", "issued"]
    issued = next(e for e in mine if e.status == "issued")
    assert content.open_document(issued).client_legal_name == "Zoë Nguyễn-Ōtsuka"
