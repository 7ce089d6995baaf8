"""The acceptance gate, accepting, declining, re-acceptance and the account page."""

import threading
import uuid
from datetime import UTC, date, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal.accounts.models import User
from portal.audit.models import AuditEvent
from portal.crypto import context_for, open_text
from portal.db import new_id
from portal.errors import RuleError
from portal.extensions import db
from portal.pages import BEFORE_CONSENT, PUBLIC, endpoints_marked
from portal.policies import service
from portal.policies.models import PolicyAcceptance
from tests.policies.conftest import csrf_from, make_user, publish, sign_in

ACCEPT = "/policies/accept"


def _count(model=PolicyAcceptance) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _redirects_to_accept(response) -> bool:
    return response.status_code == 302 and urlsplit(response.location).path == ACCEPT


def _accept_page(client):
    response = client.get(ACCEPT)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _versions_field(html: str) -> str:
    import re

    return re.search(r'name="versions"[^>]*value="([^"]*)"', html).group(1)


def _post_decision(client, decision: str, **extra):
    html = _accept_page(client)
    data = {"csrf_token": csrf_from(html), "versions": _versions_field(html),
            "decision": decision, "next": ""}
    data.update(extra)
    return client.post(ACCEPT, data=data)


def _example_args(rule) -> dict:
    values = {}
    for name, converter in rule._converters.items():
        kind = type(converter).__name__
        values[name] = {"UUIDConverter": uuid.uuid4(), "IntegerConverter": 1,
                        "FloatConverter": 1.0}.get(kind, "x")
    return values


# --- the gate ---------------------------------------------------------------------------

def test_a_new_client_is_sent_to_the_acceptance_page_at_first_sign_in(client, defaults,
                                                                      client_user):
    response = sign_in(client, client_user)
    response = client.get(response.location)  # the home page sends clients on
    while response.status_code == 302 and not _redirects_to_accept(response):
        response = client.get(response.location)
    assert _redirects_to_accept(response)
    html = _accept_page(client)
    assert "Before you start" in html
    assert "Terms of Service" in html
    assert "Privacy Policy" in html
    # Informational policies are not part of it.
    assert "Good Faith Estimate Notice" not in html.split("<main", 1)[1].split("</main>")[0]


@pytest.mark.parametrize("path", ["/account", "/clients", "/account/password",
                                  "/account/two-factor/setup", "/admin/users",
                                  "/admin/policies"])
def test_the_gate_blocks_protected_pages_until_accepted(client, defaults, client_user, path):
    sign_in(client, client_user)
    response = client.get(path)
    assert _redirects_to_accept(response)
    assert parse_qs(urlsplit(response.location).query)["next"] == [path]


def test_the_gate_blocks_every_protected_route_in_the_app(app, client, defaults, client_user):
    """Walk the URL map, so messaging, estimates and attachments are covered as they land."""
    sign_in(client, client_user)
    token = csrf_from(_accept_page(client))
    checked = []
    let_through = endpoints_marked(app, PUBLIC) | endpoints_marked(app, BEFORE_CONSENT)
    for rule in app.url_map.iter_rules():
        endpoint = rule.endpoint
        if endpoint in let_through:
            continue
        url = rule.build(_example_args(rule), append_unknown=False)[1]
        if "GET" in rule.methods:
            response = client.get(url)
        else:
            response = client.post(url, data={"csrf_token": token})
        assert _redirects_to_accept(response), (endpoint, url, response.status_code)
        checked.append(endpoint)
    assert "accounts.settings" in checked
    assert "accounts.sign_out_everywhere" in checked
    for feature in ("messaging.", "estimates."):
        if any(e.startswith(feature) for e in app.view_functions):
            assert any(e.startswith(feature) for e in checked), feature


def test_the_gate_blocks_the_inbox_estimates_and_attachments_when_they_exist(
        app, client, defaults, client_user):
    sign_in(client, client_user)
    targets = [rule for rule in app.url_map.iter_rules()
               if rule.endpoint == "messaging.inbox" or "estimate" in rule.endpoint
               or "attachment" in rule.endpoint]
    for rule in targets:
        if rule.endpoint in endpoints_marked(app, PUBLIC) or "GET" not in rule.methods:
            continue
        url = rule.build(_example_args(rule), append_unknown=False)[1]
        assert _redirects_to_accept(client.get(url)), url
    if "messaging.inbox" in app.view_functions:
        assert _redirects_to_accept(client.get("/messages"))


