"""A client search on the dashboard is a POST (the name stays out of the URL) that reads
without SQLite's write lock, as the dashboard's GET does; only its looks take the lock."""

import pytest

from tests.messaging.conftest import StatementCounter
from tests.messaging.test_thread_transactions import _transactions
from tests.support.people import csrf_from


def test_a_search_reads_deferred_and_writes_only_its_looks(app, db, people, login):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("BEGIN IMMEDIATE is SQLite's; PostgreSQL locks rows, not the database")
    browser = login(people.therapist_x)
    token = csrf_from(browser.get("/dashboard").get_data(as_text=True))
    with StatementCounter(db.engine) as counter:
        response = browser.post("/dashboard", data={"q": "a", "csrf_token": token})
    assert response.status_code == 200
    transactions = _transactions(counter.statements)
    reads = [t for t in transactions if any("FROM message_threads" in s for s in t)]
    assert reads and all(t[0] == "BEGIN" for t in reads)  # no write lock while searching
    for t in transactions:
        if t[0] == "BEGIN IMMEDIATE":  # what takes the lock only writes the looks
            assert not any("FROM message_threads" in s for s in t)


def test_a_post_to_a_page_not_marked_takes_the_lock_up_front(app, db, people, login):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("BEGIN IMMEDIATE is SQLite's")
    browser = login(people.client_a)
    token = csrf_from(browser.get("/account").get_data(as_text=True))
    with StatementCounter(db.engine) as counter:
        browser.post("/account/profile", data={"name": "Alex Client", "csrf_token": token})
    transactions = _transactions(counter.statements)
    assert transactions and transactions[0][0] == "BEGIN IMMEDIATE"
