"""The messaging pages: inbox, new conversation, thread, reply, receipts, close, dashboard."""

import io
import re

from sqlalchemy import func, select

from portal.mail import OutboxMessage
from portal.messaging import sending
from portal.messaging.models import Attachment, Message, Thread
from tests.messaging.conftest import PDF, PNG, csrf_token


def _compose(client, to, subject="Moving Thursday", body="Could we move our session?",
             files=()):
    data = {"csrf_token": csrf_token(client, "/messages/new"), "recipient": str(to.id),
            "subject": subject, "body": body,
            "attachments": [(io.BytesIO(content), name) for name, content in files]}
    return client.post("/messages/new", data=data, content_type="multipart/form-data")


def _reply(client, thread_id, body, files=()):
    data = {"csrf_token": csrf_token(client, f"/messages/{thread_id}"), "body": body,
            "attachments": [(io.BytesIO(content), name) for name, content in files]}
    return client.post(f"/messages/{thread_id}/reply", data=data,
                       content_type="multipart/form-data")


def _only_thread(db):
    return db.session.scalars(select(Thread)).one()


def test_client_writes_and_the_therapist_replies(app, db, people, login):
    alex = login(people.client_a)
    response = _compose(alex, people.therapist_x, files=[("notes.pdf", PDF)])
    assert response.status_code == 302
    thread = _only_thread(db)
    page = alex.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your message was sent." in page
    assert "Could we move our session?" in page
    assert "notes.pdf" in page
    assert "<strong>Sent to Colleen</strong> · not read yet" in page  # beside the message

    colleen = login(people.therapist_x)
    dashboard = colleen.get("/dashboard").get_data(as_text=True)
    assert "Alex Rivera" in dashboard and "Moving Thursday" in dashboard
    assert re.search(r'<span class="pill">1</span>', dashboard)
    opened = colleen.get(f"/messages/{thread.id}").get_data(as_text=True)
    assert "Could we move our session?" in opened
    assert _reply(colleen, thread.id, "Friday at 10 works.").status_code == 302

    inbox = alex.get("/messages").get_data(as_text=True)
    assert "thread-list__item--unread" in inbox
    page = alex.get(f"/messages/{thread.id}").get_data(as_text=True)
    assert "Friday at 10 works." in page
    assert "Read by your therapist, " in page


def test_unread_badge_counts_unread_messages(app, db, people, login):
    alex = login(people.client_a)
    _compose(alex, people.therapist_x)
    thread = _only_thread(db)
    colleen = login(people.therapist_x)
    html = colleen.get("/account").get_data(as_text=True)
    assert re.search(r'Home <span class="pill">1<span class="visually-hidden"> unread', html)
    colleen.get(f"/messages/{thread.id}")
    html = colleen.get("/account").get_data(as_text=True)
    assert 'Home <span class="pill">' not in html


def test_message_text_is_escaped_and_keeps_line_breaks(app, db, people, login):
    alex = login(people.client_a)
    body = "line one\n<script>alert('x')</script>\nhttps://example.org/<b>"
    _compose(alex, people.therapist_x, body=body)
    html = alex.get(f"/messages/{_only_thread(db).id}").get_data(as_text=True)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "line one\n&lt;script&gt;" in html
    assert '<a href="https://example.org' not in html


def test_too_long_message_is_refused_with_the_text_kept(app, db, people, login):
    alex = login(people.client_a)
    body = "a" * 5001
    response = _compose(alex, people.therapist_x, body=body)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "1 characters too long" in html or "is 1 character" in html
    assert body in html  # nothing lost
    assert db.session.scalar(select(func.count()).select_from(Message)) == 0


def test_refused_file_is_named_and_the_text_is_kept(app, db, people, login):
    alex = login(people.client_a)
    response = _compose(alex, people.therapist_x, body="Here are my forms",
                        files=[("form.pdf", PDF), ("setup.pdf", b"MZ\x90\x00" + bytes(200))])
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "“setup.pdf” was not attached: it is not a type we accept" in html
    assert "choose “form.pdf” again" in html
    assert "Here are my forms" in html
    assert db.session.scalar(select(func.count()).select_from(Message)) == 0


def test_reply_problem_keeps_the_text_on_the_thread_page(app, db, people, login):
    alex = login(people.client_a)
    _compose(alex, people.therapist_x)
    thread = _only_thread(db)
    response = _reply(alex, thread.id, "Still here", files=[("empty.txt", b"")])
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "“empty.txt” was not attached: it is empty." in html
    assert "Still here</textarea>" in html


def test_new_conversation_with_someone_not_assigned_is_refused(app, db, people, login):
    blake = login(people.client_b)
    response = _compose(blake, people.therapist_x)
    assert response.status_code == 422
    assert "Choose someone from the list." in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Thread)) == 0


def test_therapist_closes_and_a_client_reply_reopens(app, db, people, login):
    alex = login(people.client_a)
    _compose(alex, people.therapist_x)
    thread = _only_thread(db)
    colleen = login(people.therapist_x)
    token = csrf_token(colleen, f"/messages/{thread.id}")
    assert colleen.post(f"/messages/{thread.id}/close",
                        data={"csrf_token": token}).status_code == 302
    db.session.expire_all()
    assert _only_thread(db).is_closed
    assert "closed by your therapist" in alex.get(f"/messages/{thread.id}").get_data(
        as_text=True)
    token = csrf_token(alex, f"/messages/{thread.id}")
    assert alex.post(f"/messages/{thread.id}/close", data={"csrf_token": token}
                     ).status_code == 404
    _reply(alex, thread.id, "One more thing")
    db.session.expire_all()
    assert not _only_thread(db).is_closed


