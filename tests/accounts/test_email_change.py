"""An administrator corrects someone's email: the new address confirms with a link, the old one
is told with no link, the blind index moves only once confirmed, duplicates are refused, every
step is audited by id, and no address is readable at rest. Also the names correction."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from flask import g
from sqlalchemy import select, update

from portal.accounts.identity import email_of, legal_name_of, name_of, pronouns_of
from portal.accounts.models import EmailChange, OneTimeToken
from portal.audit import AuditEvent
from portal.crypto import Context, open_text
from portal.db import utcnow
from portal.extensions import db
from portal.mail import OutboxMessage

from .support import (
    audit_actions,
    link_in,
    mail_text,
    make_user,
    outbox,
    post_form,
    sign_in,
    unique_email,
)
from .support import fresh as support_fresh

CONFIRM_LINK = re.compile(r"https?://\S+(/email-change/([A-Za-z0-9_-]+))")


@pytest.fixture
def admin(app):
    """An administrator signed in through the pages: (person, test client)."""
    person = make_user("admin", name="Ada Admin")
    browser = app.test_client()
    assert sign_in(browser, person).status_code == 302
    return person, browser


def fresh(user):
    """The user as the database has it now, with this test's cached names and emails gone."""
    g.pop("identity_cache", None)
    g.pop("pronouns_cache", None)
    return support_fresh(user)


def _page(person) -> str:
    return f"/admin/users/{person.id}"


def _ask(browser, person, new_email: str):
    return post_form(browser, f"{_page(person)}/email", {"email": new_email},
                     page=_page(person))


def _body(response) -> str:
    return response.get_data(as_text=True)


def _recipient(row: OutboxMessage) -> str:
    return open_text(row.user_id, Context("mail_outbox", "recipient_sealed", row.id),
                     row.recipient_sealed)


def _html(row: OutboxMessage) -> str:
    return open_text(row.user_id, Context("mail_outbox", "body_html_sealed", row.id),
                     row.body_html_sealed)


def _confirm_path(person) -> tuple[str, str]:
    rows = outbox("email_change_confirm", person.user)
    assert rows, "no confirmation mail"
    found = CONFIRM_LINK.search(mail_text(rows[-1]))
    assert found, "no link in the confirmation mail"
    return found.group(1), found.group(2)


def _confirm(app, path: str):
    """Follow the link in a fresh, signed-out browser and press the button."""
    browser = app.test_client()
    opened = browser.get(path)
    assert opened.status_code == 302 and opened.location == "/email-change"
    page = browser.get("/email-change")
    assert page.status_code == 200 and "Confirm my new email address" in _body(page)
    return browser, post_form(browser, "/email-change")


def _signs_in(app, email: str, password: str) -> bool:
    browser = app.test_client()
    response = post_form(browser, "/sign-in", {"email": email, "password": password})
    return response.status_code == 302 and not response.location.startswith("/sign-in")


def _changes(person) -> list[EmailChange]:
    rows = list(db.session.scalars(select(EmailChange).where(EmailChange.user_id == person.id)
                                   .order_by(EmailChange.created_at)))
    db.session.commit()
    return rows


# ------------------------------------------------------------------------- the whole flow

def test_after_the_change_the_old_address_fails_and_the_new_one_signs_in(app, admin):
    _, browser = admin
    person = make_user("client", name="Jordan Lee")
    old, new = person.email, unique_email("jordan-new")

    asked = _ask(browser, person, new)
    assert asked.status_code == 302 and asked.location == _page(person)
    assert "confirmation link" in _body(browser.get(asked.location))

    # Before the link is followed: nothing moved.
    assert _signs_in(app, old, person.password)
    assert not _signs_in(app, new, person.password)
    assert email_of(fresh(person.user)) == old

    path, _ = _confirm_path(person)
    _, done = _confirm(app, path)
    assert done.status_code == 302 and done.location == "/sign-in"

    assert not _signs_in(app, old, person.password)
    assert _signs_in(app, new, person.password)
    assert email_of(fresh(person.user)) == new
    actions = audit_actions(target_id=str(person.id))
    assert "account.email_change_requested" in actions
    assert "account.email_change_confirmed" in actions


