"""Fixtures for the account tests (the 500 guard and the SMTP server: tests/conftest.py)."""

# Every account test runs its requests in isolation and fails when one answered 500.
from .support import guarded_requests  # noqa: F401
