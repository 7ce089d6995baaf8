"""Honest words, everywhere: every page state a test client can reach, for every role, says
nothing that is false in that state.

The sentences that were false somewhere (issue #13): "Only you and your therapist can read
these conversations" (emergency access exists), "your current therapist" to a client who has
none, "we have let your therapist know" when nobody was told, "reset your password" to a
deactivated person, "This link was already used" for a link that was replaced, "a few minutes"
for a 15-minute lockout. Each state below renders its pages and checks the phrases that are
false in it are absent, and that the true words are there instead.
"""

import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from flask import template_rendered
from sqlalchemy import delete

from portal.accounts.models import Assignment
from portal.db import utcnow
from portal.extensions import db as _db
from portal.messaging import emergency, sending
from tests.accounts.support import extra_app, link_in, mail_text, outbox
from tests.messaging.conftest import assign
from tests.support.auth import inject_session
from tests.support.people import PASSWORD, csrf_from, make_user

ROOT = Path(__file__).resolve().parents[1]

ONLY_YOU = "only you and your therapist can read"  # false in every state: emergency access
CURRENT_THERAPIST = "your current therapist"
LET_KNOW = "we have let your therapist know"
RESET = "reset your password"
ALREADY_USED = "this link was already used"
FEW_MINUTES = "a few minutes"
REASON = "Her sister called: she has not been heard from since Friday, therapist away"


def _text(html: str) -> str:
    """The page as words, lower case, tags and entities out, spaces collapsed."""
    words = re.sub(r"<[^>]+>", " ", html)
    words = (words.replace("&#39;", "'").replace("&#34;", '"').replace("&quot;", '"')
             .replace("&amp;", "&").replace("\u2019", "'"))
    return re.sub(r"\s+", " ", words).lower()


@pytest.fixture
def seen(app, isolated_requests):
    """Record every template rendered, and check pages: `seen.page(client, path, banned=...,
    required=..., status=...)`; `seen.templates` is what rendered."""

    class Seen:
        templates: set[str] = set()

        def check(self, html: str, banned=(), required=(), where: str = "") -> str:
            words = _text(html)
            for phrase in (ONLY_YOU, *banned):
                assert phrase.lower() not in words, (where, phrase)
            for phrase in required:
                assert phrase.lower().replace("\u2019", "'") in words, (where, phrase)
            return words

        def page(self, client, path: str, *, banned=(), required=(), status=200,
                 method="get", data=None) -> str:
            response = getattr(client, method)(path, data=data, follow_redirects=True)
            assert response.status_code == status, (path, response.status_code)
            return self.check(response.get_data(as_text=True), banned, required, path)

    found = Seen()
    found.templates = set()

    def _record(sender, template, context, **extra):
        found.templates.add(template.name)

    template_rendered.connect(_record, app)
    yield found
    template_rendered.disconnect(_record, app)


def _signed_in(app, user):
    client = app.test_client()
    inject_session(client, user)
    return client


def _thread(client_user, therapist, subject="This week"):
    thread, _ = sending.start_thread(client_user, counterpart_id=therapist.id, subject=subject,
                                     body="Hello there.", notify=False)
    return thread.id


def _client_pages(app, seen, user, thread_id=None, banned=()):
    """Every page a client reaches: inbox, new message, a thread, the access log, account,
    estimates."""
    client = _signed_in(app, user)
    inbox = seen.page(client, "/messages", banned=banned,
                      required=["emergency procedure", "who has seen my record"])
    seen.page(client, "/messages/new", banned=banned)
    if thread_id is not None:
        seen.page(client, f"/messages/{thread_id}", banned=banned)
    seen.page(client, "/account/access-log", banned=banned)
    seen.page(client, "/account", banned=banned)
    seen.page(client, "/estimates/", banned=banned)
    return client, inbox


# --- clients -----------------------------------------------------------------------------

def test_a_client_with_a_therapist_is_told_truthfully_who_reads_their_messages(app, db, seen):
    alex, colleen = make_user("client", "Alex Rivera"), make_user("therapist", "Colleen Xu")
    assign(alex, colleen)
    thread_id = _thread(alex, colleen)
    client, inbox = _client_pages(app, seen, alex, thread_id)
    assert "write to your therapist between sessions" in inbox
    assert "the people caring for you" in inbox
    compose = seen.page(client, "/messages/new", required=["emergency procedure"])
    assert "colleen xu" in compose
    assert {"messaging/inbox.html", "messaging/compose.html", "messaging/thread.html",
            "messaging/access_log.html"} <= seen.templates


