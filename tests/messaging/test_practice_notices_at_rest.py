"""Messages to the practice (a client with no therapist): a flagged message and an ordinary one
write alike at rest (#17), while the urgent notice still reaches every covering clinician at
once (#13) and ordinary messages keep to the throttle.

The rows are read with raw SQL, as a thief holding a copy of the database would read them:
what each send added to mail_outbox and audit_events, by count, action, timing against its
creation, and the lengths of the sealed blobs.
"""

from datetime import datetime, timedelta

import time_machine
from sqlalchemy import select, text

from portal.accounts import service as accounts
from portal.accounts.identity import email_of
from portal.db import utcnow
from portal.mail import OutboxMessage, deliver_pending
from portal.messaging import access, reading, sending
from portal.messaging.models import Thread
from tests.messaging.conftest import make_user
from tests.support.outbox import outbox

START = utcnow().replace(microsecond=0) + timedelta(days=1)
CRISIS_BODY = "some days I don't want to be here anymore"
URGENT_SUBJECT = "Urgent: a message in the portal needs you now"
NEW_SUBJECT = "You have a new secure message"

OUTBOX_SQL = ("SELECT id, user_id, created_at, next_attempt_at, sent_at, attempts, last_error, "
              "claimed_until, length(template_sealed) AS template_len, "
              "length(subject_sealed) AS subject_len, length(recipient_sealed) AS recipient_len, "
              "length(body_text_sealed) AS text_len, length(body_html_sealed) AS html_len "
              "FROM mail_outbox")
AUDIT_SQL = ("SELECT seq, at, action, actor_id, actor_role, target_type, target_id, subject_id, "
             "outcome, severity, length(detail_sealed) AS detail_len, "
             "length(origin_sealed) AS origin_len FROM audit_events")


def _at(minutes: float):
    return time_machine.travel(START + timedelta(minutes=minutes), tick=False)


def _cover(people):
    for therapist in (people.therapist_x, people.therapist_y):
        accounts.set_covering(people.admin, therapist, True)


def _raw(db) -> dict[str, dict]:
    db.session.commit()
    found = {"mail_outbox": {r.id: dict(r._mapping) for r in db.session.execute(text(OUTBOX_SQL))},
             "audit_events": {r.seq: dict(r._mapping) for r in db.session.execute(text(AUDIT_SQL))}}
    db.session.commit()
    return found


def _when(value, start) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):  # SQLite hands a raw SELECT's times back as text
        value, start = datetime.fromisoformat(value), datetime.fromisoformat(start)
    seconds = (value - start).total_seconds()
    return "at once" if abs(seconds) < 5 else ("later" if seconds > 0 else "earlier")


def _shape(table: str, row: dict, *, timing: bool) -> tuple:
    """What a thief compares: everything but ids and the row's own times."""
    if table == "mail_outbox":
        shape = (row["attempts"], row["last_error"], row["sent_at"] is None,
                 row["claimed_until"] is None, row["template_len"], row["subject_len"],
                 row["recipient_len"], row["text_len"], row["html_len"])
        if timing:
            shape += (_when(row["next_attempt_at"], row["created_at"]),)
        return shape
    return (row["action"], row["actor_id"] is None, row["actor_role"], row["target_type"],
            row["outcome"], row["severity"], row["detail_len"], row["origin_len"])


def _written(db, send, *, timing: bool = True) -> dict[str, list]:
    """The shapes of the rows `send()` added, by table, sorted."""
    before = _raw(db)
    send()
    after = _raw(db)
    return {table: sorted(_shape(table, row, timing=timing) for key, row in rows.items()
                          if key not in before[table])
            for table, rows in after.items()}


def _differences(flagged: dict, ordinary: dict) -> list[str]:
    return [f"{table}: flagged {flagged[table]} / ordinary {ordinary[table]}"
            for table in flagged if flagged[table] != ordinary[table]]


def _two_newcomers(people):
    _cover(people)
    return make_user("client", "Nova Lee"), make_user("client", "Ola Park")


