"""Names open in the application only: one query for many, unreadable ones say so."""

from sqlalchemy import update

from portal.accounts.identity import UNREADABLE_NAME, names_by_id, names_of
from portal.accounts.models import User
from portal.db import new_id
from tests.messaging.conftest import StatementCounter, make_user


def test_names_by_id_opens_many_names_with_two_queries(app, db):
    ids = [make_user("client", f"Person {n}").id for n in range(6)]
    from flask import g

    from portal.crypto import forget_keys
    g.pop("identity_cache", None)
    forget_keys()
    with StatementCounter(db.engine) as counter:
        names = names_by_id(ids)
    assert names == {i: f"Person {n}" for n, i in enumerate(ids)}
    assert len([s for s in counter.statements if s.startswith("SELECT")]) == 2  # names, keys


def test_names_by_id_agrees_with_names_of_and_skips_unknown_ids(app, db):
    person = make_user("therapist", "Colleen Xu")
    missing = new_id()
    assert names_by_id([person.id, missing]) == {person.id: "Colleen Xu"}
    assert names_of([person]) == {person.id: "Colleen Xu"}


def test_a_name_that_will_not_open_says_so(app, db):
    person = make_user("client", "Blake Sun")
    other = make_user("client", "Alex Rivera")
    db.session.execute(update(User).where(User.id == person.id)
                       .values(name_sealed=other.name_sealed))  # sealed for someone else
    db.session.commit()
    from flask import g
    g.pop("identity_cache", None)
    assert names_by_id([person.id, other.id]) == {person.id: UNREADABLE_NAME,
                                                   other.id: "Alex Rivera"}


def test_names_by_id_takes_any_iterable_of_cached_and_new_ids(app, db):
    first, second = make_user("client", "Alex Rivera"), make_user("client", "Blake Sun")
    names_of([first])  # cached for this request
    ids = (i for i in (first.id, second.id, first.id))  # a generator, with a repeat
    assert names_by_id(ids) == {first.id: "Alex Rivera", second.id: "Blake Sun"}
