"""The Account page's "Your name and pronouns": a person changes the name they go by and their
pronouns (staff also credentials and reply hours), through `update_profile`, sealed at rest."""

import pytest
from sqlalchemy import select, text

from portal.accounts.identity import legal_name_is_set, legal_name_of, name_of, pronouns_of
from portal.accounts.models import User
from portal.accounts.profile import Profile, update_profile
from portal.audit.models import AuditEvent
from portal.errors import RuleError
from tests.support.people import (
    csrf_from,
    make_admin,
    make_client,
    make_guardian,
    make_therapist,
)

pytestmark = pytest.mark.usefixtures("isolated_requests")


def _fresh(db, user: User) -> User:
    db.session.expire_all()
    from flask import g
    g.pop("identity_cache", None)
    g.pop("pronouns_cache", None)
    return db.session.get(User, user.id)


def _post(browser, data: dict):
    token = csrf_from(browser.get("/account").get_data(as_text=True))
    return browser.post("/account/profile", data={"csrf_token": token, **data})


def test_the_account_page_shows_the_form_and_the_legal_name_read_only(client, auth, db):
    person = make_client("Jordan Lee")
    page = auth.login(person).get("/account").get_data(as_text=True)
    assert "Your name and pronouns" in page
    assert 'name="name"' in page and 'value="Jordan Lee"' in page
    assert 'name="pronouns"' in page and "she/her, they/them" in page
    assert 'name="legal_name"' not in page  # read-only: the practice corrects it
    assert "Legal name" in page and "Good Faith Estimates" in page
    assert 'name="credentials"' not in page and 'name="reply_hours"' not in page
    assert "To change your email address, please ask the practice." in page
    assert "change your name or email" not in page


def test_a_client_changes_their_name_and_pronouns(client, auth, db):
    person = make_client("Jordan Lee")
    browser = auth.login(person)
    response = _post(browser, {"name": "  Jo   Lee ", "pronouns": "they/them"})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/account")
    page = browser.get("/account").get_data(as_text=True)
    assert "Your details are saved." in page
    person = _fresh(db, person)
    assert name_of(person) == "Jo Lee"
    assert pronouns_of(person) == "they/them"
    # The legal name stays what it was: only the practice sets it.
    assert legal_name_of(person) == "Jordan Lee" and legal_name_is_set(person)
    actions = set(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.target_id == str(person.id))))
    assert {"account.name_changed", "account.pronouns_changed"} <= actions
    assert "account.legal_name_changed" not in actions


def test_clearing_pronouns_leaves_none(client, auth, db):
    person = make_client("Sky Park")
    browser = auth.login(person)
    assert _post(browser, {"name": "Sky Park", "pronouns": "she/they"}).status_code == 302
    assert _post(browser, {"name": "Sky Park", "pronouns": ""}).status_code == 302
    person = _fresh(db, person)
    assert pronouns_of(person) == "" and person.pronouns_sealed is None


