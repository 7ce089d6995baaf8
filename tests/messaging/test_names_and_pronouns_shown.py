"""Pronouns beside names for staff and in conversations; on the client's side their therapist
as "Colleen Xu, LPC (she/her)" with when they usually reply, where the client writes."""

from portal.accounts.display import person_label, reply_note
from portal.accounts.profile import Profile, update_profile
from portal.messaging import sending


def _set_up(people):
    client, therapist = people.client_a, people.therapist_x
    update_profile(client, client, Profile(pronouns="they/them"))
    update_profile(therapist, therapist, Profile(pronouns="she/her", credentials="LPC",
                                                 reply_hours="usually replies within a day"))
    thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                     subject="Next week", body="Hello there", notify=False)
    sending.reply(therapist, thread.id, body="Hi, thanks for writing", notify=False)
    return client, therapist, thread


def test_the_label_is_made_in_one_place():
    assert person_label("Zoë") == "Zoë"
    assert person_label("Zoë", "she/her") == "Zoë (she/her)"
    assert person_label("Colleen Demo", "she/her", "LPC") == "Colleen Demo, LPC (she/her)"
    assert person_label("Colleen Demo", "", "LPC") == "Colleen Demo, LPC"
    assert reply_note("Colleen Demo, LPC", "usually replies within a day.") == \
        "Colleen Demo, LPC usually replies within a day."
    assert reply_note("Colleen Demo", "") == ""


def test_staff_see_the_clients_pronouns_on_the_dashboard_and_in_the_thread(people, login):
    _, therapist, thread = _set_up(people)
    browser = login(therapist)
    dashboard = browser.get("/dashboard").get_data(as_text=True)
    assert "Alex Rivera (they/them)" in dashboard
    page = browser.get(f"/messages/{thread.id}").get_data(as_text=True)
    assert "With Alex Rivera (they/them)" in page
    assert '<span class="message__author">Alex Rivera (they/them)</span>' in page
    clients = browser.get("/clients").get_data(as_text=True)
    assert "Alex Rivera (they/them)</a>" in clients


def test_the_client_sees_their_therapist_with_credentials_pronouns_and_reply_hours(
        people, login):
    client, _, thread = _set_up(people)
    browser = login(client)
    page = browser.get(f"/messages/{thread.id}").get_data(as_text=True)
    assert "With Colleen Xu, LPC (she/her)" in page
    assert '<span class="message__author">Colleen Xu, LPC (she/her)</span>' in page
    assert "Colleen Xu, LPC (she/her) usually replies within a day." in page
    inbox = browser.get("/messages").get_data(as_text=True)
    assert "With Colleen Xu, LPC (she/her)" in inbox
    compose = browser.get("/messages/new").get_data(as_text=True)
    assert ">Colleen Xu, LPC (she/her)</option>" in compose
    assert "Colleen Xu, LPC (she/her) usually replies within a day." in compose
    # The other therapist set nothing: their plain name, and no hours of theirs.
    assert ">Kristen Young</option>" in compose
    assert "Kristen Young usually" not in compose


def test_with_one_therapist_the_safety_notice_says_when_they_reply(people, login):
    client, therapist = people.client_b, people.therapist_y
    update_profile(therapist, therapist, Profile(reply_hours="usually replies the same day"))
    compose = login(client).get("/messages/new").get_data(as_text=True)
    assert ('<p class="safety-notice__reply">Kristen Young usually replies the same day.</p>'
            in compose)
    assert "Your therapist usually replies" not in compose


def test_without_pronouns_names_are_shown_as_before(people, login):
    thread, _ = sending.start_thread(people.client_b, counterpart_id=people.therapist_y.id,
                                     subject="Hi", body="Hello", notify=False)
    page = login(people.therapist_y).get(f"/messages/{thread.id}").get_data(as_text=True)
    assert "With Blake Sun\n" in page or "With Blake Sun<" in page or "With Blake Sun " in page
    assert "Blake Sun (" not in page


def test_the_clients_record_page_heading_has_their_pronouns(people, login):
    _set_up(people)
    page = login(people.therapist_x).get(f"/record/clients/{people.client_a.id}")
    assert page.status_code == 200
    assert "<h1>Alex Rivera (they/them): requests and disclosures</h1>" in page.get_data(
        as_text=True)