@pytest.mark.parametrize("path", ["/policies", "/policies/terms", "/policies/privacy/v/1",
                                  "/sitemap.xml", "/robots.txt", ACCEPT])
def test_policy_pages_and_the_acceptance_form_stay_reachable(client, defaults, client_user,
                                                             path):
    sign_in(client, client_user)
    assert client.get(path).status_code == 200


def test_static_files_and_keepalive_stay_reachable(client, defaults, client_user):
    sign_in(client, client_user)
    with client.get("/static/css/portal.css") as response:
        assert response.status_code == 200
    token = csrf_from(_accept_page(client))
    assert client.post("/keepalive", data={"csrf_token": token}).status_code == 204


def test_sign_out_stays_reachable(client, defaults, client_user):
    sign_in(client, client_user)
    token = csrf_from(_accept_page(client))
    response = client.post("/sign-out", data={"csrf_token": token})
    assert response.status_code == 302
    assert urlsplit(response.location).path == "/signed-out"
    assert client.get("/signed-out").status_code == 200
    assert urlsplit(client.get("/account").location).path == "/sign-in"


@pytest.mark.parametrize("role", ["therapist", "admin"])
def test_staff_are_not_gated(client, defaults, role):
    person = make_user(role)
    sign_in(client, person)
    assert client.get("/account").status_code == 200


def test_nothing_is_gated_before_any_policy_is_published(client, client_user):
    sign_in(client, client_user)
    assert client.get("/account").status_code == 200


# --- accepting ----------------------------------------------------------------------------

def test_accepting_records_one_row_per_version_and_an_audit_event(client, defaults,
                                                                  client_user):
    sign_in(client, client_user)
    response = _post_decision(client, "accept", next="/account")
    assert response.status_code == 302
    assert response.location == "/account"
    rows = list(db.session.scalars(select(PolicyAcceptance).order_by(PolicyAcceptance.slug)))
    assert [(r.slug, r.number) for r in rows] == [("privacy", 1), ("terms", 1)]
    for row in rows:
        assert row.user_id == client_user.id
        assert row.text_hash == defaults[row.slug].text_hash
        assert open_text(row.user_id, context_for(PolicyAcceptance.ip_sealed, row.id),
                         row.ip_sealed) == "127.0.0.1"
        assert b"127.0.0.1" not in row.ip_sealed
        assert row.accepted_at is not None
    events = list(db.session.scalars(select(AuditEvent)
                                     .where(AuditEvent.action == "policy.accepted")))
    assert sorted(e.target_id for e in events) == sorted(
        str(defaults[s].id) for s in ("terms", "privacy"))
    assert all(e.target_type == "policy_version" and e.actor_id == client_user.id
               for e in events)
    page = client.get("/account")
    assert page.status_code == 200
    # Terms are agreed to; the privacy notice is received (45 CFR 164.520(c)(2)(ii)).
    assert (b"Thank you. You agreed to the Terms of Service and confirmed that you received "
            b"the Privacy Policy.") in page.data


def test_accepting_twice_creates_no_duplicates(client, defaults, client_user):
    sign_in(client, client_user)
    html = _accept_page(client)
    data = {"csrf_token": csrf_from(html), "versions": _versions_field(html),
            "decision": "accept"}
    first = client.post(ACCEPT, data=data)
    second = client.post(ACCEPT, data=data)
    assert first.status_code == second.status_code == 302
    assert _count() == 2
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "policy.accepted")) == 2


def test_the_service_ignores_a_repeated_acceptance(app, defaults, client_user):
    ids = [defaults["terms"].id, defaults["privacy"].id]
    assert len(service.accept(client_user, ids, ip="10.0.0.1")) == 2
    assert service.accept(client_user, ids, ip="10.0.0.2") == []
    assert _count() == 2


def test_the_database_refuses_a_duplicate_acceptance(app, defaults, client_user):
    """The unique constraint is what holds under a race between two requests."""
    version = defaults["terms"]
    service.accept(client_user, [version.id])
    db.session.add(PolicyAcceptance(id=new_id(), user_id=client_user.id, version_id=version.id,
                                    slug="terms", number=1, text_hash=version.text_hash))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_two_simultaneous_acceptances_leave_one_row(app, defaults, client_user):
    """Two requests racing (a double click on two connections) both succeed; one row stays."""
    version_id, user_id = defaults["terms"].id, client_user.id
    db.session.commit()
    barrier = threading.Barrier(2)
    results: list = []
    errors: list = []

    def worker() -> None:
        with app.app_context():
            try:
                user = db.session.get(User, user_id)
                db.session.commit()
                barrier.wait(timeout=10)
                results.append(len(service.accept(user, [version_id], ip="10.0.0.9")))
            except Exception as error:  # reported below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(results) == [0, 1]
    assert _count() == 1
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "policy.accepted")) == 1


