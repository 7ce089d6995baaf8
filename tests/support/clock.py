"""The practice's clock, frozen for a test: `clock` fixture, moved by hand."""

from datetime import UTC, date, datetime, timedelta

import pytest

from portal import practice


class Clock:
    """The practice's clock, frozen at noon in New York on a given day, moved by hand."""

    def __init__(self, day: date) -> None:
        self.set(day)

    def set(self, day: date) -> None:
        self.now = datetime(day.year, day.month, day.day, 17, 0, tzinfo=UTC)

    def advance(self, days: int) -> None:
        self.now += timedelta(days=days)

    def __call__(self) -> datetime:
        return self.now


def freeze(monkeypatch, day: date) -> Clock:
    frozen = Clock(day)
    monkeypatch.setattr(practice, "utcnow", frozen)
    return frozen


@pytest.fixture
def clock(monkeypatch):
    return freeze(monkeypatch, date(2026, 3, 2))
