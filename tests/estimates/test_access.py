"""Who may reach which estimate: a client only their own issued ones, a therapist only their
clients', an admin all; everything else is the same 404, on every route that takes an id."""

import uuid

import pytest
from sqlalchemy import select

from portal.estimates.models import BilledAmount
from portal.extensions import db
from tests.estimates.conftest import csrf, sign_in

# (method, path template): every estimates route that takes an id.
ID_ROUTES = [
    ("GET", "/estimates/{id}"),
    ("GET", "/estimates/{id}/pdf"),
    ("POST", "/estimates/{id}/acknowledge"),
    ("GET", "/estimates/{id}/edit"),
    ("POST", "/estimates/{id}/edit"),
    ("GET", "/estimates/{id}/review"),
    ("POST", "/estimates/{id}/issue"),
    ("POST", "/estimates/{id}/discard"),
    ("POST", "/estimates/{id}/correct"),
    ("POST", "/estimates/{id}/renew"),
    ("POST", "/estimates/{id}/bills"),
    ("POST", "/estimates/{id}/bills/{bill}/void"),
    ("GET", "/estimates/{id}/correct-date"),
    ("POST", "/estimates/{id}/correct-date"),
    ("GET", "/estimates/{id}/next-service"),
    ("POST", "/estimates/{id}/next-service"),
]


