"""Participants only: every role against every other user's thread, message and attachment."""

import uuid

import pytest
from sqlalchemy import delete, select
from werkzeug.exceptions import NotFound

from portal.accounts.models import Assignment
from portal.errors import RuleError
from portal.messaging import access, reading, sending
from portal.messaging.models import Attachment, Message
from tests.messaging.conftest import PNG, csrf_token, make_user


@pytest.fixture
def world(db, people):
    """Three threads: A with X, A with Y, B with Y; each with an attachment."""
    outsider = make_user("therapist", "Otto Outside")
    threads = {}
    for name, client, therapist in (("a_x", people.client_a, people.therapist_x),
                                    ("a_y", people.client_a, people.therapist_y),
                                    ("b_y", people.client_b, people.therapist_y)):
        thread, message = sending.start_thread(
            client, counterpart_id=therapist.id, subject=f"Subject {name}", body=f"Body {name}",
            files=[(f"{name}.png", PNG)], notify=False)
        attachment = db.session.scalars(
            select(Attachment).where(Attachment.message_id == message.id)).one()
        threads[name] = (thread.id, message.id, attachment.id)
    users = {"client_a": people.client_a, "client_b": people.client_b,
             "therapist_x": people.therapist_x, "therapist_y": people.therapist_y,
             "admin": people.admin, "outsider": outsider}
    allowed = {"a_x": {"client_a", "therapist_x"}, "a_y": {"client_a", "therapist_y"},
               "b_y": {"client_b", "therapist_y"}}
    return users, threads, allowed


def _pairs(world):
    users, threads, allowed = world
    for user_name in users:
        for thread_name in threads:
            yield user_name, thread_name, user_name in allowed[thread_name]


def test_loaders_admit_participants_only(app, db, world):
    users, threads, _ = world
    for user_name, thread_name, ok in _pairs(world):
        user = users[user_name]
        thread_id, message_id, attachment_id = threads[thread_name]
        loaders = [(access.thread_for, thread_id, {}),
                   (access.thread_for, thread_id, {"write": True}),
                   (access.message_for, message_id, {}),
                   (access.attachment_for, attachment_id, {})]
        for load, object_id, options in loaders:
            if ok:
                assert load(user, object_id, **options) is not None
            else:
                with pytest.raises(NotFound):
                    load(user, object_id, **options)
        db.session.rollback()


def test_unknown_ids_are_404_for_everyone(app, db, world):
    users, _, _ = world
    for user in users.values():
        for load in (access.thread_for, access.message_for, access.attachment_for):
            with pytest.raises(NotFound):
                load(user, uuid.uuid4())
        with pytest.raises(NotFound):
            access.thread_for(user, "not-a-uuid")


def test_every_page_of_someone_elses_thread_is_404(app, db, world, login):
    users, threads, _ = world
    signed_in = {name: login(user) for name, user in users.items()}
    for user_name, thread_name, ok in _pairs(world):
        client = signed_in[user_name]
        thread_id, message_id, attachment_id = threads[thread_name]
        token = csrf_token(client)
        responses = {
            "thread": client.get(f"/messages/{thread_id}"),
            "older": client.get(f"/messages/{thread_id}?before={message_id}"),
            "attachment": client.get(f"/messages/attachments/{attachment_id}"),
            "reply": client.post(f"/messages/{thread_id}/reply",
                                 data={"csrf_token": token, "body": "hello"}),
            "close": client.post(f"/messages/{thread_id}/close", data={"csrf_token": token}),
        }
        for what, response in responses.items():
            if not ok:
                assert response.status_code == 404, (user_name, thread_name, what)
            elif what in ("thread", "older", "attachment"):
                assert response.status_code == 200, (user_name, thread_name, what)
    # Nobody outside a thread left a message in it.
    for name in ("admin", "outsider"):
        assert not db.session.scalars(select(Message).where(
            Message.sender_id == users[name].id)).all()


def test_a_message_id_from_another_thread_is_404(app, db, world, login):
    users, threads, _ = world
    client = login(users["client_a"])
    other_message = threads["b_y"][1]
    assert client.get(f"/messages/{threads['a_x'][0]}?before={other_message}"
                      ).status_code == 404
    assert client.get(f"/messages/{threads['a_x'][0]}?before=nonsense").status_code == 404


def test_therapist_loses_access_when_unassigned(app, db, world, people):
    _, threads, _ = world
    thread_id = threads["a_x"][0]
    assert access.thread_for(people.therapist_x, thread_id)
    db.session.execute(delete(Assignment).where(
        Assignment.client_id == people.client_a.id,
        Assignment.therapist_id == people.therapist_x.id))
    db.session.commit()
    with pytest.raises(NotFound):
        access.thread_for(people.therapist_x, thread_id)
    # The client still reads the history but can no longer write to that therapist.
    page = reading.view_thread(people.client_a, access.thread_access(people.client_a,
                                                                     thread_id))
    assert not page.can_reply and "no longer assigned" in page.reply_note
    with pytest.raises(RuleError):
        sending.reply(people.client_a, thread_id, body="hello?", notify=False)


def test_inactive_users_see_nothing(app, db, world, people):
    _, threads, _ = world
    people.client_a.active = False
    db.session.commit()
    with pytest.raises(NotFound):
        access.thread_for(people.client_a, threads["a_x"][0])


def test_role_pages_are_404_for_other_roles(app, db, people, login):
    pages = {"/messages": {"client"}, "/account/access-log": {"client"},
             "/messages/new": {"client", "therapist"}, "/dashboard": {"therapist"},
             "/emergency-access": {"admin"}}
    for user in (people.client_a, people.therapist_x, people.admin):
        client = login(user)
        for path, roles in pages.items():
            expected = 200 if user.role in roles else 404
            assert client.get(path).status_code == expected, (user.role, path)


def test_signed_out_visitors_are_sent_to_sign_in(app, db, world):
    _, threads, _ = world
    client = app.test_client()
    thread_id, _, attachment_id = threads["a_x"]
    for path in (f"/messages/{thread_id}", f"/messages/attachments/{attachment_id}",
                 "/messages", "/dashboard", "/account/access-log"):
        response = client.get(path)
        assert response.status_code == 302 and "/sign-in" in response.headers["Location"]
