"""Drafts of a new message and a reply: saved as typed, sealed, restored, discarded, purged."""

import io
from datetime import timedelta

import pytest
from sqlalchemy import inspect, select, text
from werkzeug.exceptions import NotFound

from portal import hooks
from portal.db import utcnow
from portal.mail.cli import run_worker_tasks
from portal.messaging import drafts, sending
from portal.messaging.models import Draft
from tests.messaging.conftest import csrf_token

MARKER = "QZV-draft-marker-4417"


def _thread(people):
    thread, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                     subject="Moving Thursday", body="Could we move it?",
                                     notify=False)
    return thread


def _rows(db):
    db.session.expire_all()
    return db.session.scalars(select(Draft)).all()


def _save(client, form_key, fields, *, token=None, page="/account"):
    token = token if token is not None else csrf_token(client, page)
    return client.post(f"/drafts/{form_key}", data=fields,
                       headers={"X-CSRFToken": token, "X-Requested-With": "fetch"})


# --- the service ---------------------------------------------------------------------------

def test_a_draft_is_sealed_at_rest_and_reads_back(app, db, people):
    drafts.save(people.client_a, "compose", {"recipient": str(people.therapist_x.id),
                                             "subject": f"Subject {MARKER}",
                                             "body": f"Body {MARKER}\r\nsecond line"})
    assert drafts.load(people.client_a, "compose") == {
        "recipient": str(people.therapist_x.id), "subject": f"Subject {MARKER}",
        "body": f"Body {MARKER}\nsecond line"}
    db.session.commit()  # on SQLite the open read would hold the writer lock
    with db.engine.connect() as connection:
        raw = connection.execute(text("SELECT content_sealed FROM drafts")).scalar_one()
        assert MARKER.encode() not in bytes(raw)
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')).all():  # noqa: S608
                for value in row:
                    data = bytes(value) if isinstance(value, bytes | memoryview) else (
                        str(value).encode())
                    assert MARKER.encode() not in data, table
    (row,) = _rows(db)
    assert row.owner_id == people.client_a.id and row.author_id == people.client_a.id
    assert MARKER not in repr(row)


def test_a_therapists_reply_draft_is_sealed_under_the_client(app, db, people):
    thread = _thread(people)
    drafts.save(people.therapist_x, f"reply:{thread.id}", {"body": "I can do Friday."})
    (row,) = _rows(db)
    assert row.author_id == people.therapist_x.id
    assert row.owner_id == people.client_a.id
    assert drafts.load(people.therapist_x, f"reply:{thread.id}") == {"body": "I can do Friday."}
    assert drafts.load(people.client_a, f"reply:{thread.id}") is None  # only its author's


def test_a_therapists_new_message_is_sealed_under_the_chosen_client(app, db, people):
    drafts.save(people.therapist_y, "compose", {"recipient": "", "body": "Hello"})
    assert _rows(db)[0].owner_id == people.therapist_y.id  # nobody chosen yet
    drafts.save(people.therapist_y, "compose", {"recipient": str(people.client_b.id),
                                                "body": "Hello Blake"})
    (row,) = _rows(db)
    assert row.owner_id == people.client_b.id
    # Someone who is not their client is not kept as the recipient.
    drafts.save(people.therapist_x, "compose", {"recipient": str(people.client_b.id),
                                                "body": "Hi"})
    assert drafts.load(people.therapist_x, "compose") == {"body": "Hi"}


def test_saving_again_replaces_the_draft_and_blank_fields_delete_it(app, db, people):
    drafts.save(people.client_a, "compose", {"subject": "One", "body": "first"})
    drafts.save(people.client_a, "compose", {"subject": "One", "body": "second"})
    assert len(_rows(db)) == 1
    assert drafts.load(people.client_a, "compose")["body"] == "second"
    assert drafts.save(people.client_a, "compose", {"subject": " ", "body": "\n"}) is False
    assert _rows(db) == []


def test_someone_elses_thread_is_a_404_and_nothing_is_kept(app, db, people):
    thread = _thread(people)
    with pytest.raises(NotFound):
        drafts.save(people.client_b, f"reply:{thread.id}", {"body": "not mine"})
    with pytest.raises(NotFound):
        drafts.save(people.admin, f"reply:{thread.id}", {"body": "admins never write"})
    with pytest.raises(NotFound):
        drafts.save(people.admin, "compose", {"body": "nor start conversations"})
    for key in ("reply:not-a-uuid", "estimate:", "other", "reply:" + "0" * 36):
        with pytest.raises(NotFound):
            drafts.save(people.client_a, key, {"body": "x"})
    assert _rows(db) == []


