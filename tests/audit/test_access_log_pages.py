"""The client's access log pages back through everything, so list looks by busy staff never
push an older, more telling entry out of the client's sight."""

from portal.accounts.models import Assignment
from portal.audit.looks import ACCOUNT_VIEWED, clients_listed, record_look
from portal.audit.service import record_many
from tests.support.auth import signed_in
from tests.support.people import make_admin, make_client, make_therapist


def test_an_old_look_stays_reachable_behind_many_newer_list_looks(app, db):
    client, admin = make_client("Robin Vale"), make_admin("Ada Admin")
    therapist = make_therapist("Theo Day")
    db.session.add(Assignment(client_id=client.id, therapist_id=therapist.id))
    db.session.commit()
    record_look(admin, ACCOUNT_VIEWED, client.id, target=("user", client.id))
    with app.test_request_context():
        record_many([("client.listed", None, client.id)] * 250, actor=therapist)
        db.session.commit()

    browser = signed_in(app, client)
    first = browser.get("/account/access-log").get_data(as_text=True)
    assert "(200 times)" in first and "Opened your account details" not in first
    assert 'href="/account/access-log?page=2"' in first and "Older entries" in first

    second = browser.get("/account/access-log?page=2").get_data(as_text=True)
    assert "(50 times)" in second and "Opened your account details" in second
    assert "Ada Admin" in second and "Newer entries" in second
    assert "Older entries" not in second

    beyond = browser.get("/account/access-log?page=9")
    assert beyond.status_code == 200 and "There is nothing older" in beyond.get_data(True)


def test_a_short_log_has_no_pager(app, db):
    client, admin = make_client("Robin Vale"), make_admin("Ada Admin")
    with app.test_request_context():
        clients_listed(admin, [client.id])
    html = signed_in(app, client).get("/account/access-log").get_data(as_text=True)
    assert "Saw your name in a list" in html and 'class="pager"' not in html