@pytest.mark.parametrize("data, field, message", [
    ({"name": "   ", "pronouns": ""}, "name", "Please enter the name you go by."),
    ({"name": "x" * 121, "pronouns": ""}, "name", "at most 120 characters"),
    ({"name": "Jo", "pronouns": "p" * 41}, "pronouns", "at most 40 characters"),
    ({"name": "Jo\x07Lee", "pronouns": ""}, "name", "cannot hold control characters"),
])
def test_bad_input_is_shown_again_with_the_error_beside_the_field(client, auth, db, data,
                                                                  field, message):
    person = make_client("Jordan Lee")
    response = _post(auth.login(person), data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'id="{field}-error"' in page and message in page
    assert "Your details have not been saved yet" in page
    assert name_of(_fresh(db, person)) == "Jordan Lee"


def test_staff_set_credentials_and_reply_hours(client, auth, db):
    therapist = make_therapist("Colleen Demo")
    browser = auth.login(therapist)
    page = browser.get("/account").get_data(as_text=True)
    assert 'name="credentials"' in page and 'name="reply_hours"' in page
    assert "Legal name" not in page
    response = _post(browser, {"name": "Colleen Demo", "pronouns": "she/her",
                               "credentials": "LPC",
                               "reply_hours": "usually replies within a day"})
    assert response.status_code == 302
    therapist = _fresh(db, therapist)
    assert therapist.credentials == "LPC"
    assert therapist.reply_hours == "usually replies within a day"
    assert pronouns_of(therapist) == "she/her"
    page = browser.get("/account").get_data(as_text=True)
    assert "Colleen Demo, LPC (she/her)" in page  # how clients will see it
    assert "Colleen Demo, LPC (she/her) usually replies within a day." in page


def test_staff_fields_posted_by_a_client_are_ignored(client, auth, db):
    person = make_client("Jordan Lee")
    response = _post(auth.login(person), {"name": "Jordan Lee", "credentials": "MD",
                                          "reply_hours": "at once"})
    assert response.status_code == 302
    person = _fresh(db, person)
    assert person.credentials is None and person.reply_hours is None


def test_a_legal_name_posted_by_a_client_is_ignored(client, auth, db):
    person = make_client("Jordan Lee")
    _post(auth.login(person), {"name": "Jordan Lee", "legal_name": "Someone Else"})
    assert legal_name_of(_fresh(db, person)) == "Jordan Lee"


def test_nobody_changes_another_persons_profile(app, db):
    client, other, therapist = make_client("Ann A"), make_client("Ben B"), make_therapist()
    for actor in (client, therapist):
        with pytest.raises(RuleError, match="Only an administrator"):
            update_profile(actor, other, Profile(name="Changed"))
    assert name_of(_fresh(db, other)) == "Ben B"
    assert update_profile(make_admin(), other, Profile(name="Ben Bee")) == ["name"]


def test_the_form_only_ever_changes_the_signed_in_person(client, auth, db):
    me, other = make_client("Ann A"), make_client("Ben B")
    browser = auth.login(me)
    _post(browser, {"name": "Ann Changed", "user_id": str(other.id), "id": str(other.id)})
    assert name_of(_fresh(db, other)) == "Ben B"
    assert name_of(_fresh(db, me)) == "Ann Changed"


def test_without_the_csrf_token_nothing_changes(client, auth, db):
    person = make_client("Jordan Lee")
    response = auth.login(person).post("/account/profile", data={"name": "Other"})
    assert response.status_code in (400, 422)
    assert name_of(_fresh(db, person)) == "Jordan Lee"


def test_the_new_name_and_pronouns_are_not_readable_at_rest(client, auth, db):
    person = make_client("Jordan Lee")
    _post(auth.login(person), {"name": "Quillon Vantablack", "pronouns": "xe/xem"})
    row = db.session.execute(text(
        "SELECT name_sealed, pronouns_sealed, legal_name_sealed FROM users WHERE id = :id"),
        {"id": person.id if db.engine.dialect.name == "postgresql" else person.id.hex}
    ).one()
    blobs = b"".join(bytes(part) for part in row if part is not None)
    assert len(blobs) > 40  # the sealed values are there
    for plain in ("Quillon", "Vantablack", "xe/xem", "Jordan"):
        assert plain.encode() not in blobs
        assert plain.encode("utf-16-le") not in blobs
    # and nowhere else in the row either (credentials and reply hours are staff's, plain)
    whole = db.session.execute(text("SELECT * FROM users WHERE id = :id"), {
        "id": person.id if db.engine.dialect.name == "postgresql" else person.id.hex}).one()
    dump = b"".join(bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode()
                    for v in whole)
    assert b"Quillon" not in dump and b"xe/xem" not in dump


def test_a_legal_name_changes_only_when_someone_sets_it(app, db):
    admin, person = make_admin(), make_client("Jordan Lee")
    assert update_profile(admin, person, Profile(legal_name="Jordan A. Lee")) == ["legal_name"]
    assert update_profile(person, person, Profile(name="Jo")) == ["name"]
    assert legal_name_of(_fresh(db, person)) == "Jordan A. Lee"
    # "" makes it the name they go by again (stored as not set: it follows from now on)
    person = _fresh(db, person)
    assert update_profile(admin, person, Profile(legal_name="")) == ["legal_name"]
    person = _fresh(db, person)
    assert legal_name_of(person) == "Jo" and not legal_name_is_set(person)
    # the same legal name again is no change, and records nothing
    assert update_profile(admin, person, Profile(name="Jo", legal_name="Jo")) == []
    # a therapist has no legal name to set
    therapist = make_therapist()
    assert update_profile(therapist, therapist, Profile(legal_name="Someone")) == []


def test_a_parent_or_guardian_sets_their_own_name_and_pronouns(client, auth, db):
    person = make_guardian("Casey Parent")
    browser = auth.login(person)
    page = browser.get("/account").get_data(as_text=True)
    assert "the practice\u2019s staff" in page and "Legal name" not in page
    assert _post(browser, {"name": "Casey P.", "pronouns": "he/they"}).status_code == 302
    person = _fresh(db, person)
    assert (name_of(person), pronouns_of(person)) == ("Casey P.", "he/they")