def test_a_draft_longer_than_a_message_is_refused(app, db, people):
    limit = app.config["MESSAGE_MAX_CHARS"]
    drafts.save(people.client_a, "compose", {"body": "x" * limit})
    with pytest.raises(drafts.DraftTooLarge):
        drafts.save(people.client_a, "compose", {"body": "y" * (limit + 1)})
    assert drafts.load(people.client_a, "compose") == {"body": "x" * limit}  # the old one stays


def test_drafts_older_than_thirty_days_are_purged(app, db, people):
    assert app.config["DRAFT_DAYS"] == 30
    thread = _thread(people)
    drafts.save(people.client_a, "compose", {"body": "old"})
    drafts.save(people.client_a, f"reply:{thread.id}", {"body": "recent"})
    old, recent = sorted(_rows(db), key=lambda d: d.form_key)
    now = utcnow()
    old.updated_at = now - timedelta(days=30, minutes=1)
    recent.updated_at = now - timedelta(days=29, hours=23)
    db.session.commit()
    assert drafts.purge_old(now=now) == 1
    assert [d.form_key for d in _rows(db)] == [f"reply:{thread.id}"]
    assert drafts.purge_old(now=now) == 0
    assert drafts.purge_old(now=now + timedelta(days=1)) == 1
    assert _rows(db) == []


def test_the_deliver_mail_loop_purges_drafts(app, db, people):
    assert "draft purge" in {task.name for task in hooks.worker_tasks}
    drafts.save(people.client_a, "compose", {"body": "forgotten"})
    (row,) = _rows(db)
    row.updated_at = utcnow() - timedelta(days=31)
    db.session.commit()
    assert run_worker_tasks()["draft purge"] == 1
    assert _rows(db) == []


# --- the routes ----------------------------------------------------------------------------

def test_the_save_route_keeps_the_typed_fields(app, db, people, login):
    alex = login(people.client_a)
    response = _save(alex, "compose", {"recipient": str(people.therapist_x.id),
                                       "subject": "Thursday", "body": "Hi Colleen",
                                       "unknown": "dropped"})
    assert response.status_code == 204
    assert drafts.load(people.client_a, "compose") == {
        "recipient": str(people.therapist_x.id), "subject": "Thursday", "body": "Hi Colleen"}


def test_a_beacon_with_the_token_in_its_body_is_accepted(app, db, people, login):
    alex = login(people.client_a)
    token = csrf_token(alex)
    response = alex.post("/drafts/compose", data={"csrf_token": token, "body": "leaving"})
    assert response.status_code == 204
    assert drafts.load(people.client_a, "compose") == {"body": "leaving"}


def test_the_save_route_refuses_a_missing_or_wrong_csrf_token(app, db, people, login):
    alex = login(people.client_a)
    assert alex.post("/drafts/compose", data={"body": "no token"}).status_code == 400
    assert _save(alex, "compose", {"body": "wrong"}, token="nope").status_code == 400
    assert _rows(db) == []


def test_the_save_route_answers_404_for_someone_elses_thread(app, db, people, login):
    thread = _thread(people)
    blake = login(people.client_b)
    assert _save(blake, f"reply:{thread.id}", {"body": "not mine"}).status_code == 404
    assert _save(blake, "reply:nonsense", {"body": "x"}).status_code == 404
    assert _rows(db) == []


def test_the_save_route_answers_413_for_too_much_text(app, db, people, login):
    alex = login(people.client_a)
    too_long = "x" * (app.config["MESSAGE_MAX_CHARS"] + 1)
    assert _save(alex, "compose", {"body": too_long}).status_code == 413
    assert _rows(db) == []


def test_signed_out_nothing_is_saved(app, db, people, client):
    response = client.post("/drafts/compose", data={"body": "who?"})
    assert response.status_code in (302, 400)
    assert _rows(db) == []


def test_the_reply_box_comes_back_with_the_draft(app, db, people, login):
    thread = _thread(people)
    colleen = login(people.therapist_x)
    assert _save(colleen, f"reply:{thread.id}", {"body": "Friday <b>works</b>"}).status_code == 204
    page = colleen.get(f"/messages/{thread.id}").get_data(as_text=True)
    assert "Friday &lt;b&gt;works&lt;/b&gt;</textarea>" in page
    assert "Draft restored" in page
    assert f'action="/drafts/reply:{thread.id}/discard"' in page
    assert f'data-draft-url="/drafts/reply:{thread.id}"' in page
    # The client's page of the same conversation shows nothing of it.
    alex_page = login(people.client_a).get(f"/messages/{thread.id}").get_data(as_text=True)
    assert "Friday" not in alex_page and "Draft restored" not in alex_page


