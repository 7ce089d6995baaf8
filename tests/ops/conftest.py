"""Fixtures for the operations tests: every test-client request in its own app context."""

import pytest


@pytest.fixture(autouse=True)
def _isolated(isolated_requests):
    """Every operations test runs its test-client requests in isolation (see tests/conftest.py)."""
