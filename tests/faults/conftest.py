"""Fixtures for the fault tests: a PostgreSQL of our own to stop, isolated test requests."""

import pytest

from tests.messaging.conftest import IsolatedClient
from tests.ops.support import OwnPostgres


@pytest.fixture
def isolated_requests(app):
    """Run each test-client request in its own app context, as in production."""
    app.test_client_class = IsolatedClient


@pytest.fixture
def own_postgres():
    """A throwaway PostgreSQL 15 cluster on a free port (never the shared server); removed after."""
    cluster = OwnPostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
