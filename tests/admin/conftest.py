"""The admin tests share the account tests' request isolation and 500 guard."""

# Autouse: every admin test runs its requests in isolation and fails when one answered 500.
from tests.accounts.support import guarded_requests  # noqa: F401 - fixture
