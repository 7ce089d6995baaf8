"""The admin tests share the account tests' builders, isolation and 500 guard."""

import pytest

from tests.accounts.support import isolated_requests, no_server_errors  # noqa: F401 - fixtures


@pytest.fixture(autouse=True)
def _no_500(no_server_errors, isolated_requests):
    """Every admin test runs requests in isolation and fails when one answered 500."""
    return no_server_errors
