"""The email blind index: normalized, keyed by PORTAL_INDEX_KEY only."""

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from portal.crypto import email_index, normalize_email

from .conftest import key_entry


@pytest.mark.parametrize(("raw", "normalized"), [
    ("  Ada@Example.ORG \n", "ada@example.org"),
    ("STRASSE@example.org", "strasse@example.org"),
    ("straße@example.org", "strasse@example.org"),
    ("\uff41da@example.org", "ada@example.org"),  # fullwidth a (NFKC)
    ("\u01c4@example.org", "d\u017e@example.org"),  # NFKC splits the DZ digraph
])
def test_emails_are_normalized(raw, normalized):
    assert normalize_email(raw) == normalized


def test_index_is_hmac_of_normalized_email_under_hkdf_subkey(app):
    subkey = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                  info=b"coeo-portal email index v1").derive(b"\x04\x10\x41" * 10 + b"\x04\x10")
    expected = hmac.new(subkey, b"ada@example.org", hashlib.sha256).digest()
    assert email_index(" ADA@example.org") == expected == email_index("ada@example.org")
    assert len(expected) == 32
    assert email_index("bob@example.org") != expected


def test_index_depends_on_the_index_key_not_the_master_keys(app, make_app):
    before = email_index("ada@example.org")
    with make_app(PORTAL_MASTER_KEYS=key_entry("other")).app_context():
        assert email_index("ada@example.org") == before
    # Another index key does not match this database: the start-up check would stop it.
    with make_app(PORTAL_INDEX_KEY="C" * 43, PORTAL_SKIP_KEY_CHECK=True).app_context():
        assert email_index("ada@example.org") != before


def test_index_refuses_non_strings(app):
    with pytest.raises(TypeError):
        email_index(b"ada@example.org")  # type: ignore[arg-type]