def test_a_client_without_a_therapist_is_never_pointed_to_one(app, db, seen):
    sam = make_user("client", "Sam Lone")
    client, inbox = _client_pages(app, seen, sam, banned=[CURRENT_THERAPIST,
                                                         "write to your therapist"])
    assert "write to the practice" not in inbox  # nobody is on call either
    assert "nobody is reading messages here right now" in seen.page(client, "/messages/new")


def test_a_client_whose_therapist_was_removed_is_not_sent_to_a_current_one(app, db, seen):
    alex, colleen = make_user("client", "Alex Rivera"), make_user("therapist", "Colleen Xu")
    assign(alex, colleen)
    thread_id = _thread(alex, colleen)
    # The assignment ends (the handover rules live in their own tests): no therapist now.
    db.session.execute(delete(Assignment).where(Assignment.client_id == alex.id))
    db.session.commit()
    client, _ = _client_pages(app, seen, alex, thread_id, banned=[CURRENT_THERAPIST])
    page = seen.page(client, f"/messages/{thread_id}", banned=[CURRENT_THERAPIST],
                     required=["no longer assigned to you", "no other therapist is assigned"])
    assert app.config["PRACTICE"]["phone"].lower() in page
    token = csrf_from(client.get(f"/messages/{thread_id}").get_data(as_text=True))
    seen.page(client, f"/messages/{thread_id}/reply", method="post", status=422,
              data={"csrf_token": token, "body": "Are you there?"},
              banned=[CURRENT_THERAPIST], required=["no other therapist is assigned"])


def test_a_client_with_another_therapist_is_pointed_to_them(app, db, seen):
    alex = make_user("client", "Alex Rivera")
    colleen, kristen = make_user("therapist", "Colleen Xu"), make_user("therapist", "Kristen Y")
    assign(alex, colleen)
    thread_id = _thread(alex, colleen)
    db.session.execute(delete(Assignment).where(Assignment.client_id == alex.id))
    db.session.commit()
    assign(alex, kristen)
    client = _signed_in(app, alex)
    seen.page(client, f"/messages/{thread_id}", required=[CURRENT_THERAPIST])  # true here


def test_a_client_whose_only_therapist_is_deactivated_is_not_sent_to_them(app, db, seen):
    alex, colleen = make_user("client", "Alex Rivera"), make_user("therapist", "Colleen Xu")
    assign(alex, colleen)
    thread_id = _thread(alex, colleen)
    db.session.execute(delete(Assignment).where(Assignment.client_id == alex.id))
    colleen.active = False
    db.session.commit()
    _client_pages(app, seen, alex, thread_id, banned=[CURRENT_THERAPIST,
                                                     "write to your therapist"])


# --- estimates -------------------------------------------------------------------------------

def _request_estimate(client, seen, **checks):
    token = csrf_from(client.get("/estimates/").get_data(as_text=True))
    return seen.page(client, "/estimates/request", method="post",
                     data={"csrf_token": token}, **checks)


def test_an_estimate_request_without_a_therapist_says_nobody_was_told(app, db, seen):
    sam = make_user("client", "Sam Lone")
    client = _signed_in(app, sam)
    _request_estimate(client, seen, banned=[LET_KNOW, "we have let"],
                      required=["nobody has been emailed"])
    seen.page(client, "/estimates/", banned=[LET_KNOW, "we have let"],
              required=["nobody has been emailed"])
    assert "estimates/client_list.html" in seen.templates


def test_an_estimate_request_with_a_therapist_names_who_was_told(app, db, seen):
    alex, colleen = make_user("client", "Alex Rivera"), make_user("therapist", "Colleen Xu")
    assign(alex, colleen)
    page = _request_estimate(_signed_in(app, alex), seen, banned=["nobody has been emailed"],
                             required=["we have let colleen xu know"])
    assert LET_KNOW not in page  # the name, not a role that may be nobody


# --- administrators and emergency access ---------------------------------------------------

