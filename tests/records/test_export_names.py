"""The record export's account section: the name they go by, their pronouns, and the legal
name (the part the law needs), in record.json (validated against the documented schema) and
on index.html."""

import json

import pytest

from portal.accounts.profile import Profile, update_profile
from tests.records.test_export import (
    Record,
    _download,
    _read,
    _schema,
    _signed_in,
    _zip,
    validate,
)


@pytest.fixture(autouse=True)
def _isolated(isolated_requests):
    """Requests run in their own app context, as in production."""


def test_the_account_section_holds_the_legal_name_and_pronouns(app):
    rec = Record(messages=2)
    update_profile(rec.client, rec.client, Profile(name="Zoë N.", pronouns="she/they"))
    archive = _zip(_download(_signed_in(app, rec.client)))
    data = json.loads(_read(archive, "/record.json"))
    validate(data, _schema())
    account = data["account"]
    assert account["name"] == "Zoë N."
    assert account["pronouns"] == "she/they"
    assert account["legal_name"] == "Zoë Nguyễn-Ōtsuka"  # kept when the name changed
    index = _read(archive, "/index.html").decode()
    assert "<td>Zoë N.</td>" in index and "<td>she/they</td>" in index
    assert "Zoë Nguyễn-Ōtsuka" in index


def test_without_pronouns_the_field_is_null_and_the_legal_name_is_the_name(app):
    rec = Record(messages=2)
    archive = _zip(_download(_signed_in(app, rec.client)))
    data = json.loads(_read(archive, "/record.json"))
    validate(data, _schema())
    assert data["account"]["pronouns"] is None
    assert data["account"]["legal_name"] == data["account"]["name"] == "Zoë Nguyễn-Ōtsuka"
    assert "None given" in _read(archive, "/index.html").decode()
