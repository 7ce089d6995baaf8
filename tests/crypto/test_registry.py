"""The sealed-field registry rotation walks."""

import uuid

import pytest

from portal.crypto import KeyProvider, LocalKeyProvider, register_sealed, sealed_fields
from portal.crypto.cli import keys_cli
from portal.crypto.registry import unregister_sealed

from .conftest import Note


def test_registration_defaults_to_table_and_column_names():
    entry = register_sealed(Note, "body_sealed", owner="owner_id")
    assert (entry.table, entry.column) == ("crypto_test_notes", "body_sealed")
    assert entry.context(uuid.UUID(int=1)).row_id == uuid.UUID(int=1)
    assert sealed_fields() == [entry]


def test_registering_again_replaces_and_unregister_removes():
    register_sealed(Note, "body_sealed", owner="owner_id")
    entry = register_sealed(Note, "body_sealed", owner="owner_id", table="notes", column="body")
    assert sealed_fields() == [entry]
    assert entry.label == "notes.body"
    unregister_sealed(Note, "body_sealed")
    assert sealed_fields() == []


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"column_attr_name": "nope", "owner": "owner_id"}, ValueError),
    ({"column_attr_name": "body_sealed", "owner": "nobody"}, ValueError),
    ({"column_attr_name": "body_sealed", "owner": 42}, TypeError),
    ({"column_attr_name": "body_sealed", "owner": "owner_id", "row_id": "pk"}, ValueError),
    ({"column_attr_name": "body_sealed", "owner": "owner_id", "column": "bad name"}, ValueError),
])
def test_bad_registrations_fail_at_import_time(kwargs, error):
    with pytest.raises(error):
        register_sealed(Note, **kwargs)
    assert sealed_fields() == []


def test_local_provider_satisfies_the_provider_protocol():
    assert isinstance(LocalKeyProvider([("k", bytes(32))]), KeyProvider)


def test_keys_cli_is_a_group_named_keys():
    assert keys_cli.name == "keys"
    assert set(keys_cli.commands) == {"status", "rewrap", "reencrypt", "shred"}
