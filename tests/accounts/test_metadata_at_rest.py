"""IP addresses and user agents of sessions, sign-in attempts and policy acceptances are sealed
at rest (issue 17): a raw read of the rows, or of the SQLite files, finds none of them; the
Account page and the policy version's admin page open them, in one statement per list."""

from pathlib import Path

import pytest
from sqlalchemy import text

from portal.accounts import service, sessions
from portal.accounts.models import SignInAttempt, UserSession
from portal.crypto import DecryptionError, context_for, open_text
from portal.crypto.blind_index import keyed_digest
from portal.extensions import db
from portal.policies import service as policies
from portal.policies.models import PolicyAcceptance
from tests.messaging.conftest import StatementCounter
from tests.policies.conftest import publish
from tests.support.auth import signed_in

from .support import PASSWORD, make_user, post_form

IP = "198.51.100.231"
OTHER_IP = "203.0.113.177"
AGENT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:131.0) Gecko/20100101 "
         "Firefox/131.0 MetadataMarker")
TABLES = ("user_sessions", "signin_attempts", "policy_acceptances")


def _browser(app, ip: str = IP, agent: str = AGENT):
    browser = app.test_client()
    browser.environ_base.update(REMOTE_ADDR=ip, HTTP_USER_AGENT=agent)
    return browser


def _sign_in(browser, person, password: str = PASSWORD):
    return post_form(browser, "/sign-in", {"email": person.email, "password": password})


def _raw_values(table: str) -> list:
    """Every value of every row, as the database driver returns it (no keys involved)."""
    with db.engine.connect() as conn:
        return [value for row in conn.execute(text(f"SELECT * FROM {table}"))  # noqa: S608
                for value in row]


def _as_bytes(value) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def _assert_nowhere(values, *needles: str) -> None:
    for value in values:
        blob = _as_bytes(value)
        for needle in needles:
            assert needle.encode() not in blob, needle
            assert needle.encode("utf-16-le") not in blob, needle


def test_sessions_attempts_and_acceptances_hold_no_address_or_agent(app):
    person = make_user()
    version = publish("terms")
    assert _sign_in(_browser(app, OTHER_IP), person, "not the password").status_code == 422
    assert _sign_in(_browser(app), person).status_code == 302
    policies.accept(person.user, [version.id], ip=IP)
    db.session.commit()
    for table in TABLES:
        values = _raw_values(table)
        assert values, table
        _assert_nowhere(values, IP, OTHER_IP, "MetadataMarker", "Firefox", "Mozilla")
    # The SQLite file and its WAL, as copied off the disk.
    if db.engine.dialect.name == "sqlite":
        db.session.remove()
        path = Path(db.engine.url.database)
        copied = b"".join(file.read_bytes() for file in (path, path.with_name(path.name + "-wal"))
                          if file.exists())
        assert b"policy_acceptances" in copied and b"success" in copied  # the rows are there
        for needle in (IP, OTHER_IP, "MetadataMarker"):
            assert needle.encode() not in copied, needle


def test_the_sealed_values_open_to_what_was_recorded(app):
    person = make_user()
    assert _sign_in(_browser(app), person).status_code == 302
    (row,) = db.session.scalars(db.select(UserSession).where(UserSession.user_id == person.id))
    assert open_text(person.id, context_for(UserSession.ip_sealed, row.id), row.ip_sealed) == IP
    assert open_text(person.id, context_for(UserSession.user_agent_sealed, row.id),
                     row.user_agent_sealed) == AGENT
    (attempt,) = db.session.scalars(db.select(SignInAttempt)
                                    .where(SignInAttempt.user_id == person.id))
    assert open_text(person.id, context_for(SignInAttempt.ip_sealed, attempt.id),
                     attempt.ip_sealed) == IP
    assert attempt.source_digest == keyed_digest("signin-source", person.id.bytes + IP.encode())
    # Bound to its row: the same blob under another row's id does not open.
    with pytest.raises(DecryptionError):
        open_text(person.id, context_for(UserSession.ip_sealed, attempt.id), row.ip_sealed)


