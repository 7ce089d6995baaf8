"""Password rules (NIST SP 800-63B-4, single factor) and peppered Argon2id hashing."""

import hmac
import unicodedata
from hashlib import sha256

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.accounts import passwords
from portal.accounts.passwords import MAX_LENGTH, MIN_LENGTH, problems
from portal.crypto.blind_index import keyed_digest

from .support import PASSWORD, fresh, make_user, post_form, sign_in

FIFTEEN_EMOJI = "🦊🌲🍋🐢🎈🪁🌊🧭🫖🪴🍂🐝🌙🎻🧩"  # 15 code points, 30 UTF-16 units, 60 bytes
WORDS = ("amber", "quill", "harbor", "vesper", "tundra", "sorrel", "gadget", "meadow",
         "pylon", "cobalt", "wicker", "saffron", "lichen", "ember", "falcon", "jigsaw",
         "marble", "nutmeg", "oxbow", "parsley", "quartz", "riddle", "thistle", "umber")


def _phrase(length: int) -> str:
    """Return a passphrase of exactly `length` code points made of unrelated words."""
    text = " ".join(WORDS * 2)
    assert len(text) >= length
    return text[:length]


@pytest.mark.parametrize(("password", "accepted"), [
    pytest.param("plum kite ocea", False, id="14 characters"),
    pytest.param("plum kite ocean", True, id="15 characters"),
    pytest.param(FIFTEEN_EMOJI[:14], False, id="14 emoji"),
    pytest.param(FIFTEEN_EMOJI, True, id="15 emoji (non-BMP code points)"),
    pytest.param("ça fait zéro€ ü", True, id="15 accented code points"),
    pytest.param(_phrase(MAX_LENGTH), True, id="128 characters"),
    pytest.param(_phrase(MAX_LENGTH + 1), False, id="129 characters"),
    pytest.param("   plum   kite   ", True, id="spaces anywhere"),
    pytest.param("Zoë\u2019s café, näïve résumé", True, id="any Unicode"),
    pytest.param("no Capitals or digits at all", True, id="no composition rules"),
])
def test_length_is_counted_in_code_points_from_15_to_128(password, accepted):
    assert (problems(password) == []) is accepted


def test_short_password_says_how_long_it_is_and_suggests_a_passphrase():
    (message,) = problems("plum kite ocea")
    assert f"at least {MIN_LENGTH} characters (this has 14)" in message
    assert "passphrase" in message


def test_long_password_says_the_limit():
    (message,) = problems(_phrase(MAX_LENGTH + 1))
    assert "at most 128 characters (this has 129)" in message


@pytest.mark.parametrize("password", [
    "correct horse battery staple",
    "Correct Horse Battery Staple",
    "correcthorsebatterystaple",
    "iloveyouiloveyou",
    "password12345678",
    "Password!!!!!!!!!",
    "the quick brown fox jumps over the lazy dog",
    "lantern orbit maple quietly",  # the example in our own hint
])
def test_common_and_breached_passwords_are_refused_with_a_passphrase_suggestion(password):
    (message,) = problems(password)
    assert "list of common or breached passwords" in message
    assert "Try a passphrase" in message


@pytest.mark.parametrize("password", [
    "aaaaaaaaaaaaaaaa",
    "abcabcabcabcabcabc",
    "ab ab ab ab ab ab ab",
    "987654321098765432",
    "abcdefghijklmnopq",
    "asdfghjklqwertyuiop",
    "poiuytrewqlkjhgfdsa",
    "               ",
])
def test_repeated_and_keyboard_patterns_are_refused(password):
    (message,) = problems(password)
    assert "pattern" in message
    assert "passphrase" in message


@pytest.mark.parametrize(("password", "email", "detail"), [
    pytest.param("robin.gardner@example.org rules", "robin.gardner@example.org",
                 "your email address", id="whole email"),
    pytest.param("my rgard99 tulip bed", "rgard99@example.org", "your email address",
                 id="email local part"),
    pytest.param("Gardner family holidays", "x@example.org", "your name",
                 id="surname, any case"),
    pytest.param("dear robin, wake up now", "x@example.org", "your name", id="first name"),
    pytest.param("my Coeo couch is yellow", "x@example.org", "the practice's name (coeo)",
                 id="practice name"),
])
def test_passwords_containing_the_users_details_are_refused(password, email, detail):
    found = problems(password, email=email, name="Robin Gardner", practice="coeo")
    assert any(detail in message for message in found), found
    assert "among the first things someone would try" in found[-1]
    assert "Try a passphrase" in found[-1]


def test_a_three_letter_name_is_refused_only_as_a_word():
    assert problems("sam likes long walks", name="Sam Okafor")
    assert problems("the same old song again", name="Sam Okafor") == []