def test_every_id_route_is_in_the_table(app):
    """A new route that takes an id must be added to ID_ROUTES (and so to these checks)."""
    table = {(m, p.replace("{id}", "<uuid:estimate_id>").replace("{bill}", "<uuid:bill_id>"))
             for m, p in ID_ROUTES}
    found = {(m, rule.rule) for rule in app.url_map.iter_rules()
             if rule.endpoint.startswith("estimates.") and "estimate_id" in rule.arguments
             for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert found == table


@pytest.fixture
def world(app, practice, fast_pdf):
    """Issued and draft estimates for both clients, one bill each."""
    from portal.estimates import billing
    from portal.practice import today as practice_today

    # Periods that have begun, so a bill dated today is for what they cover.
    mine = practice.issued(period_start=practice_today())
    theirs = practice.issued(client=practice.other_client, therapist=practice.other_therapist,
                             period_start=practice_today())
    my_draft = practice.draft()
    their_draft = practice.draft(client=practice.other_client,
                                 therapist=practice.other_therapist)
    for estimate, therapist in ((mine, practice.therapist), (theirs, practice.other_therapist)):
        billing.record_bill(therapist, estimate, provider_position=0, amount_cents=100,
                            bill_date=practice_today())
    bills = {b.estimate_id: b.id for b in db.session.scalars(select(BilledAmount))}
    return {"mine": mine, "theirs": theirs, "my_draft": my_draft, "their_draft": their_draft,
            "bills": bills}


def call(app, user, method, template, estimate_id, bill_id=None):
    client = sign_in(app.test_client(), user)
    token = csrf(client)
    path = template.format(id=estimate_id, bill=bill_id or uuid.uuid4())
    return client.open(path, method=method, data={"csrf_token": token})


def targets(world, key):
    estimate = world[key]
    return estimate.id, world["bills"].get(estimate.id)


def answers(app, user, world, keys) -> dict[tuple[str, str, str], int]:
    """Call every id route for each estimate in `keys`; return the status codes."""
    codes = {}
    for key in keys:
        estimate_id, bill_id = targets(world, key) if key != "unknown" else (uuid.uuid4(), None)
        for method, template in ID_ROUTES:
            codes[(key, method, template)] = call(app, user, method, template, estimate_id,
                                                  bill_id).status_code
    return codes


def not_404(codes) -> dict:
    return {route: code for route, code in codes.items() if code != 404}


def test_a_therapist_gets_404_for_another_therapists_clients(app, practice, world):
    assert not_404(answers(app, practice.therapist, world, ["theirs", "their_draft"])) == {}


def test_a_client_gets_404_for_others_and_for_their_own_drafts(app, practice, world):
    assert not_404(answers(app, practice.client, world,
                           ["theirs", "their_draft", "my_draft"])) == {}


@pytest.mark.parametrize("who", ["client", "therapist", "admin"])
def test_unknown_ids_are_404_for_everyone(app, practice, world, who):
    assert not_404(answers(app, getattr(practice, who), world, ["unknown"])) == {}


def test_a_bill_id_must_belong_to_the_estimate(app, practice, world):
    other_bill = world["bills"][world["theirs"].id]
    response = call(app, practice.admin, "POST", "/estimates/{id}/bills/{bill}/void",
                    world["mine"].id, other_bill)
    assert response.status_code == 404
    assert db.session.get(BilledAmount, other_bill).voided_at is None


@pytest.mark.parametrize("path", ["/estimates/not-a-uuid", "/estimates/1/pdf",
                                  "/estimates/%00/edit", "/estimates/' OR 1=1 --/review"])
def test_malformed_ids_are_404(client, practice, path):
    sign_in(client, practice.therapist)
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(("method", "template", "allowed"), [
    ("GET", "/estimates/{id}", 200),
    ("GET", "/estimates/{id}/pdf", 200),
    ("POST", "/estimates/{id}/acknowledge", 302),
])
def test_a_client_reaches_their_own_issued_estimate(app, practice, world, method, template,
                                                    allowed):
    response = call(app, practice.client, method, template, world["mine"].id)
    assert response.status_code == allowed


@pytest.mark.parametrize("who", ["therapist", "admin"])
def test_staff_reach_their_clients_estimates(app, practice, world, who):
    expected = {
        ("mine", "/estimates/{id}"): 200, ("mine", "/estimates/{id}/pdf"): 200,
        ("mine", "/estimates/{id}/edit"): 404, ("mine", "/estimates/{id}/review"): 404,
        ("my_draft", "/estimates/{id}"): 302,  # a draft's page is its review
        ("my_draft", "/estimates/{id}/pdf"): 404,
        ("my_draft", "/estimates/{id}/edit"): 200, ("my_draft", "/estimates/{id}/review"): 200,
    }
    if who == "admin":  # minimum necessary: the PDF and the builder show diagnosis codes, so
        # an admin is first asked why (tests/estimates/test_web_looks.py)
        expected[("mine", "/estimates/{id}/pdf")] = 302
        expected[("my_draft", "/estimates/{id}/edit")] = 302
    got = {(key, template): call(app, getattr(practice, who), "GET", template,
                                 world[key].id).status_code
           for key, template in expected}
    assert got == expected


def test_an_admin_sees_every_clients_estimates(app, practice, world):
    for key in ("mine", "theirs"):
        assert call(app, practice.admin, "GET", "/estimates/{id}", world[key].id
                    ).status_code == 200
    page = sign_in(app.test_client(), practice.admin).get("/estimates/practice")
    body = page.get_data(as_text=True)
    assert world["mine"].number in body and world["theirs"].number in body


def test_the_practice_list_shows_only_the_therapists_clients(app, practice, world):
    page = sign_in(app.test_client(), practice.therapist).get("/estimates/practice")
    body = page.get_data(as_text=True)
    assert world["mine"].number in body and world["theirs"].number not in body
    assert "Sam Okafor" not in body


def test_the_list_filter_refuses_someone_elses_client(app, practice, world):
    client = sign_in(app.test_client(), practice.therapist)
    assert client.get(f"/estimates/practice?client={practice.other_client.id}"
                      ).status_code == 404
    assert client.get("/estimates/practice?client=nonsense").status_code == 200
    assert client.get("/estimates/practice?page=-1").status_code == 200
    assert client.get("/estimates/practice?page=99999999999").status_code == 200


def test_a_client_sees_only_their_own_in_their_list(app, practice, world):
    body = sign_in(app.test_client(), practice.client).get("/estimates/").get_data(as_text=True)
    assert world["mine"].number in body and world["theirs"].number not in body


@pytest.mark.parametrize("path", ["/estimates/", "/estimates/practice", "/estimates/new"])
def test_signed_out_people_are_sent_to_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_signed_out_people_learn_nothing_about_an_id(client, world):
    response = client.get(f"/estimates/{world['mine'].id}/pdf")
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]
    assert b"%PDF" not in response.get_data()


def test_a_deactivated_clients_estimates_are_not_offered_for_new_drafts(app, practice):
    practice.client.active = False
    db.session.commit()
    client = sign_in(app.test_client(), practice.therapist)
    assert str(practice.client.id) not in client.get("/estimates/new").get_data(as_text=True)