def test_the_compose_page_comes_back_with_the_draft(app, db, people, login):
    alex = login(people.client_a)
    empty = alex.get("/messages/new").get_data(as_text=True)
    assert "Draft restored" not in empty
    assert 'data-draft-url="/drafts/compose"' in empty
    _save(alex, "compose", {"recipient": str(people.therapist_y.id), "subject": "Moving",
                            "body": "Could we move Thursday?"})
    page = alex.get("/messages/new").get_data(as_text=True)
    assert "Draft restored" in page
    assert 'value="Moving"' in page
    assert "Could we move Thursday?</textarea>" in page
    assert f'<option selected value="{people.therapist_y.id}">' in page


def test_discarding_empties_the_form(app, db, people, login):
    thread = _thread(people)
    alex = login(people.client_a)
    _save(alex, f"reply:{thread.id}", {"body": "never mind"})
    token = csrf_token(alex, f"/messages/{thread.id}")
    response = alex.post(f"/drafts/reply:{thread.id}/discard", data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"/messages/{thread.id}")
    page = alex.get(response.headers["Location"]).get_data(as_text=True)
    assert "never mind" not in page and "The draft was discarded." in page
    assert _rows(db) == []
    # Without a token, nothing is thrown away.
    _save(alex, "compose", {"body": "keep me"})
    assert alex.post("/drafts/compose/discard").status_code == 400
    assert drafts.load(people.client_a, "compose") == {"body": "keep me"}
    assert alex.post("/drafts/compose/discard", headers={
        "X-CSRFToken": token, "X-Requested-With": "fetch"}).status_code == 204
    assert _rows(db) == []


def test_sending_deletes_the_draft(app, db, people, login):
    alex = login(people.client_a)
    _save(alex, "compose", {"subject": "Moving", "body": "Could we move Thursday?"})
    data = {"csrf_token": csrf_token(alex, "/messages/new"),
            "recipient": str(people.therapist_x.id), "subject": "Moving",
            "body": "Could we move Thursday?", "attachments": [(io.BytesIO(b""), "")]}
    response = alex.post("/messages/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    assert _rows(db) == []

    thread = db.session.scalars(select(sending.Thread)).one()
    colleen = login(people.therapist_x)
    _save(colleen, f"reply:{thread.id}", {"body": "Yes, Friday."})
    data = {"csrf_token": csrf_token(colleen, f"/messages/{thread.id}"), "body": "Yes, Friday."}
    assert colleen.post(f"/messages/{thread.id}/reply", data=data,
                        content_type="multipart/form-data").status_code == 302
    assert _rows(db) == []
    assert "Yes, Friday.</textarea>" not in colleen.get(f"/messages/{thread.id}").get_data(
        as_text=True)


def test_a_refused_send_keeps_the_draft(app, db, people, login):
    thread = _thread(people)
    alex = login(people.client_a)
    _save(alex, f"reply:{thread.id}", {"body": "half written"})
    data = {"csrf_token": csrf_token(alex, f"/messages/{thread.id}"), "body": "  "}
    assert alex.post(f"/messages/{thread.id}/reply", data=data,
                     content_type="multipart/form-data").status_code == 422
    assert drafts.load(people.client_a, f"reply:{thread.id}") == {"body": "half written"}


def test_sign_in_returns_to_the_form_and_only_to_a_local_path(app, db, people, login, client):
    thread = _thread(people)
    alex = login(people.client_a)
    # An idle tab whose session another tab kept alive goes straight back to its page.
    response = alex.get(f"/sign-in?reason=idle&next=/messages/{thread.id}")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/messages/{thread.id}"
    for elsewhere in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = alex.get("/sign-in", query_string={"reason": "idle", "next": elsewhere})
        assert response.headers["Location"] == "/"
    # Signed out, the sign-in form carries the way back (and only a local one).
    page = client.get(f"/sign-in?reason=idle&next=/messages/{thread.id}").get_data(as_text=True)
    assert f'value="/messages/{thread.id}"' in page
    page = client.get("/sign-in?reason=idle&next=//evil.example/").get_data(as_text=True)
    assert "evil.example" not in page