def test_a_single_administrator_is_never_told_others_were_emailed(app, db, seen):
    admin = make_user("admin", "Morgan Avery")
    alex, colleen = make_user("client", "Alex Rivera"), make_user("therapist", "Colleen Xu")
    assign(alex, colleen)
    thread_id = _thread(alex, colleen)
    client = _signed_in(app, admin)
    told_others = ["other administrators are emailed", "other administrators have been told",
                   "other administrator is emailed"]
    seen.page(client, "/emergency-access", banned=told_others,
              required=["only administrator, so no other administrator is told"])
    seen.page(client, f"/messages/{thread_id}", status=404)  # nothing without a grant
    token = csrf_from(client.get("/emergency-access").get_data(as_text=True))
    page = seen.page(client, "/emergency-access", method="post", data={
        "csrf_token": token, "client": str(alex.id), "category": "safety", "reason": REASON,
        "confirm": "y"}, banned=told_others,
        required=["we emailed alex rivera and their therapist colleen xu",
                  "no other administrator was told"])
    assert "messaging/emergency_grant.html" in seen.templates and "sister" in page
    seen.page(client, f"/messages/{thread_id}", required=["emergency access, read-only"])
    # The client's side of it: the kind of reason, never the written one.
    _client_pages(app, seen, alex, thread_id)
    log = seen.page(_signed_in(app, alex), "/account/access-log",
                    required=["concern for your safety"])
    assert "sister" not in log


def test_with_other_administrators_the_page_says_they_are_told(app, db, seen):
    admin = make_user("admin", "Morgan Avery")
    make_user("admin", "Other Admin")
    alex = make_user("client", "Alex Rivera")
    seen.page(_signed_in(app, admin), "/emergency-access",
              banned=["practice's only administrator"],
              required=["other administrator is emailed straight away"])
    grant = emergency.grant(admin, client_id=alex.id, reason=REASON, category="other")
    said = grant.told.sentence("Alex Rivera").lower()
    assert "1 other administrator" in said and "no therapist was told" in said


# --- signing in, resets, links, limits -------------------------------------------------------

def _sign_in(client, email: str, password: str = PASSWORD):
    token = csrf_from(client.get("/sign-in").get_data(as_text=True))
    return client.post("/sign-in", data={"email": email, "password": password,
                                         "csrf_token": token})


def test_a_deactivated_person_is_not_told_to_reset_their_password(app, db, seen):
    paused = make_user("client", "Pat Paused", active=False)
    response = _sign_in(app.test_client(), paused.email_address)
    seen.check(response.get_data(as_text=True), banned=[RESET],
               required=["portal access is paused", app.config["PRACTICE"]["phone"]],
               where="sign-in, deactivated")
    client = app.test_client()
    token = csrf_from(client.get("/forgot-password").get_data(as_text=True))
    seen.page(client, "/forgot-password", method="post",
              data={"csrf_token": token, "email": paused.email_address},
              required=["if your portal access has been paused, no email is sent"])
    assert outbox("password_reset", paused) == []


def _reset_link_for(app, person) -> str:
    client = app.test_client()
    token = csrf_from(client.get("/forgot-password").get_data(as_text=True))
    # Buffered: the mail is queued once the answer is out, as behind a server.
    client.post("/forgot-password", data={"csrf_token": token, "email": person.email_address},
                buffered=True)
    return link_in(mail_text(outbox("password_reset", person)[-1]))[0]


def test_a_replaced_or_expired_link_never_says_it_was_used(app, db, seen):
    person = make_user("client", "Robin Reset")
    older = _reset_link_for(app, person)
    newer = _reset_link_for(app, person)
    assert older != newer
    seen.page(app.test_client(), older, status=410, banned=[ALREADY_USED],
              required=["a newer link replaced this one"])
    with time_machine.travel(utcnow() + timedelta(hours=2), tick=False):
        seen.page(app.test_client(), newer, status=410, banned=[ALREADY_USED],
                  required=["this link has expired",
                            f"{app.config['RESET_MINUTES']} minutes"])
    assert "accounts/link_problem.html" in seen.templates


def test_a_used_link_says_it_was_used(app, db, seen):
    person = make_user("client", "Robin Reset")
    path = _reset_link_for(app, person)
    client = app.test_client()
    assert client.get(path).status_code == 302
    token = csrf_from(client.get("/reset").get_data(as_text=True))
    new = "a brand new passphrase for testing"
    client.post("/reset", data={"csrf_token": token, "password": new, "confirm": new})
    seen.page(app.test_client(), path, status=410, required=[ALREADY_USED],
              banned=["replaced"])


