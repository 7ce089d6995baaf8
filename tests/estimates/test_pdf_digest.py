"""An issued estimate's PDF digest is keyed (HMAC under a key kept outside the database) and
bound to its row: a digest anyone could compute from the database alone does not verify, and
the download refuses the PDF."""

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select

from portal.crypto.envelope import crypto_state
from portal.estimates import content
from portal.estimates.models import GoodFaithEstimate
from portal.extensions import db
from tests.estimates.conftest import sign_in

TEST_INDEX_KEY = b"\x04\x10\x41" * 10 + b"\x04\x10"  # the testing PORTAL_INDEX_KEY


def _subkey(index_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(index_key)


def _set_digest(estimate_id, value: str) -> None:
    """A raw write, as someone holding the database (and not the keys) could make."""
    db.session.rollback()  # SQLite: let go of the session's write lock first
    table = GoodFaithEstimate.__table__
    with db.engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == estimate_id).values(pdf_digest=value))
    db.session.expire_all()


def test_the_stored_digest_is_an_hmac_of_the_row_id_and_the_pdf_under_the_estimate_key(
        practice):
    estimate = practice.issued()
    pdf = content.open_pdf(estimate)
    subkey = _subkey(TEST_INDEX_KEY, b"coeo-portal estimate pdf digest v1")
    expected = hmac.new(subkey, estimate.id.bytes + pdf, hashlib.sha256).hexdigest()
    assert estimate.pdf_digest == expected == content.pdf_digest(estimate.id, pdf)
    assert len(estimate.pdf_digest) == 64
    # Nothing a thief could compute from the row alone is stored.
    raw = db.session.execute(select(GoodFaithEstimate.__table__).where(
        GoodFaithEstimate.__table__.c.id == estimate.id)).one()._asdict()
    assert hashlib.sha256(pdf).hexdigest() not in {str(v) for v in raw.values()}
    assert "pdf_sha256" not in raw


def _unkeyed_digests(estimate_id, pdf: bytes) -> dict[str, str]:
    other_index_key = b"\x99" * 32
    info = b"coeo-portal estimate pdf digest v1"
    return {
        "plain sha-256": hashlib.sha256(pdf).hexdigest(),
        "plain sha-256 with the row id": hashlib.sha256(estimate_id.bytes + pdf).hexdigest(),
        "hmac under another index key": hmac.new(
            _subkey(other_index_key, info), estimate_id.bytes + pdf, hashlib.sha256).hexdigest(),
        "hmac under another digest's subkey": hmac.new(
            crypto_state().subkey("emergency-index"), estimate_id.bytes + pdf,
            hashlib.sha256).hexdigest(),
        "hmac under the index key itself": hmac.new(
            TEST_INDEX_KEY, estimate_id.bytes + pdf, hashlib.sha256).hexdigest(),
        "the right key without the row id": hmac.new(
            _subkey(TEST_INDEX_KEY, info), pdf, hashlib.sha256).hexdigest(),
    }


@pytest.mark.parametrize("kind", [
    "plain sha-256", "plain sha-256 with the row id", "hmac under another index key",
    "hmac under another digest's subkey", "hmac under the index key itself",
    "the right key without the row id"])
def test_a_digest_computed_without_the_key_does_not_verify(app, practice, kind):
    estimate = practice.issued()
    estimate_id, pdf = estimate.id, content.open_pdf(estimate)
    forged = _unkeyed_digests(estimate_id, pdf)[kind]
    _set_digest(estimate_id, forged)
    with pytest.raises(content.EstimateUnavailable, match="does not match"):
        content.open_pdf(db.session.get(GoodFaithEstimate, estimate_id))
    # ... and the download refuses it: the calm "unavailable" page, never the PDF.
    response = sign_in(app.test_client(), practice.client).get(f"/estimates/{estimate_id}/pdf")
    assert response.status_code == 200
    assert not response.data.startswith(b"%PDF")
    assert b"can\xe2\x80\x99t be shown right now" in response.data
    # The right digest, written back, serves it again (so the refusal above was the digest's).
    _set_digest(estimate_id, content.pdf_digest(estimate_id, pdf))
    response = sign_in(app.test_client(), practice.client).get(f"/estimates/{estimate_id}/pdf")
    assert response.status_code == 200 and response.data == pdf


def test_a_digest_copied_from_another_estimate_does_not_verify(practice):
    """The row id is in the HMAC: another estimate's (valid) digest does not fit this row,
    even for a byte-identical PDF."""
    first = practice.issued()
    second = practice.issued(client=practice.other_client, therapist=practice.other_therapist)
    assert first.pdf_digest != second.pdf_digest
    second_id = second.id
    _set_digest(second_id, first.pdf_digest)
    with pytest.raises(content.EstimateUnavailable):
        content.open_pdf(db.session.get(GoodFaithEstimate, second_id))


def test_an_empty_digest_does_not_verify(practice):
    estimate = practice.issued()
    estimate_id = estimate.id
    _set_digest(estimate_id, "")
    with pytest.raises(content.EstimateUnavailable):
        content.open_pdf(db.session.get(GoodFaithEstimate, estimate_id))