def test_the_account_page_shows_sessions_and_attempts_opened(app):
    person = make_user()
    assert _sign_in(_browser(app, OTHER_IP), person, "not the password").status_code == 422
    browser = _browser(app)
    assert _sign_in(browser, person).status_code == 302
    html = browser.get("/account").get_data(as_text=True)
    assert IP in html and OTHER_IP in html
    assert "Firefox on Windows" in html
    assert "Wrong password" in html and "Signed in" in html


def test_a_request_without_an_address_or_agent_stores_nothing(app):
    person = make_user()
    with app.test_request_context("/sign-in", method="POST", environ_base={"REMOTE_ADDR": None},
                                  headers={"User-Agent": ""}):
        service.authenticate(person.email, "not the password")
    (attempt,) = db.session.scalars(db.select(SignInAttempt)
                                    .where(SignInAttempt.user_id == person.id))
    assert attempt.ip_sealed is None and attempt.user_agent_sealed is None
    assert attempt.source_digest is None
    (shown,) = service.recent_attempts(person.user)
    assert shown.ip is None and shown.user_agent is None and shown.outcome == "failure"


def _account_page_statements(app, sessions_count: int) -> int:
    person = make_user()
    for number in range(sessions_count):
        browser = _browser(app, f"192.0.2.{number + 1}")
        assert _sign_in(browser, person, "not the password").status_code == 422
        assert _sign_in(browser, person).status_code == 302
    browser = signed_in(app, person.user)
    assert browser.get("/account").status_code == 200  # warm
    with StatementCounter(db.engine) as counter:
        response = browser.get("/account")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert all(f"192.0.2.{number + 1}" in html for number in range(sessions_count))
    return counter.count


def test_the_account_page_opens_its_lists_in_a_flat_number_of_statements(app):
    assert _account_page_statements(app, 2) == _account_page_statements(app, 8)


def _version_page_statements(app, admin_browser, people: int) -> int:
    version = publish("privacy")
    for number in range(people):
        policies.accept(make_user().user, [version.id], ip=f"203.0.113.{number + 1}")
    path = f"/admin/policies/privacy/v/{version.number}"
    assert admin_browser.get(path).status_code == 200  # warm
    with StatementCounter(db.engine) as counter:
        response = admin_browser.get(path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert all(f"203.0.113.{number + 1}<" in html for number in range(people))
    return counter.count


def test_the_acceptance_list_opens_every_address_in_a_flat_number_of_statements(app):
    admin = signed_in(app, make_user("admin").user)
    assert _version_page_statements(app, admin, 2) == _version_page_statements(app, admin, 9)


def test_an_acceptance_ip_is_sealed_under_the_client_and_bound_to_its_row(app):
    person = make_user()
    version = publish("terms")
    policies.accept(person.user, [version.id], ip=IP)
    row = db.session.scalar(db.select(PolicyAcceptance)
                            .where(PolicyAcceptance.user_id == person.id))
    assert IP.encode() not in row.ip_sealed
    assert open_text(person.id, context_for(PolicyAcceptance.ip_sealed, row.id),
                     row.ip_sealed) == IP
    page = policies.acceptances_for_version(version)
    assert [(acc.id, ip) for acc, _, ip in page.rows] == [(row.id, IP)]


def test_the_session_list_is_one_statement_for_any_number_of_sessions(app):
    person = make_user()
    for number in range(6):
        assert _sign_in(_browser(app, f"192.0.2.{number + 10}"), person).status_code == 302
    db.session.commit()
    with StatementCounter(db.engine) as counter:
        shown = sessions.list_for(person.id)
    assert len(shown) == 6 and counter.count <= 2  # the SELECT (and a data-key read at most)
    assert {s.ip for s in shown} == {f"192.0.2.{number + 10}" for number in range(6)}
