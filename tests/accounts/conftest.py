"""Fixtures for the account tests: a guard against 500s (the SMTP server: tests/conftest.py)."""

# Every account test runs its requests in isolation and fails when one answered 500.
from .support import guarded_requests, no_server_errors  # noqa: F401
