"""The record export's `pdf_sha256` is the SHA-256 of the PDF it contains, computed when the
export is made (the stored digest is a keyed HMAC, #17); an estimate whose PDF no longer
matches its keyed digest is listed as unavailable, with no file and no SHA-256."""

import hashlib
import json
import uuid

import pytest

from portal.estimates import content, drafting, issuing
from portal.estimates.models import GoodFaithEstimate
from portal.extensions import db
from portal.practice import today as practice_today
from tests.estimates.conftest import complete_draft
from tests.records.test_export import Record, _download, _read, _signed_in, _zip


@pytest.fixture(autouse=True)
def _isolated(isolated_requests):
    """Requests run in their own app context, as in production."""


def _record_with_two_estimates() -> Record:
    rec = Record(messages=2)
    draft = drafting.create_draft(rec.therapist, rec.client)
    drafting.save_draft(rec.therapist, draft, complete_draft(practice_today(),
                                                             frequency="Daily"))
    rec.second_estimate = issuing.issue(rec.therapist, draft.id)
    db.session.commit()
    return rec


def test_each_exported_pdf_carries_the_sha256_of_its_own_bytes(app):
    rec = _record_with_two_estimates()
    archive = _zip(_download(_signed_in(app, rec.client)))
    data = json.loads(_read(archive, "/record.json"))
    top = archive.namelist()[0].split("/")[0]
    assert len(data["estimates"]) == 2
    for item in data["estimates"]:
        pdf = archive.read(f"{top}/{item['file']}")
        estimate = db.session.get(GoodFaithEstimate, uuid.UUID(item["id"]))
        assert item["pdf_sha256"] == hashlib.sha256(pdf).hexdigest()
        assert estimate.pdf_digest == content.pdf_digest(estimate.id, pdf)  # what it passed
        assert item["pdf_sha256"] != estimate.pdf_digest


def test_a_pdf_that_fails_its_keyed_check_is_not_exported(app):
    rec = _record_with_two_estimates()
    table, broken = GoodFaithEstimate.__table__, rec.estimate.id
    db.session.rollback()
    with db.engine.begin() as conn:  # a raw write, by someone without the key
        conn.execute(table.update().where(table.c.id == broken).values(pdf_digest="0" * 64))
    archive = _zip(_download(_signed_in(app, rec.client)))
    data = json.loads(_read(archive, "/record.json"))
    (item,) = [e for e in data["estimates"] if e["id"] == str(broken)]
    assert item["file"] is None and item["pdf_sha256"] is None
    assert {"what": "estimate", "id": str(broken), "where": "estimates"} in data["unavailable"]
    exported = [n for n in archive.namelist() if n.endswith(".pdf") and "/estimates/" in n]
    assert len(exported) == 1  # the other estimate only