def test_an_upcoming_version_cannot_be_accepted_early(app, client_user):
    with time_machine.travel(datetime(2026, 11, 1, 15, tzinfo=UTC), tick=False):
        publish("terms", effective=date(2026, 11, 1))
        upcoming = publish("terms", effective=date(2027, 1, 1))
        with pytest.raises(RuleError):
            service.accept(client_user, [upcoming.id])
        with pytest.raises(RuleError):
            service.accept(client_user, [uuid.uuid4()])


def test_accepting_returns_to_the_page_the_client_asked_for(client, defaults, client_user):
    sign_in(client, client_user)
    gate = client.get("/account/password")
    html = client.get(gate.location).get_data(as_text=True)
    assert 'name="next" type="hidden" value="/account/password"' in html
    response = client.post(ACCEPT, data={"csrf_token": csrf_from(html), "decision": "accept",
                                         "versions": _versions_field(html),
                                         "next": "/account/password"})
    assert response.location == "/account/password"


@pytest.mark.parametrize("evil", ["https://evil.example/", "//evil.example/x",
                                  "/\\evil.example"])
def test_accepting_never_follows_an_offsite_next(client, defaults, client_user, evil):
    sign_in(client, client_user)
    response = _post_decision(client, "accept", next=evil)
    assert response.location == "/"


def test_a_stale_acceptance_form_is_shown_again_instead_of_accepted(client, defaults,
                                                                   client_user):
    sign_in(client, client_user)
    html = _accept_page(client)
    response = client.post(ACCEPT, data={"csrf_token": csrf_from(html), "decision": "accept",
                                         "versions": str(defaults["terms"].id)})
    assert response.status_code == 200
    assert b"Something changed while you were reading" in response.data
    assert _count() == 0


@pytest.mark.parametrize("data", [
    {"decision": "maybe"},
    {"decision": ""},
    {"versions": ""},
    {"versions": "not-a-uuid"},
    {"versions": ",".join(str(uuid.uuid4()) for _ in range(30))},
])
def test_bad_acceptance_input_is_shown_again_never_a_500(client, defaults, client_user, data):
    sign_in(client, client_user)
    html = _accept_page(client)
    form = {"csrf_token": csrf_from(html), "decision": "accept",
            "versions": _versions_field(html)}
    form.update(data)
    response = client.post(ACCEPT, data=form)
    assert response.status_code == 422
    assert _count() == 0


def test_a_post_without_csrf_token_is_refused(client, defaults, client_user):
    sign_in(client, client_user)
    html = _accept_page(client)
    response = client.post(ACCEPT, data={"decision": "accept",
                                         "versions": _versions_field(html)})
    assert response.status_code == 400
    assert _count() == 0


def test_the_acceptance_page_sends_clients_on_when_nothing_is_pending(client, defaults,
                                                                     client_user):
    service.accept(client_user, [defaults["terms"].id, defaults["privacy"].id])
    sign_in(client, client_user)
    response = client.get(ACCEPT + "?next=/account")
    assert response.status_code == 302
    assert response.location == "/account"


# --- declining ----------------------------------------------------------------------------

def test_declining_signs_out_and_shows_the_practice_contact_details(client, defaults,
                                                                   client_user):
    sign_in(client, client_user)
    response = _post_decision(client, "decline")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "You are signed out" in html
    assert "(215) 360-3308" in html
    assert "team@coeocommunity.com" in html
    assert "555 2nd Ave, Suite C 650" in html
    assert "Clear-Site-Data" in response.headers
    assert 'name="csrf-token"' not in html  # rendered signed out
    assert _count() == 0
    assert urlsplit(client.get("/account").location).path == "/sign-in"
    actions = list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))
    assert actions.count("policy.declined") == 2
    assert actions[-1] == "auth.signout"


# --- re-acceptance ------------------------------------------------------------------------

def _accepted_everything(user, on: datetime):
    with time_machine.travel(on, tick=False):
        service.ensure_defaults()
        service.accept(user, [v.id for v in service.pending_for(user)])


