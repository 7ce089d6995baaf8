"""Each page's SQL statement count stays flat as conversations and messages grow (5 vs 50)."""

from datetime import timedelta

import pytest

from portal.accounts import sessions
from portal.accounts.identity import set_identity
from portal.accounts.models import Assignment, Role, User
from portal.db import new_id
from portal.messaging import sending
from tests.messaging.conftest import StatementCounter, csrf_token
from tests.support.people import make_user, unique_email


def _world(db, size: int) -> dict:
    """A client with `size` conversations, a therapist with `size` clients, and a thread of
    `size` messages."""
    client = make_user("client", f"Client of {size}")
    therapist = make_user("therapist", f"Therapist of {size}")
    others = []
    for number in range(size - 1):
        other = User(id=new_id(), role=Role.CLIENT, mfa_prompt_dismissed=True)
        set_identity(other, name=f"Person {number} of {size}", email=unique_email("bulk"))
        db.session.add(other)
        others.append(other)
    db.session.add_all([Assignment(client_id=c.id, therapist_id=therapist.id)
                        for c in [client, *others]])
    db.session.commit()
    threads = []
    for number in range(size):
        thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                         subject=f"Topic {number}", body="hello", notify=False)
        threads.append(thread.id)
    for other in others:
        sending.start_thread(other, counterpart_id=therapist.id, subject="Hi", body="hi",
                             notify=False)
    for number in range(size - 1):
        sender = therapist if number % 3 else client
        sending.reply(sender, threads[0], body=f"message {number}", notify=False)
    sending.reply(therapist, threads[1], body="unread by the client", notify=False)
    return {"client": client, "therapist": therapist, "thread": threads[0]}


def _count(app, client, path: str, form: dict | None = None) -> int:
    """Count one GET of `path`, or (with `form`) one POST of the form and a CSRF token."""
    def request():
        if form is None:
            return client.get(path)
        return client.post(path, data={"csrf_token": csrf_token(client, path), **form})
    assert request().status_code == 200  # warm: first-request work is not counted
    from portal.extensions import db
    if form is not None:
        form = {"csrf_token": csrf_token(client, path), **form}  # read outside the count
    with StatementCounter(db.engine) as counter:
        response = client.get(path) if form is None else client.post(path, data=form)
    assert response.status_code == 200, path
    return counter.count


@pytest.mark.slow
def test_pages_do_not_grow_with_the_data(app, db, login, monkeypatch):
    monkeypatch.setattr(sessions, "TOUCH_EVERY", timedelta(hours=1))
    counts = {}
    for size in (5, 50):
        world = _world(db, size)
        client, therapist = login(world["client"]), login(world["therapist"])
        counts[size] = {
            "inbox": _count(app, client, "/messages"),
            "thread (client)": _count(app, client, f"/messages/{world['thread']}"),
            "thread (therapist)": _count(app, therapist, f"/messages/{world['thread']}"),
            "dashboard": _count(app, therapist, "/dashboard"),
            "dashboard search": _count(app, therapist, "/dashboard", {"q": "person 1"}),
            "dashboard unread": _count(app, therapist, "/dashboard?show=unread&page=2"),
            "access log": _count(app, client, "/account/access-log"),
            "new message": _count(app, client, "/messages/new"),
        }
    print("statement counts:", counts)
    assert counts[5] == counts[50], counts
    assert max(counts[50].values()) <= 30, counts[50]