def test_flagged_and_ordinary_practice_messages_write_alike_with_notices_waiting(
        app, db, people):
    """As in the stolen-database journey: nothing has sent the first notices yet when each
    client writes again ten minutes later, then a third time in ordinary words. Every send
    writes, in both conversations, one notice per covering clinician (due at once) and the
    same audit rows: nothing tells the flagged conversation apart."""
    nova, ola = _two_newcomers(people)
    threads = {}
    problems = []

    def start(who, label, body):
        threads[label] = sending.start_thread(who, to_practice=True, subject="Tonight",
                                              body=body)[0].id

    with _at(0):
        flagged = _written(db, lambda: start(nova, "crisis", CRISIS_BODY))
        ordinary = _written(db, lambda: start(ola, "ordinary", "Hello, I am new here."))
    problems += _differences(flagged, ordinary)
    assert len(flagged["mail_outbox"]) == 2, flagged
    for minutes, words in ((10, CRISIS_BODY), (10.5, "Thursday works for me.")):
        with _at(minutes):
            flagged = _written(db, lambda w=words: sending.reply(nova, threads["crisis"], body=w))
            ordinary = _written(db, lambda: sending.reply(ola, threads["ordinary"],
                                                          body="Thursday works for me."))
        problems += [f"at {minutes} min, {p}" for p in _differences(flagged, ordinary)]
        assert len(ordinary["mail_outbox"]) == 2, ordinary  # one per covering clinician
        assert [a[0] for a in ordinary["audit_events"]].count("message.notice_queued") == 1
    assert not problems, "A flagged practice message is told apart:\n  " + "\n  ".join(problems)


def test_flagged_and_ordinary_practice_messages_add_as_many_rows_inside_the_window(
        app, db, people):
    """The case the earlier change left open: the first notices have gone and follow-ups
    wait for the window's end; a further message then adds one notice per clinician and one
    notice event, flagged or not (the urgent ones are due now, the ordinary ones when the
    window ends: that timing is the safety requirement, #13)."""
    nova, ola = _two_newcomers(people)
    with _at(0):
        crisis, _ = sending.start_thread(nova, to_practice=True, subject="Hi", body="hello")
        plain, _ = sending.start_thread(ola, to_practice=True, subject="Hi", body="hello")
        assert deliver_pending().sent == 4
    with _at(5):  # follow-ups, due at 15
        sending.reply(nova, crisis.id, body="are you there?")
        sending.reply(ola, plain.id, body="are you there?")
    with _at(7):
        flagged = _written(db, lambda: sending.reply(nova, crisis.id, body=CRISIS_BODY),
                           timing=False)
        ordinary = _written(db, lambda: sending.reply(ola, plain.id, body="see you Thursday"),
                            timing=False)
    assert len(flagged["mail_outbox"]) == len(ordinary["mail_outbox"]) == 2
    assert not _differences(flagged, ordinary)
    actions = [a[0] for a in ordinary["audit_events"]]
    assert actions.count("message.notice_queued") == 1 and "message.sent" in actions


def test_the_urgent_notice_reaches_every_covering_clinician_at_once(app, db, people,
                                                                   smtp_server):
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    nova, _ = _two_newcomers(people)
    addresses = {email_of(people.therapist_x), email_of(people.therapist_y)}
    with _at(0):
        thread, _ = sending.start_thread(nova, to_practice=True, subject="Hi", body="hello")
    assert len(smtp_server.envelopes) == 2
    with _at(3):
        sending.reply(nova, thread.id, body="are you there?")  # follow-ups, due at 15
    assert len(smtp_server.envelopes) == 2
    with _at(5):
        message = sending.reply(nova, thread.id, body=CRISIS_BODY)
    assert message.sent_flagged
    urgent = smtp_server.envelopes[2:]
    assert [e.message["Subject"] for e in urgent] == [URGENT_SUBJECT] * 2
    assert {rcpt for e in urgent for rcpt in e.rcpt_tos} == addresses
    with _at(6):  # an ordinary message after it: still no more email before the window ends
        sending.reply(nova, thread.id, body="sorry, I am ok")
    assert len(smtp_server.envelopes) == 4
    with _at(15):
        assert deliver_pending().sent == 2  # the follow-ups, one each
    assert [e.message["Subject"] for e in smtp_server.envelopes[4:]] == [NEW_SUBJECT] * 2


def test_ordinary_practice_messages_keep_to_the_throttle(app, db, people, smtp_server):
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    nova, _ = _two_newcomers(people)
    with _at(0):
        thread, _ = sending.start_thread(nova, to_practice=True, subject="Hi", body="one")
    for minutes in (2, 5, 8, 12):
        with _at(minutes):
            sending.reply(nova, thread.id, body=f"message at {minutes}")
    assert len(smtp_server.envelopes) == 2
    with _at(14):
        assert deliver_pending().sent == 0
    with _at(15):
        assert deliver_pending().sent == 2
    with _at(16):  # inside the next window (15 to 30): one follow-up each, at 30
        sending.reply(nova, thread.id, body="and another")
        assert deliver_pending().sent == 0
    with _at(30):
        assert deliver_pending().sent == 2
    subjects = [e.message["Subject"] for e in smtp_server.envelopes]
    assert subjects == [NEW_SUBJECT] * 6
    per_person = {}
    for envelope in smtp_server.envelopes:
        for rcpt in envelope.rcpt_tos:
            per_person[rcpt] = per_person.get(rcpt, 0) + 1
    assert sorted(per_person.values()) == [3, 3]