def test_the_new_address_gets_the_link_and_the_old_one_a_notice_with_none(app, admin):
    _, browser = admin
    person = make_user()
    old, new = person.email, unique_email("new")
    _ask(browser, person, new)
    (confirm,) = outbox("email_change_confirm", person.user)
    (notice,) = outbox("email_change_notice", person.user)
    assert _recipient(confirm) == new and _recipient(notice) == old
    assert "/email-change/" in mail_text(confirm) and "48 hours" in mail_text(confirm)
    for body in (mail_text(notice), _html(notice)):
        assert "http" not in body and "href" not in body
        assert app.config["PRACTICE"]["phone"] in body  # who to call if it was not expected
    for row in (confirm, notice):  # the mail names neither address
        for body in (mail_text(row), _html(row)):
            assert old not in body and new not in body


def test_the_page_alone_changes_nothing_and_the_link_leaves_the_address_bar(app, admin):
    _, browser = admin
    person = make_user()
    _ask(browser, person, unique_email("new"))
    path, token = _confirm_path(person)
    visitor = app.test_client()
    opened = visitor.get(path)
    assert opened.status_code == 302 and token not in opened.location
    for _ in range(2):
        page = visitor.get("/email-change")
        assert page.status_code == 200 and token not in _body(page)
    assert email_of(fresh(person.user)) == person.email
    assert _changes(person)[0].confirmed_at is None


def test_the_confirmation_post_needs_its_csrf_token(app, admin):
    _, browser = admin
    person = make_user()
    _ask(browser, person, unique_email("new"))
    path, _ = _confirm_path(person)
    visitor = app.test_client()
    visitor.get(path)
    assert visitor.post("/email-change").status_code == 400
    assert email_of(fresh(person.user)) == person.email


def test_confirming_ends_the_accounts_sessions_and_links_sent_to_the_old_address(app, admin):
    _, browser = admin
    person = make_user()
    theirs = app.test_client()
    assert sign_in(theirs, person).status_code == 302
    assert theirs.get("/account").status_code == 200
    post_form(app.test_client(), "/forgot-password", {"email": person.email})
    (reset,) = outbox("password_reset", person.user)
    reset_path, _ = link_in(mail_text(reset))

    _ask(browser, person, unique_email("new"))
    path, _ = _confirm_path(person)
    _confirm(app, path)

    gone = theirs.get("/account")
    assert gone.status_code == 302 and gone.location.startswith("/sign-in")
    assert app.test_client().get(reset_path).status_code == 410


def test_confirming_while_signed_in_as_them_keeps_that_session_only(app, admin):
    _, browser = admin
    person = make_user()
    here, elsewhere = app.test_client(), app.test_client()
    for device in (here, elsewhere):
        assert sign_in(device, person).status_code == 302
    _ask(browser, person, unique_email("new"))
    path, _ = _confirm_path(person)
    assert here.get(path).status_code == 302
    done = post_form(here, "/email-change")
    assert done.status_code == 302
    home = here.get(done.location, follow_redirects=True)
    assert "Other devices that were signed in to your account were signed out." in _body(home)
    assert here.get("/account").status_code == 200
    assert elsewhere.get("/account").status_code == 302


def test_an_account_not_set_up_yet_is_invited_again_at_the_new_address(app, admin):
    _, browser = admin
    person = make_user(password=None)
    db.session.add(OneTimeToken(token_hash=b"x" * 32, purpose="invitation", user_id=person.id,
                                expires_at=utcnow() + timedelta(hours=72)))
    db.session.commit()
    new = unique_email("new")
    _ask(browser, person, new)
    path, _ = _confirm_path(person)
    visitor, done = _confirm(app, path)
    assert "sent a fresh invitation" in _body(visitor.get(done.location))
    (invitation,) = outbox("invitation", person.user)
    assert _recipient(invitation) == new
    tokens = list(db.session.scalars(select(OneTimeToken).where(
        OneTimeToken.user_id == person.id).order_by(OneTimeToken.created_at)))
    db.session.commit()
    assert tokens[0].revoked_at is not None and tokens[-1].revoked_at is None
    opened = app.test_client().get(link_in(mail_text(invitation))[0])
    assert opened.status_code == 302 and opened.location == "/invitation"


