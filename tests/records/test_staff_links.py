"""Staff reach a client's record from pages they already use: the Clients page names link to
the client's record page, which offers the export to the assigned therapist, and the thread
page offers the conversation as a PDF (each target answers, and is audited where it says)."""

from portal.accounts.models import Assignment
from portal.extensions import db
from portal.messaging import sending
from tests.support.auth import signed_in
from tests.support.people import make_user


def _world():
    therapist = make_user("therapist", "Theo Day")
    client = make_user("client", "Robin Vale")
    db.session.add(Assignment(client_id=client.id, therapist_id=therapist.id))
    db.session.commit()
    thread, _ = sending.start_thread(client, counterpart_id=therapist.id, subject="Hello",
                                     body="A first message", notify=False)
    return therapist, client, thread


def test_the_clients_page_links_each_name_to_their_record_page(app, db):
    therapist, client, _ = _world()
    browser = signed_in(app, therapist)
    html = browser.get("/clients").get_data(as_text=True)
    link = f'href="/record/clients/{client.id}"'
    assert link in html
    page = browser.get(f"/record/clients/{client.id}")
    assert page.status_code == 200
    assert f'href="/record/clients/{client.id}/export"' in page.get_data(as_text=True)
    assert browser.get(f"/record/clients/{client.id}/export").status_code == 200


def test_an_administrator_sees_no_export_on_the_record_page(app, db):
    _, client, _ = _world()
    admin = make_user("admin", "Ada Admin")
    html = signed_in(app, admin).get(f"/record/clients/{client.id}").get_data(as_text=True)
    assert "Export their record" not in html  # minimum necessary: no whole-record copy


def test_the_therapists_thread_page_offers_the_conversation_as_a_pdf(app, isolated_requests, db):
    therapist, client, thread = _world()
    browser = signed_in(app, therapist)
    html = browser.get(f"/messages/{thread.id}").get_data(as_text=True)
    assert f'href="/record/conversations/{thread.id}/pdf"' in html
    pdf = browser.get(f"/record/conversations/{thread.id}/pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert "Download as PDF" not in signed_in(app, client).get(
        f"/messages/{thread.id}").get_data(as_text=True)