def test_thread_shows_the_newest_fifty_then_older_messages(app, db, people, login):
    thread, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                     subject="Long one", body="message 0", notify=False)
    for number in range(1, 60):
        sending.reply(people.client_a, thread.id, body=f"message {number}", notify=False)
    alex = login(people.client_a)
    html = alex.get(f"/messages/{thread.id}").get_data(as_text=True)
    assert html.count('class="message__body"') == 50
    assert "message 59<" in html and ">message 9<" not in html
    older = re.search(r'href="(/messages/[^"]+\?before=[^"]+)"', html).group(1)
    html = alex.get(older.replace("&amp;", "&")).get_data(as_text=True)
    assert html.count('class="message__body"') == 10
    assert ">message 0<" in html and ">message 9<" in html and ">message 10<" not in html
    assert "Back to the newest messages" in html


def test_unreadable_message_shows_a_notice_not_an_error(app, db, people, login):
    thread, message = sending.start_thread(people.client_a,
                                           counterpart_id=people.therapist_x.id,
                                           subject="Hello", body="secret words", notify=False)
    row = db.session.get(Message, message.id)
    row.body_sealed = row.body_sealed[:-1] + bytes([row.body_sealed[-1] ^ 1])
    db.session.commit()
    alex = login(people.client_a)
    response = alex.get(f"/messages/{thread.id}")
    assert response.status_code == 200
    assert "This item could not be decrypted." in response.get_data(as_text=True)
    from portal.audit.models import AuditEvent
    db.session.expire_all()
    failure = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "crypto.decrypt_failure")).one()
    assert failure.target_id == str(message.id) and failure.severity == "high"


def test_unreadable_attachment_download_is_not_a_500(app, db, people, login):
    sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                         subject="Hello", body="file", files=[("a.png", PNG)], notify=False)
    attachment = db.session.scalars(select(Attachment)).one()
    attachment.content_sealed = b"\x01" + bytes(60)  # names a data key that does not exist
    db.session.commit()
    response = login(people.client_a).get(f"/messages/attachments/{attachment.id}")
    assert response.status_code == 422
    assert "could not be decrypted" in response.get_data(as_text=True)


def test_download_headers(app, db, people, login):
    sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                         subject="Hello", body="file",
                         files=[("Zoë's scan.png", PNG), ("notes.txt", b"plain notes\n")],
                         notify=False)
    attachments = {a.kind: a for a in db.session.scalars(select(Attachment))}
    colleen = login(people.therapist_x)
    response = colleen.get(f"/messages/attachments/{attachments['png'].id}")
    assert response.status_code == 200
    assert response.data == PNG
    headers = response.headers
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Disposition"] == (
        "attachment; filename=\"Zoe_s scan.png\"; filename*=UTF-8''Zo%C3%AB%27s%20scan.png")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"].endswith("frame-ancestors 'none'; sandbox")
    assert "no-store" in headers["Cache-Control"]
    text = colleen.get(f"/messages/attachments/{attachments['txt'].id}")
    assert text.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_no_route_edits_or_deletes_a_message(app):
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("messaging."):
            assert rule.methods <= {"GET", "HEAD", "OPTIONS", "POST"}, rule
            assert not re.search(r"edit|delete|remove", rule.rule), rule
            checked += 1
    assert checked >= 8, f"only {checked} messaging routes: is the blueprint registered?"


def test_page_titles_and_emails_say_nothing_about_therapy(app, db, people, login):
    alex = login(people.client_a)
    _compose(alex, people.therapist_x, subject="Therapy homework", body="About therapy")
    thread = _only_thread(db)
    colleen = login(people.therapist_x)
    pages = [alex.get("/messages"), alex.get("/messages/new"), alex.get(f"/messages/{thread.id}"),
             alex.get("/account/access-log"), colleen.get("/dashboard"),
             colleen.get(f"/messages/{thread.id}")]
    for response in pages:
        title = re.search(r"<title>(.*?)</title>", response.get_data(as_text=True), re.S)
        assert title and "therap" not in title.group(1).lower(), title.group(1)
    for row in db.session.scalars(select(OutboxMessage)):
        assert "therap" not in row.subject.lower()


def test_dashboard_orders_crisis_then_longest_waiting(app, db, people, login):
    import time_machine

    from portal.db import utcnow
    from tests.messaging.conftest import assign, make_user

    colleen = people.therapist_x
    clients = [make_user("client", name) for name in ("Ann Early", "Ben Later", "Cy Crisis",
                                                      "Di Answered")]
    for client in clients:
        assign(client, colleen)
    start = utcnow()
    threads = {}
    for minutes, client, text in ((0, clients[0], "first"), (10, clients[1], "second"),
                                  (20, clients[2], "I want to die"),
                                  (30, clients[3], "answered")):
        with time_machine.travel(start.timestamp() + minutes * 60, tick=False):
            threads[client.id], _ = sending.start_thread(
                client, counterpart_id=colleen.id, subject=f"From {text}", body=text,
                notify=False)
    sending.reply(colleen, threads[clients[3].id].id, body="Thanks", notify=False)
    html = login(colleen).get("/dashboard").get_data(as_text=True)
    order = [name for name in ("Cy Crisis", "Ann Early", "Ben Later", "Di Answered")
             if name in html]
    positions = [html.index(name) for name in order]
    assert positions == sorted(positions), order
    assert html.count("badge--crisis") >= 1
    awaiting = login(colleen).get("/dashboard?show=awaiting").get_data(as_text=True)
    assert "Di Answered" not in awaiting and "Ann Early" in awaiting
    searching = login(colleen)
    found = searching.post("/dashboard", data={"csrf_token": csrf_token(searching, "/dashboard"),
                                               "q": "ben"}).get_data(as_text=True)
    assert "Ben Later" in found and "Ann Early" not in found
