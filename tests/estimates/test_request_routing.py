"""Who is told when a client asks for an estimate (45 CFR 149.610(b)(1)(ii): due within 3
business days of the request), and what the client reads: their therapist; with none, the
covering clinicians; with none of those, the administrators; the truth when nobody exists."""

import pytest
from sqlalchemy import select

from portal.accounts.models import User
from portal.crypto import Context, open_text
from portal.estimates import clients
from portal.estimates import panel as estimates_panel
from portal.extensions import db
from portal.mail.models import OutboxMessage
from tests.estimates.conftest import csrf, make_user, sign_in
from tests.support.outbox import outbox


def told(template: str = "estimate_requested") -> dict:
    """The people emailed with this template, by id, with the text of each email."""
    found = {}
    for row in outbox(template):
        found[row.user_id] = open_text(row.user_id, Context("mail_outbox", "body_text_sealed",
                                                            row.id), row.body_text_sealed)
    return found


def ask(app, client_user: User) -> tuple[str, str]:
    """The client asks; return the page after the request (with the flash), and the page again."""
    web = sign_in(app.test_client(), client_user)
    response = web.post("/estimates/request", data={"csrf_token": csrf(web)})
    assert response.status_code == 302
    first = web.get("/estimates/").get_data(as_text=True)
    return first, web.get("/estimates/").get_data(as_text=True)


@pytest.fixture
def loner(practice) -> User:
    """A client with no therapist assigned."""
    return make_user("client", "Ari Alone")


def test_a_client_with_a_therapist_is_routed_to_them(app, practice):
    first, again = ask(app, practice.client)
    assert set(told()) == {practice.therapist.id}
    assert "We have let Colleen Example know" in first
    assert "Colleen Example will prepare it." in again


def test_no_therapist_goes_to_the_covering_clinicians_who_can_open_it(app, practice, loner):
    covering = make_user("therapist", "Kit Covering")
    covering.covering = True
    db.session.commit()
    first, again = ask(app, loner)
    assert set(told()) == {covering.id}
    assert "we have let Kit Covering, covering for the practice, know" in first
    assert "Kit Covering, covering for the practice, will prepare it." in again
    assert "your therapist" not in first + again and "nobody has been emailed" not in again
    [draft] = clients.open_requests(loner)
    # The covering clinician opens it and sees it on the dashboard; another therapist cannot.
    cover_web = sign_in(app.test_client(), covering)
    assert cover_web.get(f"/estimates/{draft.id}/edit").status_code == 200
    view = estimates_panel.dashboard_panel(covering)["estimates_panel"]
    assert [e.id for e in view["requested"]] == [draft.id]
    other = sign_in(app.test_client(), practice.other_therapist)
    assert other.get(f"/estimates/{draft.id}/edit").status_code == 404


def test_an_inactive_covering_clinician_is_not_told(app, practice, loner):
    gone = make_user("therapist", "Kit Covering", active=False)
    gone.covering = True
    db.session.commit()
    ask(app, loner)
    assert gone.id not in told() and set(told()) == {practice.admin.id}


def test_no_therapist_and_no_covering_goes_to_the_administrators(app, practice, loner):
    first, again = ask(app, loner)
    assert set(told()) == {practice.admin.id}
    assert "we have let Morgan Admin at the practice know" in first
    assert "your request is with Morgan Admin at the practice" in again
    assert "your therapist" not in first + again


def test_the_emails_carry_no_personal_details(app, practice, loner):
    ask(app, loner)
    [(user_id, text)] = told().items()
    row = db.session.scalar(select(OutboxMessage).where(OutboxMessage.user_id == user_id))
    assert "Ari" not in text and "Alone" not in text and "Ari" not in row.subject
    [draft] = clients.open_requests(loner)
    assert f"/estimates/{draft.id}/edit" in text


def test_when_truly_nobody_is_there_the_client_is_told_so(app, practice, loner):
    practice.admin.active = False
    db.session.commit()
    first, again = ask(app, loner)
    assert told() == {}
    assert "nobody has been emailed" in first and "We have let" not in first
    profile = app.config["PRACTICE"]
    assert "nobody has been emailed" in again and profile["phone"] in again
    assert clients.request_routing(loner).kind == "nobody"


def test_an_assigned_but_inactive_therapist_falls_back_too(app, practice):
    practice.therapist.active = False
    db.session.commit()
    routing = clients.request_routing(practice.client)
    assert routing.kind == "admin" and routing.people == [practice.admin]
