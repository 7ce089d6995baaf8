"""Fixtures for the fault tests: a PostgreSQL of our own to stop."""

import pytest

from tests.ops.support import OwnPostgres


@pytest.fixture
def own_postgres():
    """A throwaway PostgreSQL 15 cluster on a free port (never the shared server); removed after."""
    cluster = OwnPostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