def test_waiting_first_notices_are_replaced_not_doubled(app, db, people, smtp_server):
    """Nothing has sent the first notices when the client writes again (a worker behind):
    each clinician still gets one email, not one per message."""
    nova, _ = _two_newcomers(people)
    with _at(0):
        thread, _ = sending.start_thread(nova, to_practice=True, subject="Hi", body="one")
    for minutes in (4, 10, 10.5):
        with _at(minutes):
            sending.reply(nova, thread.id, body=f"message at {minutes}")
    with _at(11):
        assert deliver_pending().sent == 2
    with _at(40):
        assert deliver_pending().sent == 0
    assert len(smtp_server.envelopes) == 2


def test_a_waiting_urgent_notice_stays_urgent(app, db, people, smtp_server):
    """With the mail server down, an ordinary message after a flagged one replaces each
    clinician's urgent notice with an urgent one, never an ordinary one; one email each."""
    app.config["MAIL_SEND_AFTER_COMMIT"] = True
    nova, _ = _two_newcomers(people)
    smtp_server.stop()
    with _at(0):
        thread, _ = sending.start_thread(nova, to_practice=True, subject="Hi", body=CRISIS_BODY)
    first = {row.id for row in outbox("urgent_message")}
    with _at(2):
        sending.reply(nova, thread.id, body="still here")
    db.session.expire_all()
    waiting = [row for row in outbox("urgent_message") if row.sent_at is None]
    assert len(waiting) == 2 and not {row.id for row in waiting} & first
    assert not [row for row in outbox("new_message") if row.sent_at is None]
    smtp_server.start()
    with _at(30):
        assert deliver_pending().sent == 2
    assert [e.message["Subject"] for e in smtp_server.envelopes] == [URGENT_SUBJECT] * 2


def test_a_clinicians_own_conversation_keeps_its_notice(app, db, people):
    """A covering clinician's notice about a conversation of their own, due at the very same
    moment as the practice conversation's follow-up, is not the one replaced: it stays that
    conversation's notice, and reading that conversation still withdraws it."""
    nova, _ = _two_newcomers(people)
    therapist = people.therapist_x
    with _at(0):
        own, _ = sending.start_thread(people.client_a, counterpart_id=therapist.id,
                                      subject="Hi", body="one")
        practice, _ = sending.start_thread(nova, to_practice=True, subject="Hi", body="one")
        deliver_pending()
    with _at(0):  # the same instant (the clock stands still): both follow-ups due at 15
        sending.reply(people.client_a, own.id, body="two")
        sending.reply(nova, practice.id, body="two")
    own_notice = db.session.get(Thread, own.id).therapist_notice_id
    with _at(7):
        sending.reply(nova, practice.id, body="three")
    db.session.expire_all()
    row = db.session.get(OutboxMessage, own_notice)
    assert row is not None and row.sent_at is None
    assert db.session.get(Thread, own.id).therapist_notice_id == own_notice
    waiting = [r for r in outbox("new_message", OutboxMessage.user_id == therapist.id)
               if r.sent_at is None]
    assert len(waiting) == 2  # its own one and the practice's (replaced), both due at 15
    assert {r.next_attempt_at for r in waiting} == {START + timedelta(minutes=15)}
    with _at(8):
        reading.view_thread(therapist, access.thread_access(therapist, own.id))
    assert db.session.get(OutboxMessage, own_notice) is None
    assert db.session.scalar(select(Thread.therapist_notice_id).where(Thread.id == own.id)) \
        is None


def test_a_clinician_who_starts_covering_inside_the_window_gets_the_follow_up(
        app, db, people):
    """Every covering clinician gets a notice row for every message (so the count is always
    theirs); one who joined the cover inside the window gets the follow-up the others get,
    due at the same time, and nobody has two."""
    accounts.set_covering(people.admin, people.therapist_x, True)
    nova = make_user("client", "Nova Lee")
    with _at(0):
        thread, _ = sending.start_thread(nova, to_practice=True, subject="Hi", body="one")
        assert deliver_pending().sent == 1
    with _at(3):
        sending.reply(nova, thread.id, body="two")  # X's follow-up, due at 15
    accounts.set_covering(people.admin, people.therapist_y, True)
    with _at(5):
        sending.reply(nova, thread.id, body="three")
    db.session.expire_all()
    waiting = [r for r in outbox("new_message") if r.sent_at is None]
    assert sorted(r.user_id for r in waiting) == sorted(
        [people.therapist_x.id, people.therapist_y.id])
    assert {r.next_attempt_at for r in waiting} == {START + timedelta(minutes=15)}