# --------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("variant", [str, str.upper])
def test_an_address_another_account_has_is_refused_with_a_message(app, admin, variant):
    _, browser = admin
    person, other = make_user(), make_user()
    refused = _ask(browser, person, variant(other.email))
    assert refused.status_code == 422
    assert "Another account already uses this email address." in _body(refused)
    assert _changes(person) == [] and outbox("email_change_confirm") == []
    assert "account.email_change_requested" not in audit_actions()


def test_an_address_waiting_for_another_account_is_refused(app, admin):
    _, browser = admin
    first, second = make_user(), make_user()
    new = unique_email("wanted")
    assert _ask(browser, first, new).status_code == 302
    refused = _ask(browser, second, new)
    assert refused.status_code == 422
    assert "waiting to be confirmed for another account" in _body(refused)
    assert _changes(second) == []


@pytest.mark.parametrize(("value", "words"), [
    ("not-an-address", "Enter an email address like name@example.com."),
    ("", "Enter the new email address."),
])
def test_a_malformed_address_is_refused_beside_the_field(app, admin, value, words):
    _, browser = admin
    person = make_user()
    refused = _ask(browser, person, value)
    assert refused.status_code == 422 and words in _body(refused)
    assert 'aria-invalid="true"' in _body(refused)
    assert _changes(person) == []


def test_the_accounts_own_address_is_refused(app, admin):
    _, browser = admin
    person = make_user()
    refused = _ask(browser, person, person.email.upper())
    assert refused.status_code == 422
    assert "already this account&#39;s email address" in _body(refused)


def test_an_address_taken_before_confirmation_is_refused_then(app, admin):
    _, browser = admin
    person = make_user()
    new = unique_email("race")
    _ask(browser, person, new)
    path, _ = _confirm_path(person)
    make_user(email=new)  # another account got the address meanwhile (invited directly)
    visitor = app.test_client()
    visitor.get(path)
    refused = post_form(visitor, "/email-change")
    assert refused.status_code == 422
    assert "now belongs to another account" in _body(refused)
    assert email_of(fresh(person.user)) == person.email
    assert _signs_in(app, person.email, person.password)
    assert _changes(person)[0].cancelled_at is not None
    assert "account.email_change_refused" in audit_actions(target_id=str(person.id))
    again = app.test_client().get(path)
    assert again.status_code == 410 and "no longer works" in _body(again)


# ------------------------------------------------------------------------ dead links

def test_a_used_link_says_so(app, admin):
    _, browser = admin
    person = make_user()
    _ask(browser, person, unique_email("new"))
    path, _ = _confirm_path(person)
    _confirm(app, path)
    again = app.test_client().get(path)
    assert again.status_code == 410 and "already used" in _body(again)


