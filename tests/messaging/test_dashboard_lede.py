"""The dashboard's first sentence stays true when a conversation has crisis language: it says
the flagged one comes first, and never "Well done" while a flag is not marked seen."""

from portal.messaging import escalation, sending

CRISIS = "Some days I don't want to be here anymore"


def _lede(browser) -> str:
    html = browser.get("/dashboard").get_data(as_text=True)
    return html.split('<p class="lede">', 1)[1].split("</p>", 1)[0].strip()


def test_the_lede_says_crisis_language_comes_first(app, db, people, login):
    sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                         subject="Moving Thursday", body="Can we move it?", notify=False)
    sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                         subject="Tonight", body=CRISIS, notify=False)
    db.session.commit()
    lede = _lede(login(people.therapist_x))
    assert lede == ("2 conversations waiting for your reply, crisis language first, then "
                    "longest wait first.")


def test_no_well_done_while_a_flag_is_not_marked_seen(app, db, people, login):
    thread, _ = sending.start_thread(people.client_a, counterpart_id=people.therapist_x.id,
                                     subject="Tonight", body=CRISIS, notify=False)
    sending.reply(people.therapist_x, thread.id, body="I am here. Call 988.", notify=False)
    db.session.commit()
    browser = login(people.therapist_x)
    assert _lede(browser) == ("Nobody is waiting for a reply, but crisis language is not "
                              "marked seen and acted on yet.")
    assert escalation.acknowledge(people.therapist_x, thread.id)
    assert _lede(browser) == "Nobody is waiting for a reply. Well done."
