"""Fixtures for the operations tests: every test-client request in its own app context."""

import pytest

from tests.messaging.conftest import IsolatedClient


@pytest.fixture(autouse=True)
def _isolated_requests(app):
    """Run each request in its own app context, as in production (see IsolatedClient)."""
    app.test_client_class = IsolatedClient