def test_a_version_not_marked_for_acceptance_does_not_ask_again(client, client_user):
    _accepted_everything(client_user, datetime(2026, 11, 1, 15, tzinfo=UTC))
    with time_machine.travel(datetime(2026, 11, 2, 15, tzinfo=UTC), tick=False):
        publish("terms", effective=date(2026, 11, 2), requires_acceptance=False)
        publish("good-faith-estimate", effective=date(2026, 11, 2))
        assert service.pending_for(client_user) == []
        sign_in(client, client_user)
        assert client.get("/account").status_code == 200


def test_a_version_marked_for_acceptance_asks_only_once_it_takes_effect(app, client_user):
    _accepted_everything(client_user, datetime(2026, 11, 1, 15, tzinfo=UTC))
    with time_machine.travel(datetime(2026, 11, 2, 15, tzinfo=UTC), tick=False):
        new = publish("terms", effective=date(2027, 1, 1), requires_acceptance=True,
                      summary="Replies now come within 2 business days.")
        assert service.pending_for(client_user) == []
    # Still December 31 in New York.
    with time_machine.travel(datetime(2027, 1, 1, 4, 30, tzinfo=UTC), tick=False):
        assert service.pending_for(client_user) == []
    with time_machine.travel(datetime(2027, 1, 1, 5, 30, tzinfo=UTC), tick=False):
        assert [v.id for v in service.pending_for(client_user)] == [new.id]
        service.accept(client_user, [new.id])
        assert service.pending_for(client_user) == []


def test_the_gate_shows_what_changed_after_a_marked_version_takes_effect(client, client_user):
    _accepted_everything(client_user, datetime(2026, 11, 1, 15, tzinfo=UTC))
    with time_machine.travel(datetime(2026, 11, 2, 15, tzinfo=UTC), tick=False):
        publish("privacy", effective=date(2026, 12, 1), requires_acceptance=True,
                summary="We now describe the emergency-access log.")
    with time_machine.travel(datetime(2026, 12, 1, 15, tzinfo=UTC), tick=False):
        sign_in(client, client_user)
        assert _redirects_to_accept(client.get("/account"))
        html = _accept_page(client)
        assert "We have updated a policy" in html
        assert "We now describe the emergency-access log." in html
        assert "What changed since the version you received" in html
        assert 'href="/policies/privacy/v/3"' in html
        assert "Terms of Service" not in html.split("<main", 1)[1].split("</main>")[0]
        _post_decision(client, "accept")
        assert client.get("/account").status_code == 200


def test_a_later_unmarked_version_is_what_a_new_client_accepts(app, client_user):
    with time_machine.travel(datetime(2026, 11, 1, 15, tzinfo=UTC), tick=False):
        service.ensure_defaults()
        two = publish("terms", effective=date(2026, 11, 1))
        pending = service.pending_for(client_user)
    assert {v.slug: v.number for v in pending} == {"terms": 2, "privacy": 2}
    assert two.id in {v.id for v in pending}


def test_an_informational_policy_asks_for_acceptance_once_marked(app, client_user):
    _accepted_everything(client_user, datetime(2026, 11, 1, 15, tzinfo=UTC))
    with time_machine.travel(datetime(2026, 11, 2, 15, tzinfo=UTC), tick=False):
        gfe = publish("good-faith-estimate", effective=date(2026, 11, 2),
                      requires_acceptance=True)
        assert [v.id for v in service.pending_for(client_user)] == [gfe.id]
        # Someone who has accepted a later version is not asked about an earlier one.
        later = publish("good-faith-estimate", effective=date(2026, 11, 2))
        service.accept(client_user, [later.id])
        assert service.pending_for(client_user) == []


# --- the account page ---------------------------------------------------------------------

def test_the_account_page_lists_what_the_client_accepted_and_when(client, client_user):
    with time_machine.travel(datetime(2026, 11, 1, 15, 30, tzinfo=UTC), tick=False):
        service.ensure_defaults()
        service.accept(client_user, [v.id for v in service.pending_for(client_user)])
    sign_in(client, client_user)
    html = client.get("/account").get_data(as_text=True)
    assert "What you agreed to or received" in html
    assert 'href="/policies/terms/v/1">Terms of Service</a>' in html
    assert 'href="/policies/privacy/v/2">Privacy Policy</a>' in html
    assert "You agreed to it" in html and "You received it" in html
    assert "Sun Nov 1, 2026, 10:30 am" in html  # shown in New York time


def test_the_account_page_of_staff_leaves_the_section_out(client, defaults):
    therapist = make_user("therapist")
    sign_in(client, therapist)
    html = client.get("/account").get_data(as_text=True)
    assert "What you agreed to or received" not in html