def test_an_expired_link_says_so_and_changes_nothing(app, admin):
    _, browser = admin
    person = make_user()
    _ask(browser, person, unique_email("new"))
    path, _ = _confirm_path(person)
    visitor = app.test_client()
    assert visitor.get(path).status_code == 302  # opened in time, pressed too late
    db.session.execute(update(EmailChange).where(EmailChange.user_id == person.id)
                       .values(expires_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    late = post_form(visitor, "/email-change", page="/sign-in")
    assert late.status_code == 410 and "expired" in _body(late)
    page = app.test_client().get(path)
    assert page.status_code == 410 and "48 hours" in _body(page)
    assert email_of(fresh(person.user)) == person.email
    assert "expired" in _body(browser.get(_page(person)))  # the admin sees it too


def test_an_earlier_link_is_replaced_by_a_newer_request(app, admin):
    _, browser = admin
    person = make_user()
    _ask(browser, person, unique_email("first"))
    first, _ = _confirm_path(person)
    second_address = unique_email("second")
    _ask(browser, person, second_address)
    page = app.test_client().get(first)
    assert page.status_code == 410 and "newer link replaced this one" in _body(page)
    second, _ = _confirm_path(person)
    _confirm(app, second)
    assert email_of(fresh(person.user)) == second_address


@pytest.mark.parametrize("path", ["/email-change/not-a-real-token", "/email-change/" + "a" * 200,
                                  "/email-change"])
def test_an_unknown_link_or_none_gets_a_clear_page(app, path):
    page = app.test_client().get(path)
    assert page.status_code == 404 and "This link is not valid" in _body(page)


def test_an_unknown_link_posted_gets_the_page_not_an_error(app):
    visitor = app.test_client()
    response = post_form(visitor, "/email-change", page="/sign-in")
    assert response.status_code == 404 and "This link is not valid" in _body(response)


# ------------------------------------------------------------- the admin's page, cancel

def test_a_waiting_change_is_shown_and_can_be_cancelled(app, admin):
    _, browser = admin
    person = make_user()
    new = unique_email("pending")
    _ask(browser, person, new)
    path, _ = _confirm_path(person)
    page = _body(browser.get(_page(person)))
    assert "Waiting for confirmation:" in page and new in page
    assert "Cancel this change" in page
    cancelled = post_form(browser, f"{_page(person)}/email/cancel", page=_page(person))
    assert cancelled.status_code == 302
    after = _body(browser.get(cancelled.location))
    assert "The email change is cancelled" in after and "Waiting for confirmation" not in after
    dead = app.test_client().get(path)
    assert dead.status_code == 410 and "no longer works" in _body(dead)
    assert audit_actions(action="account.email_change_cancelled") == [
        "account.email_change_cancelled"]
    again = post_form(browser, f"{_page(person)}/email/cancel", page=_page(person))
    assert "There was no email change waiting." in _body(browser.get(again.location))
    assert len(audit_actions(action="account.email_change_cancelled")) == 1


def test_a_deactivated_account_is_not_offered_a_change_and_is_refused_one(app, admin):
    _, browser = admin
    person = make_user(active=False)
    page = _body(browser.get(_page(person)))
    assert "reactivate it to change its email address" in page
    assert "New email address" not in page
    refused = _ask(browser, person, unique_email("new"))
    assert refused.status_code == 422
    assert "Reactivate the account before changing its email address." in _body(refused)
    assert _changes(person) == []


@pytest.mark.parametrize("role", ["client", "therapist"])
def test_only_administrators_reach_the_corrections(app, role):
    outsider = make_user(role)
    person = make_user()
    browser = app.test_client()
    sign_in(browser, outsider)
    for path, data in ((f"{_page(person)}/email", {"email": unique_email("x")}),
                       (f"{_page(person)}/email/cancel", {}),
                       (f"{_page(person)}/names", {"name": "Someone Else"})):
        response = post_form(browser, path, data, page="/account")
        assert response.status_code == 404, path
    assert _changes(person) == [] and name_of(fresh(person.user)) == person.name


# -------------------------------------------------------------------- nothing at rest

def _raw_database_bytes(app) -> bytes:
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("sqlite"):
        db.session.remove()
        db.engine.dispose()  # nothing held in memory; the WAL is read beside the file
        path = Path(url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    chunks = []
    with db.engine.connect() as connection:
        for table in db.metadata.sorted_tables:
            for row in connection.execute(table.select()):
                chunks.append(repr(tuple(row)).encode())
    return b"\n".join(chunks)


def test_no_address_is_readable_at_rest_nor_in_the_audit_trail(app, admin):
    _, browser = admin
    person = make_user(email=unique_email("Qzv-old-marker"))
    old, new = person.email, unique_email("Qzv-new-marker")
    waiting = unique_email("Qzv-cancelled-marker")
    _ask(browser, person, waiting)
    _ask(browser, person, new)
    path, token = _confirm_path(person)
    _confirm(app, path)
    assert email_of(fresh(person.user)) == new

    for event in db.session.scalars(select(AuditEvent)):
        row = " ".join(str(getattr(event, c.key)) for c in AuditEvent.__table__.columns)
        for address in (old, new, waiting):
            assert address not in row and address.split("@")[0] not in row
    db.session.commit()

    raw = _raw_database_bytes(app)
    assert b"account.email_change_confirmed" in raw  # the scan sees the latest writes
    for secret in (old, new, waiting, token):
        for needle in (secret.encode(), secret.encode("utf-16-le"),
                       secret.split("@")[0].encode(), secret.encode().hex().encode()):
            assert needle not in raw, needle


# ---------------------------------------------------------------- names correction

def _names(browser, person, **data):
    return post_form(browser, f"{_page(person)}/names", data, page=_page(person))


def test_an_administrator_corrects_a_clients_names(app, admin):
    actor, browser = admin
    person = make_user("client", name="Jordan Lee")
    page = _body(browser.get(_page(person)))
    assert 'value="Jordan Lee"' in page and "Legal name" in page
    assert "Credentials" not in page
    done = _names(browser, person, name="Jo Lee", pronouns="they/them",
                  legal_name="Jordan Lee")
    assert done.status_code == 302 and done.location == _page(person)
    assert "The changes are saved." in _body(browser.get(done.location))
    user = fresh(person.user)
    assert (name_of(user), pronouns_of(user), legal_name_of(user)) == (
        "Jo Lee", "they/them", "Jordan Lee")
    events = list(db.session.scalars(select(AuditEvent).where(
        AuditEvent.action.in_(["account.name_changed", "account.pronouns_changed"]))))
    db.session.commit()
    assert {e.action for e in events} == {"account.name_changed", "account.pronouns_changed"}
    assert all(e.actor_id == actor.id and e.subject_id == person.id for e in events)


def test_an_administrator_corrects_a_therapists_details(app, admin):
    _, browser = admin
    person = make_user("therapist", name="Colleen Demo")
    page = _body(browser.get(_page(person)))
    assert "Credentials" in page and "Legal name" not in page
    done = _names(browser, person, name="Colleen Demo", pronouns="she/her", credentials="LPC",
                  reply_hours="usually replies within a day")
    assert done.status_code == 302
    user = fresh(person.user)
    assert (user.credentials, user.reply_hours, pronouns_of(user)) == (
        "LPC", "usually replies within a day", "she/her")
    assert set(audit_actions(target_id=str(person.id))) >= {
        "account.credentials_changed", "account.reply_hours_changed",
        "account.pronouns_changed"}


def test_saving_unchanged_names_says_nothing_changed_and_records_nothing(app, admin):
    _, browser = admin
    person = make_user("client", name="Jordan Lee")
    done = _names(browser, person, name="Jordan Lee", pronouns="", legal_name="Jordan Lee")
    assert "Nothing needed changing" in _body(browser.get(done.location))
    assert not [a for a in audit_actions(target_id=str(person.id)) if a.endswith("_changed")]


@pytest.mark.parametrize(("data", "words"), [
    ({"name": "", "pronouns": ""}, "Please enter the name they go by."),
    ({"name": "x" * 121, "pronouns": ""}, "Use at most 120 characters."),
    ({"name": "Jo", "pronouns": "p" * 41}, "Use at most 40 characters."),
    ({"name": "Jo\x01Lee", "pronouns": ""}, "cannot hold control characters"),
])
def test_refused_names_are_shown_beside_the_field_with_422(app, admin, data, words):
    _, browser = admin
    person = make_user("client", name="Jordan Lee")
    refused = _names(browser, person, legal_name="", **data)
    assert refused.status_code == 422 and words in _body(refused)
    assert 'aria-invalid="true"' in _body(refused)
    assert name_of(fresh(person.user)) == "Jordan Lee"
    assert not [a for a in audit_actions(target_id=str(person.id)) if a.endswith("_changed")]
