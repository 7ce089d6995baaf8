"""A client search on the dashboard is a POST (the name stays out of the URL) that reads
without SQLite's write lock, as the dashboard's GET does; only its looks take the lock."""

import pytest

from tests.messaging.conftest import StatementCounter
from tests.messaging.test_thread_transactions import _transactions
from tests.support.people import csrf_from


def _posted(db, browser, page: str, path: str, data: dict) -> tuple[int, list[list[str]]]:
    """POST a form from `page`; the status and the request's transactions."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("BEGIN IMMEDIATE is SQLite's; PostgreSQL locks rows, not the database")
    token = csrf_from(browser.get(page).get_data(as_text=True))
    with StatementCounter(db.engine) as counter:
        response = browser.post(path, data={**data, "csrf_token": token})
    return response.status_code, _transactions(counter.statements)


def test_a_search_reads_deferred_and_writes_only_its_looks(app, db, people, login):
    status, transactions = _posted(db, login(people.therapist_x), "/dashboard", "/dashboard",
                                   {"q": "a"})
    assert status == 200
    reads = [t for t in transactions if any("FROM message_threads" in s for s in t)]
    assert reads and all(t[0] == "BEGIN" for t in reads)  # no write lock while searching
    for t in transactions:
        if t[0] == "BEGIN IMMEDIATE":  # what takes the lock only writes the looks
            assert not any("FROM message_threads" in s for s in t)


def test_a_post_to_a_page_not_marked_takes_the_lock_up_front(app, db, people, login):
    _, transactions = _posted(db, login(people.client_a), "/account", "/account/profile",
                              {"name": "Alex Client"})
    assert transactions and transactions[0][0] == "BEGIN IMMEDIATE"
