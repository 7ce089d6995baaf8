"""Recovery codes: 80 bits, grouped for typing, stored as an HMAC under a key outside the
database, compared in constant time, each used once; codes from before keyed codes are void."""

import hashlib
import hmac
import math
import re

from sqlalchemy import select

from portal.accounts import mfa
from portal.accounts.models import RecoveryCode
from portal.crypto import KeyCanary, ensure_canaries
from portal.crypto.blind_index import recovery_code_digest
from portal.extensions import db
from tests.support.people import make_user

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SHAPE = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){3}")


def _hashes(user) -> list[bytes]:
    return list(db.session.scalars(select(RecoveryCode.code_hash)
                                   .where(RecoveryCode.user_id == user.id)))


def test_codes_are_80_bits_in_four_groups_of_four(app):
    user = make_user(mfa_on=True)
    codes = mfa.new_recovery_codes(user)
    db.session.commit()
    assert len(codes) == 10 and len(set(codes)) == 10
    for code in codes:
        assert SHAPE.fullmatch(code), code
        raw = code.replace("-", "")
        assert len(raw) == 16 and set(raw) <= set(ALPHABET)
    assert len(ALPHABET) == 32 and len(set(ALPHABET)) == 32
    assert 16 * math.log2(len(ALPHABET)) >= 80
    assert not set("ILOU") & set(ALPHABET)
    assert mfa.format_recovery_code("K7QM2XRD9VTPHC4W") == "K7QM-2XRD-9VTP-HC4W"


def test_typing_ignores_case_spaces_and_dashes(app):
    user = make_user(mfa_on=True)
    codes = mfa.new_recovery_codes(user)
    db.session.commit()
    typed = [codes[0].lower(), " " + codes[1].replace("-", " ") + " ", codes[2].replace("-", ""),
             codes[3].replace("0", "o").replace("1", "l").lower()]
    for code in typed:
        assert mfa.use_recovery_code(user, code), code
    assert mfa.recovery_codes_left(user) == 6
    assert mfa.normalize_recovery_code("k7qm 2xrd-9vtp hc4w") == "K7QM2XRD9VTPHC4W"
    assert mfa.normalize_recovery_code("K7QM-2XRD-9VTP-HC4U") is None  # U is not a digit
    assert mfa.normalize_recovery_code("K7QM-2XRD-9VTP") is None


def test_a_code_works_once(app):
    user = make_user(mfa_on=True)
    code = mfa.new_recovery_codes(user)[0]
    db.session.commit()
    assert mfa.use_recovery_code(user, code)
    assert not mfa.use_recovery_code(user, code)
    assert mfa.recovery_codes_left(user) == 9


def test_the_stored_value_is_an_hmac_under_the_recovery_subkey(app):
    user = make_user(mfa_on=True)
    codes = mfa.new_recovery_codes(user)
    db.session.commit()
    raw = codes[0].replace("-", "")
    stored = _hashes(user)
    assert recovery_code_digest(user.id, raw) in stored
    subkey = app.extensions["portal_crypto"].recovery_subkey
    assert subkey != app.extensions["portal_crypto"].index_subkey
    assert hmac.new(subkey, user.id.bytes + raw.encode(), hashlib.sha256).digest() in stored
    # Anything a thief could compute from the row without the key is not what is stored.
    for unkeyed in (hashlib.sha256(raw.encode()).digest(),
                    hashlib.sha256(user.id.bytes + raw.encode()).digest(),
                    hashlib.sha256(user.id.bytes + raw.lower().encode()).digest(),
                    hmac.new(b"", user.id.bytes + raw.encode(), hashlib.sha256).digest()):
        assert unkeyed not in stored


def test_a_value_computed_without_the_key_does_not_verify(app):
    user = make_user(mfa_on=True)
    mfa.new_recovery_codes(user)
    guess = "K7QM2XRD9VTPHC4W"
    db.session.add(RecoveryCode(user_id=user.id, code_hash=hashlib.sha256(
        user.id.bytes + guess.encode()).digest()))
    db.session.commit()
    assert not mfa.use_recovery_code(user, guess)


def test_a_legacy_sha256_row_does_not_verify(app):
    user = make_user(mfa_on=True)
    legacy = "a1b2c-3d4e5"  # the old shape: 10 hex characters, unkeyed SHA-256
    db.session.add(RecoveryCode(user_id=user.id, code_hash=hashlib.sha256(
        user.id.bytes + legacy.replace("-", "").encode()).digest()))
    db.session.commit()
    assert not mfa.use_recovery_code(user, legacy)
    assert not mfa.use_recovery_code(user, legacy.replace("-", ""))


def test_legacy_rows_are_voided_once_when_the_recovery_canary_is_made(app):
    user = make_user(mfa_on=True)
    db.session.add(RecoveryCode(user_id=user.id, code_hash=bytes(32)))
    db.session.execute(db.delete(KeyCanary).where(
        KeyCanary.master_key_id == "hmac:recovery-codes"))
    db.session.commit()
    assert ensure_canaries() == ["hmac:recovery-codes"]
    assert mfa.recovery_codes_left(user) == 0  # the account page asks for new ones
    new = mfa.new_recovery_codes(user)
    db.session.commit()
    assert ensure_canaries() == []  # once: codes made afterwards stay
    assert mfa.recovery_codes_left(user) == 10
    assert mfa.use_recovery_code(user, new[0])


def test_the_account_page_asks_for_new_codes_when_none_are_left(app, client, auth):
    user = make_user(mfa_on=True)
    auth.login(user)
    html = client.get("/account").get_data(as_text=True)
    assert "You have no recovery codes left: make new ones" in html
    mfa.new_recovery_codes(user)
    db.session.commit()
    assert "You have 10 unused recovery codes" in client.get("/account").get_data(as_text=True)
