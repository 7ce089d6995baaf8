"""Writing to the practice: a client with no therapist writes to the covering clinicians, who
all see it and may answer; nobody else may; with nobody covering, the pages say so honestly."""

from sqlalchemy import select

from portal.accounts import service as accounts
from portal.messaging import escalation, sending
from portal.messaging.models import Thread
from tests.messaging.conftest import csrf_token, make_user
from tests.support.outbox import outbox

PHONE, EMAIL = "(215) 360-3308", "team@coeocommunity.com"
FALSE_PHRASES = ("There is nobody to write to yet", "your current therapist")


def _covering(people, *therapists):
    for therapist in therapists:
        accounts.set_covering(people.admin, therapist, True)


def _write(client, subject="Finding a therapist", body="Hello, I am new here."):
    return sending.start_thread(client, to_practice=True, subject=subject, body=body)


def test_a_client_with_no_therapist_writes_to_the_practice_page(app, db, people, login):
    _covering(people, people.therapist_x, people.therapist_y)
    newcomer = make_user("client", "Nova Lee")
    browser = login(newcomer)
    page = browser.get("/messages/new").get_data(as_text=True)
    assert "The practice" in page and 'value="practice"' in page
    for phrase in FALSE_PHRASES:
        assert phrase not in page
    token = csrf_token(browser, "/messages/new")
    sent = browser.post("/messages/new", data={"csrf_token": token, "recipient": "practice",
                                              "subject": "Getting started",
                                              "body": "Could someone call me?"})
    assert sent.status_code == 302
    thread = db.session.scalars(select(Thread).where(Thread.client_id == newcomer.id)).one()
    assert thread.to_practice and thread.therapist_id == people.therapist_x.id
    html = browser.get(sent.headers["Location"]).get_data(as_text=True)
    assert "With the practice" in html
    inbox = browser.get("/messages").get_data(as_text=True)
    assert "With the practice" in inbox and "New message" in inbox


def test_every_covering_clinician_is_told_and_sees_it(app, db, people, login):
    _covering(people, people.therapist_x, people.therapist_y)
    newcomer = make_user("client", "Nova Lee")
    thread, _ = _write(newcomer)
    told = {row.user_id for row in outbox("new_message")}
    assert told == {people.therapist_x.id, people.therapist_y.id}
    for therapist in (people.therapist_x, people.therapist_y):
        browser = login(therapist)
        dashboard = browser.get("/dashboard").get_data(as_text=True)
        assert f"/messages/{thread.id}" in dashboard and "Written to the practice" in dashboard
        assert "Nova Lee" in dashboard
        assert browser.get(f"/messages/{thread.id}").status_code == 200


def test_no_other_therapist_and_no_administrator_reads_it(app, db, people, login):
    _covering(people, people.therapist_x)
    outsider = make_user("therapist", "Pat Other")
    thread, _ = _write(make_user("client", "Nova Lee"))
    browser = login(outsider)
    assert browser.get(f"/messages/{thread.id}").status_code == 404
    assert f"/messages/{thread.id}" not in browser.get("/dashboard").get_data(as_text=True)
    assert login(people.admin).get(f"/messages/{thread.id}").status_code == 404


def test_a_covering_clinician_answers_and_the_client_replies(app, db, people, login):
    _covering(people, people.therapist_x, people.therapist_y)
    newcomer = make_user("client", "Nova Lee")
    thread, _ = _write(newcomer)
    sending.reply(people.therapist_y, thread.id, body="Hello Nova, I can call you at 4.")
    html = login(newcomer).get(f"/messages/{thread.id}").get_data(as_text=True)
    assert "Kristen Young" in html and "I can call you at 4" in html
    assert "<textarea" in html  # the client may answer
    for phrase in FALSE_PHRASES:
        assert phrase not in html
    sending.reply(newcomer, thread.id, body="4 works, thank you.")
    db.session.expire_all()
    assert db.session.get(Thread, thread.id).message_count == 3


def test_a_flagged_message_to_the_practice_is_urgent_for_everyone_covering(app, db, people):
    _covering(people, people.therapist_x, people.therapist_y)
    thread, _ = _write(make_user("client", "Nova Lee"), body="I want to die")
    urgent = {row.user_id for row in outbox("urgent_message")}
    assert urgent == {people.therapist_x.id, people.therapist_y.id}
    assert escalation.acknowledge(people.therapist_y, thread.id)


def test_a_client_with_a_therapist_cannot_write_to_the_practice(app, db, people):
    _covering(people, people.therapist_x)
    try:
        _write(people.client_b)
    except sending.RuleError as error:
        assert error.field == "recipient"
    else:
        raise AssertionError("a client with a therapist wrote to the practice")


def test_with_nobody_covering_the_pages_say_so_and_give_the_number(app, db, people, login):
    newcomer = make_user("client", "Nova Lee")
    browser = login(newcomer)
    for path in ("/messages/new", "/messages"):
        html = browser.get(path).get_data(as_text=True)
        assert PHONE in html and EMAIL in html, path
        assert "nobody at the practice is on call" in html, path
        for phrase in FALSE_PHRASES:
            assert phrase not in html, path
    assert 'href="tel:988"' in browser.get("/messages/new").get_data(as_text=True)
    token = csrf_token(browser, "/messages/new")
    refused = browser.post("/messages/new", data={"csrf_token": token, "recipient": "practice",
                                                 "subject": "Hi", "body": "Hello"})
    assert refused.status_code == 422  # nothing sent: the honest page again
    assert PHONE in refused.get_data(as_text=True)
    assert db.session.scalars(select(Thread)).all() == []
    try:
        _write(newcomer)
    except sending.RuleError as error:
        assert PHONE in error.message and EMAIL in error.message
    else:
        raise AssertionError("a message went to the practice with nobody covering")


def _practice_world(db, people, size: int):
    clients = [make_user("client", f"Newcomer {n} of {size}") for n in range(size)]
    threads = []
    for number, client in enumerate(clients):
        thread, _ = _write(client, subject=f"Topic {number}",
                           body="I want to die" if number % 2 else "hello")
        if number % 2:
            escalation.acknowledge(people.therapist_y if number % 4 == 1
                                   else people.therapist_x, thread.id)
        sending.reply(people.therapist_y, thread.id, body="Hello from the practice")
        threads.append(thread.id)
    return clients[0], threads[0]


def test_practice_pages_do_not_grow_with_the_data(app, db, people, login):
    from tests.messaging.conftest import StatementCounter

    _covering(people, people.therapist_x, people.therapist_y)
    counts = {}
    for size in (3, 12):
        client, thread_id = _practice_world(db, people, size)
        pages = {"dashboard": (people.therapist_x, "/dashboard"),
                 "thread": (people.therapist_x, f"/messages/{thread_id}"),
                 "client thread": (client, f"/messages/{thread_id}"),
                 "inbox": (client, "/messages")}
        counts[size] = {}
        for name, (user, path) in pages.items():
            browser = login(user)
            assert browser.get(path).status_code == 200
            with StatementCounter(db.engine) as counter:
                assert browser.get(path).status_code == 200
            counts[size][name] = counter.count
    assert counts[3] == counts[12], counts


def test_any_covering_clinician_may_close_a_practice_conversation(app, db, people):
    _covering(people, people.therapist_x, people.therapist_y)
    thread, _ = _write(make_user("client", "Nova Lee"))
    assert thread.therapist_id == people.therapist_x.id
    sending.set_closed(people.therapist_y, thread.id, True)
    db.session.expire_all()
    assert db.session.get(Thread, thread.id).is_closed