def test_hash_is_peppered_argon2id_with_the_configured_parameters(app):
    app.config.update(ARGON2_TIME_COST=2, ARGON2_MEMORY_COST=16, ARGON2_PARALLELISM=1)
    stored = passwords.hash_password(PASSWORD)
    assert stored.startswith("pepper1:$argon2id$v=19$m=16,t=2,p=1$")
    assert PASSWORD not in stored
    argon = stored.removeprefix("pepper1:")
    # Someone holding only the row cannot test a guess: the plain password does not verify,
    # nor the password keyed under any key but the portal's.
    with pytest.raises(VerificationError):
        PasswordHasher().verify(argon, PASSWORD)
    wrong = hmac.new(b"k" * 32, PASSWORD.encode(), sha256).hexdigest()
    with pytest.raises(VerificationError):
        PasswordHasher().verify(argon, wrong)
    assert PasswordHasher().verify(argon, keyed_digest("password-pepper",
                                                        PASSWORD.encode()).hex())
    assert passwords.verify_password(stored, PASSWORD)
    assert not passwords.needs_rehash(stored)


def test_a_hash_made_before_the_pepper_verifies_and_asks_to_be_replaced(app):
    legacy = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    assert passwords.verify_password(legacy, PASSWORD)
    assert not passwords.verify_password(legacy, PASSWORD + "x")
    assert passwords.needs_rehash(legacy)


def test_signing_in_replaces_an_unpeppered_hash(app, db, client):
    person = make_user(mfa_on=False)
    user = fresh(person.user)
    user.password_hash = PasswordHasher(time_cost=1, memory_cost=8,
                                        parallelism=1).hash(person.password)
    db.session.commit()
    assert sign_in(client, person).status_code == 302
    stored = fresh(person.user).password_hash
    assert stored.startswith("pepper1:") and passwords.verify_password(stored, person.password)


@pytest.mark.parametrize(("typed", "matches"), [
    pytest.param(PASSWORD, True, id="exactly as set"),
    pytest.param(PASSWORD + " ", False, id="trailing space added"),
    pytest.param(" " + PASSWORD, False, id="leading space added"),
    pytest.param(PASSWORD.upper(), False, id="different case"),
    pytest.param(PASSWORD[:-1], False, id="one character short"),
])
def test_password_is_verified_exactly_as_typed(app, typed, matches):
    stored = passwords.hash_password(PASSWORD)
    assert passwords.verify_password(stored, typed) is matches


def test_trailing_space_set_must_be_typed_again(app):
    stored = passwords.hash_password("plum kite ocean tide ")
    assert passwords.verify_password(stored, "plum kite ocean tide ")
    assert not passwords.verify_password(stored, "plum kite ocean tide")


def test_another_unicode_normalization_is_another_password(app):
    composed = unicodedata.normalize("NFC", "café crème brûlée soir")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    stored = passwords.hash_password(composed)
    assert passwords.verify_password(stored, composed)
    assert not passwords.verify_password(stored, decomposed)


def test_missing_or_broken_hash_never_verifies(app):
    assert not passwords.verify_password(None, "decoy password that never matches")
    assert not passwords.verify_password("not-a-hash", PASSWORD)


def test_sign_in_keeps_the_password_exactly_as_typed(client):
    person = make_user(password="tide pool lantern bus  ")  # two trailing spaces
    assert sign_in(client, person, password="tide pool lantern bus").status_code == 422
    response = sign_in(client, person)
    assert response.status_code == 302
    assert "/sign-in" not in response.location


def test_sign_in_rehashes_when_the_parameters_change(app, client):
    person = make_user()
    old_hash = fresh(person.user).password_hash
    assert "t=1" in old_hash
    app.config["ARGON2_TIME_COST"] = 2
    assert sign_in(client, person).status_code == 302
    new_hash = fresh(person.user).password_hash
    assert new_hash != old_hash and ",t=2," in new_hash
    assert not passwords.verify_password(new_hash, PASSWORD + "x")
    assert passwords.verify_password(new_hash, PASSWORD)


def test_sign_in_does_not_rehash_when_parameters_are_unchanged(client):
    person = make_user()
    old_hash = fresh(person.user).password_hash
    sign_in(client, person)
    assert fresh(person.user).password_hash == old_hash


@pytest.mark.parametrize(("password", "message"), [
    pytest.param("short one", "at least 15 characters", id="too short"),
    pytest.param("correct horse battery staple", "common or breached", id="blocklisted"),
    pytest.param("Robin Client likes walks", "leave out your name", id="own name"),
])
def test_change_password_page_explains_the_refusal_next_to_the_field(client, password,
                                                                      message):
    person = make_user()
    sign_in(client, person)
    response = post_form(client, "/account/password", {
        "current_password": person.password, "new_password": password, "confirm": password})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in html
    assert 'id="new_password-error"' in html
    assert passwords.verify_password(fresh(person.user).password_hash, person.password)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=MIN_LENGTH, max_size=MAX_LENGTH).filter(
    lambda text: MIN_LENGTH <= len(text) <= MAX_LENGTH))
def test_any_accepted_text_verifies_exactly_and_only_as_typed(app, password):
    stored = passwords.hash_password(password)
    assert passwords.verify_password(stored, password)
    assert not passwords.verify_password(stored, password + " ")
    assert not passwords.verify_password(stored, password[:-1])


@given(st.text(max_size=200))
def test_rules_answer_any_text_with_reasons_not_errors(text):
    found = problems(text, email="robin@example.org", name="Robin Gardner", practice="coeo")
    assert isinstance(found, list) and all(isinstance(m, str) and m for m in found)
    if len(text) < MIN_LENGTH or len(text) > MAX_LENGTH:
        assert len(found) == 1
