"""Test infrastructure shared by every test folder (the fixtures themselves: tests/conftest.py)."""