def test_a_replaced_invitation_says_so(app, db, seen):
    admin = make_user("admin", "Morgan Avery")
    from portal.accounts import service

    invited, link = service.create_user(admin, role="client", name="Ivy Invited",
                                        email=f"ivy-{uuid.uuid4().hex[:6]}@example.org")
    older = link_in(link)[0]
    service.resend_invitation(admin, invited)
    seen.page(app.test_client(), older, status=410, banned=[ALREADY_USED],
              required=["a newer link replaced this one"])


def test_the_wait_pages_name_the_real_wait_not_a_few_minutes(app, db, seen):
    with extra_app(app, RATELIMIT_ENABLED=True, SIGNIN_RATE_PER_IP="50 per minute",
                   SIGNIN_RATE_PER_ACCOUNT="2 per 15 minutes") as limited:
        client = limited.test_client()
        statuses = [_sign_in(client, "somebody@example.org", "wrong wrong wrong").status_code
                    for _ in range(3)]
        assert statuses[-1] == 429, statuses
        response = _sign_in(client, "somebody@example.org", "wrong wrong wrong")
        seen.check(response.get_data(as_text=True), banned=[FEW_MINUTES],
                   required=["please wait 15 minutes"], where="429")

    # The lockout mail after too many wrong passwords names its 15 minutes too.
    person = make_user("client", "Lee Locked")
    for _ in range(app.config["LOCKOUT_THRESHOLD"]):
        _sign_in(app.test_client(), person.email_address, "not the password at all")
    (notice,) = outbox("lockout_notice", person)
    text = _text(mail_text(notice))
    assert FEW_MINUTES not in text
    assert f"{app.config['LOCKOUT_MINUTES']} minutes" in text


# --- the words in the source ----------------------------------------------------------------

def test_no_template_or_module_keeps_a_sentence_that_is_never_true():
    """"Only you and your therapist can read ..." is false while emergency access exists; the
    words that replace it name the emergency procedure and the access log."""
    scanned = 0
    for folder, pattern in (("templates", "*.html"), ("templates", "*.txt"),
                            ("portal", "*.py"), ("portal", "*.md")):
        for path in (ROOT / folder).rglob(pattern):
            scanned += 1
            assert ONLY_YOU not in _text(path.read_text()), path
    assert scanned > 100, scanned
    for name in ("inbox.html", "compose.html"):
        words = _text((ROOT / "templates" / "messaging" / name).read_text())
        assert "emergency procedure" in words and "who has seen my record" in words, name


def test_lockout_words_in_the_source_never_say_a_few_minutes():
    for path in ("templates/errors/429.html", "templates/mail/lockout_notice.txt",
                 "templates/mail/lockout_notice.html", "portal/accounts/views.py"):
        assert FEW_MINUTES not in (ROOT / path).read_text().lower(), path


@pytest.mark.parametrize("state", ["no therapist"])
def test_the_reply_path_and_the_page_agree(app, db, seen, state):
    """The thread page's note and the refused reply say the same true thing."""
    alex, colleen = make_user("client", "Alex Rivera"), make_user("therapist", "Colleen Xu")
    assign(alex, colleen)
    thread_id = _thread(alex, colleen)
    _db.session.execute(delete(Assignment).where(Assignment.client_id == alex.id))
    _db.session.commit()
    with pytest.raises(sending.RuleError) as refused:
        sending.reply(alex, thread_id, body="hello?", notify=False)
    assert CURRENT_THERAPIST not in str(refused.value).lower()
    page = seen.page(_signed_in(app, alex), f"/messages/{thread_id}")
    assert "no other therapist is assigned to you yet" in page


def test_a_client_without_a_therapist_who_can_write_to_the_practice_hears_so(app, db, seen):
    on_call = make_user("therapist", "Kristen On Call")
    on_call.covering = True
    _db.session.commit()
    sam = make_user("client", "Sam Lone")
    client, inbox = _client_pages(app, seen, sam, banned=[CURRENT_THERAPIST,
                                                         "write to your therapist"])
    assert "write to the practice between sessions" in inbox
    seen.page(client, "/messages/new",
              banned=[CURRENT_THERAPIST, "your therapist usually replies",
                      "your therapist may not"],
              required=["goes to the practice", "one of the clinicians on call usually replies"])


def test_nobody_to_write_to_is_not_promised_a_reply(app, db, seen):
    sam = make_user("client", "Sam Lone")
    seen.page(_signed_in(app, sam), "/messages/new",
              banned=["usually replies"], required=["messages here are not for emergencies"])
