"""What a parent or guardian sees (#16): their start page and navigation, the family page, the
minor's Good Faith Estimates as consent allows (Act 147 of 2004: a minor of 14 or over may
consent themselves, and then the guardian sees only what is shared), sharing by the minor and
their therapist, the end of access on the 18th birthday, and the minor's access log. The
minor's conversations are never the guardian's."""

from datetime import date

import pytest
from sqlalchemy import select

from portal.accounts.models import Assignment
from portal.audit import AuditEvent
from portal.audit.access_log import access_log
from portal.estimates import drafting, issuing
from portal.extensions import db
from portal.guardians import links
from portal.messaging import sending
from portal.messaging.models import Attachment
from portal.practice import today as practice_today
from tests.estimates.conftest import complete_draft, fast_pdf  # noqa: F401  (a fixture)
from tests.messaging.conftest import PNG
from tests.support.auth import signed_in
from tests.support.clock import freeze
from tests.support.people import csrf_from, make_admin, make_guardian, make_minor, make_user

TODAY = date(2026, 6, 15)
RILEY_WORDS = ("Riley consented to their own care, as Pennsylvania law allows from 14, so you "
               "see only what Riley or their therapist chooses to share with you.")


@pytest.fixture(autouse=True)
def _isolated(isolated_requests, no_server_errors):
    """Each request in its own app context (several people sign in); no 5xx anywhere."""


@pytest.fixture
def today(monkeypatch):
    return freeze(monkeypatch, TODAY)


def _assign(client, therapist):
    db.session.add(Assignment(client_id=client.id, therapist_id=therapist.id))
    db.session.commit()


def _issue(therapist, client):
    estimate = drafting.create_draft(therapist, client)
    drafting.save_draft(therapist, estimate, complete_draft(practice_today()))
    return issuing.issue(therapist, estimate.id)


def _draft(therapist, client):
    estimate = drafting.create_draft(therapist, client)
    drafting.save_draft(therapist, estimate, complete_draft(practice_today()))
    return estimate


class Family:
    """Gale, the guardian of Jordan (Gale consented) and Riley (15, consented themselves);
    another family (Pat, guardian of Sam); Jordan's and Riley's therapist, and another."""

    def __init__(self):
        self.guardian = make_guardian("Gale Guardian")
        self.other_guardian = make_guardian("Pat Parent")
        self.jordan = make_minor(date(2013, 2, 1), consent_by="guardian",
                                 guardian=self.guardian, name="Jordan Minor")
        self.riley = make_minor(date(2011, 1, 10), consent_by="minor", guardian=self.guardian,
                                name="Riley Self")
        self.sam = make_minor(date(2012, 5, 5), consent_by="guardian",
                              guardian=self.other_guardian, name="Sam Elsewhere")
        self.therapist = make_user("therapist", "Colleen Example")
        self.other_therapist = make_user("therapist", "Kristen Example")
        for minor in (self.jordan, self.riley):
            _assign(minor, self.therapist)
        _assign(self.sam, self.other_therapist)
        self.jordan_gfe = _issue(self.therapist, self.jordan)
        self.jordan_draft = _draft(self.therapist, self.jordan)
        self.riley_gfe = _issue(self.therapist, self.riley)
        self.riley_other = _issue(self.therapist, self.riley)
        self.sam_gfe = _issue(self.other_therapist, self.sam)
        self.riley_link = links.live_link(self.guardian.id, self.riley.id)


@pytest.fixture
def fam(app, today, fast_pdf):  # noqa: F811
    return Family()


def _text(response) -> str:
    return response.get_data(as_text=True)


def _estimate_urls(estimate):
    return (f"/estimates/{estimate.id}", f"/estimates/{estimate.id}/pdf")


def _post(app, user, page: str, action: str):
    """POST a button on `page` as `user`, with the token of that session."""
    client = signed_in(app, user)
    shown = client.get(page)
    token = csrf_from(_text(shown)) if shown.status_code == 200 else csrf_from(
        _text(client.get("/account")))
    return client.post(action, data={"csrf_token": token})


def _share_url(estimate, row, stop=False):
    verb = "stop-sharing" if stop else "share"
    return f"/family/estimates/{estimate.id}/{verb}/{row.id}"


# ------------------------------------------------------------------ start page, nav, account

def test_a_guardian_lands_on_their_family_page_with_their_own_navigation(app, fam):
    client = signed_in(app, fam.guardian)
    home = client.get("/")
    assert home.status_code == 302 and home.headers["Location"].endswith("/family")
    page = _text(client.get("/family"))
    for label, href in (("Family", "/family"), ("Estimates", "/estimates/"),
                        ("Account", "/account")):
        assert f'href="{href}"' in page and label in page
    assert 'href="/dashboard"' not in page and 'href="/admin' not in page
    account = client.get("/account")
    assert account.status_code == 200 and "Gale Guardian" in _text(account)


def test_the_terms_gate_holds_a_guardian_like_a_client(app, fam):
    from tests.policies.conftest import publish_first_standard_versions

    publish_first_standard_versions()
    held = signed_in(app, fam.guardian).get("/family")
    assert held.status_code == 302 and "/policies/accept" in held.headers["Location"]


def test_family_pages_are_for_guardians_only(app, fam):
    for person in (fam.jordan, fam.therapist, make_admin()):
        assert signed_in(app, person).get("/family").status_code == 404


# ------------------------------------------------------------------------- the family page

def test_the_family_page_names_each_minor_and_says_what_the_guardian_sees(app, fam):
    page = _text(signed_in(app, fam.guardian).get("/family"))
    assert "Jordan Minor" in page and "Riley Self" in page
    assert "Sam Elsewhere" not in page
    jordan, riley = page.split("Jordan Minor", 1)[1].split("Riley Self", 1)
    assert "You can see their Good Faith Estimates" in jordan
    assert RILEY_WORDS.replace("Riley", "Riley Self") in riley
    assert "Nothing is shared with you" in riley
    # Each minor shown has the look on their access log; the other family's has none.
    actions = {(e.subject_id, e.action) for e in db.session.scalars(
        select(AuditEvent).where(AuditEvent.actor_id == fam.guardian.id))}
    assert {(fam.jordan.id, "guardianship.family_viewed"),
            (fam.riley.id, "guardianship.family_viewed")} <= actions
    assert not any(subject == fam.sam.id for subject, _ in actions)


def test_the_family_page_never_shows_a_minors_conversations(app, fam):
    sending.start_thread(fam.riley, counterpart_id=fam.therapist.id,
                         subject="Private worries", body="Please keep this between us",
                         notify=False)
    page = _text(signed_in(app, fam.guardian).get("/family"))
    assert "Private worries" not in page and "between us" not in page


def test_a_guardian_with_nobody_linked_sees_a_calm_empty_page(app, today):
    page = _text(signed_in(app, make_guardian("Lonely Guardian")).get("/family"))
    assert "No one is linked to your account" in page


# ---------------------------------------------------------------------------- estimates

def test_consent_by_the_guardian_shows_issued_estimates_list_page_and_pdf(app, fam):
    client = signed_in(app, fam.guardian)
    listing = _text(client.get("/estimates/"))
    assert fam.jordan_gfe.number in listing and "For Jordan Minor" in listing
    assert "Ask for an estimate" not in listing  # a guardian does not request for the minor
    for gfe in (fam.riley_gfe, fam.riley_other, fam.sam_gfe):
        assert gfe.number not in listing
    page, pdf = (client.get(url) for url in _estimate_urls(fam.jordan_gfe))
    assert page.status_code == 200 and "Jordan Minor\u2019s Good Faith Estimate" in _text(page)
    assert "I received this estimate" not in _text(page)  # acknowledging is the client's
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"


def test_drafts_other_families_and_unshared_estimates_are_404(app, fam):
    client = signed_in(app, fam.guardian)
    for gfe in (fam.jordan_draft, fam.riley_gfe, fam.riley_other, fam.sam_gfe):
        for url in _estimate_urls(gfe):
            assert client.get(url).status_code == 404, url
    # The other family's guardian sees their own child's, never Gale's children's.
    other = signed_in(app, fam.other_guardian)
    assert other.get(f"/estimates/{fam.sam_gfe.id}").status_code == 200
    for gfe in (fam.jordan_gfe, fam.riley_gfe):
        assert other.get(f"/estimates/{gfe.id}").status_code == 404


def test_a_share_by_the_minor_shows_that_estimate_only_until_withdrawn(app, fam):
    page = _text(signed_in(app, fam.riley).get(f"/estimates/{fam.riley_gfe.id}"))
    assert "Share with Gale Guardian" in page
    shared = _post(app, fam.riley, f"/estimates/{fam.riley_gfe.id}",
                   _share_url(fam.riley_gfe, fam.riley_link))
    assert shared.status_code == 302
    client = signed_in(app, fam.guardian)
    listing = _text(client.get("/estimates/"))
    assert fam.riley_gfe.number in listing and fam.riley_other.number not in listing
    for url in _estimate_urls(fam.riley_gfe):
        assert client.get(url).status_code == 200, url
    for url in _estimate_urls(fam.riley_other):
        assert client.get(url).status_code == 404, url
    assert "1 Good Faith Estimate shared with you" in _text(client.get("/family"))

    after = _text(signed_in(app, fam.riley).get(f"/estimates/{fam.riley_gfe.id}"))
    assert "Gale Guardian can see this estimate" in after and "Stop sharing" in after
    stopped = _post(app, fam.riley, f"/estimates/{fam.riley_gfe.id}",
                    _share_url(fam.riley_gfe, fam.riley_link, stop=True))
    assert stopped.status_code == 302
    for url in _estimate_urls(fam.riley_gfe):
        assert client.get(url).status_code == 404, url


def test_the_therapist_may_share_from_the_staff_page_and_nobody_else_may(app, fam):
    staff_page = _text(signed_in(app, fam.therapist).get(f"/estimates/{fam.riley_gfe.id}"))
    assert "Share with Gale Guardian" in staff_page
    action = _share_url(fam.riley_gfe, fam.riley_link)
    # Not the other therapist, an administrator, the guardian, or another client.
    for person in (fam.other_therapist, make_admin(), fam.guardian, fam.jordan, fam.sam):
        assert _post(app, person, "/account", action).status_code == 404, person.role
    assert not links.shared_ids(fam.riley_link, "estimate")
    # A button without its token is refused (400), and changes nothing.
    assert signed_in(app, fam.therapist).post(action).status_code == 400
    assert not links.shared_ids(fam.riley_link, "estimate")
    assert _post(app, fam.therapist, f"/estimates/{fam.riley_gfe.id}",
                 action).status_code == 302
    assert links.shared_ids(fam.riley_link, "estimate") == {fam.riley_gfe.id}
    assert signed_in(app, fam.guardian).get(f"/estimates/{fam.riley_gfe.id}").status_code == 200
    # The therapist's share is on Riley's access log, in plain words.
    log = access_log(fam.riley)
    assert any(e.what == f"Shared your Good Faith Estimate {fam.riley_gfe.number} with your "
                         "parent or guardian" for e in log)
    assert _post(app, fam.therapist, f"/estimates/{fam.riley_gfe.id}",
                 _share_url(fam.riley_gfe, fam.riley_link, stop=True)).status_code == 302
    assert not links.shared_ids(fam.riley_link, "estimate")


def test_no_share_buttons_when_the_guardian_consented(app, fam):
    page = _text(signed_in(app, fam.jordan).get(f"/estimates/{fam.jordan_gfe.id}"))
    assert "Your parent or guardian consented to your care, so they can already see" in page
    assert "Share with" not in page
    jordan_link = links.live_link(fam.guardian.id, fam.jordan.id)
    assert _post(app, fam.jordan, f"/estimates/{fam.jordan_gfe.id}",
                 _share_url(fam.jordan_gfe, jordan_link)).status_code == 404
    # A link from another minor's estimate is not this estimate's (404).
    assert _post(app, fam.riley, f"/estimates/{fam.riley_gfe.id}",
                 _share_url(fam.riley_gfe, jordan_link)).status_code == 404


# ------------------------------------------------------------------------------ the end

def test_an_ended_link_is_404_at_once(app, fam):
    client = signed_in(app, fam.guardian)
    assert client.get(f"/estimates/{fam.jordan_gfe.id}").status_code == 200
    links.unlink(make_admin(), links.live_link(fam.guardian.id, fam.jordan.id))
    for url in _estimate_urls(fam.jordan_gfe):
        assert client.get(url).status_code == 404, url
    assert fam.jordan_gfe.number not in _text(client.get("/estimates/"))
    assert "Jordan Minor" not in _text(client.get("/family"))


def test_access_ends_on_the_18th_birthday_itself(app, monkeypatch, fast_pdf):  # noqa: F811
    clock = freeze(monkeypatch, date(2026, 6, 19))
    guardian = make_guardian("Gale Guardian")
    therapist = make_user("therapist", "Colleen Example")
    almost = make_minor(date(2008, 6, 20), consent_by="guardian", guardian=guardian,
                        name="Almost Adult")
    _assign(almost, therapist)
    gfe = _issue(therapist, almost)
    client = signed_in(app, guardian)
    for url in _estimate_urls(gfe):
        assert client.get(url).status_code == 200, url
    clock.set(date(2026, 6, 20))  # the birthday, before the daily job has run
    for url in _estimate_urls(gfe):
        assert client.get(url).status_code == 404, url
    assert gfe.number not in _text(client.get("/estimates/"))
    assert "Almost Adult" not in _text(client.get("/family"))


# ------------------------------------------------------------------- conversations never

def test_a_minors_threads_and_attachments_are_404_for_the_guardian(app, fam):
    for minor in (fam.jordan, fam.riley):
        thread, message = sending.start_thread(minor, counterpart_id=fam.therapist.id,
                                               subject="Mine", body="My own words",
                                               files=[("note.png", PNG)], notify=False)
        attachment = db.session.scalar(select(Attachment.id).where(
            Attachment.message_id == message.id))
        assert attachment is not None
        assert signed_in(app, minor).get(f"/messages/{thread.id}").status_code == 200
        client = signed_in(app, fam.guardian)
        assert client.get(f"/messages/{thread.id}").status_code == 404
        assert client.get(f"/messages/attachments/{attachment}").status_code == 404
        assert "My own words" not in _text(client.get("/messages"))
    # Even with an estimate shared, the conversations stay Riley's.
    links.share(fam.riley, fam.riley_link, "estimate", fam.riley_gfe.id)
    assert signed_in(app, fam.guardian).get(f"/messages/{thread.id}").status_code == 404


# ---------------------------------------------------------------------------- access log

def test_every_guardian_look_at_an_estimate_is_on_the_minors_access_log(app, fam):
    client = signed_in(app, fam.guardian)
    client.get("/estimates/")
    for url in _estimate_urls(fam.jordan_gfe):
        client.get(url)
    events = [(e.action, e.target_id) for e in db.session.scalars(
        select(AuditEvent).where(AuditEvent.actor_id == fam.guardian.id,
                                 AuditEvent.subject_id == fam.jordan.id)
        .order_by(AuditEvent.seq))]
    assert [a for a, _ in events if a.startswith("estimate.")] == [
        "estimate.guardian_listed", "estimate.guardian_opened", "estimate.guardian_downloaded"]
    log = access_log(fam.jordan)
    mine = [e for e in log if e.who == "Gale Guardian"]
    assert {e.role for e in mine} == {"Parent or guardian"}
    whats = {e.what for e in mine}
    assert f"Looked at your Good Faith Estimate {fam.jordan_gfe.number}" in whats
    assert f"Downloaded your Good Faith Estimate {fam.jordan_gfe.number}" in whats
    assert "Saw your Good Faith Estimates in their list of estimates" in whats
    # Riley's estimates were not listed (none shared): nothing on Riley's log about them.
    assert not [e for e in access_log(fam.riley) if "estimate" in e.what.lower()
                and e.who == "Gale Guardian"]
    # The guardian's looks do not count as the minor's own delivery evidence.
    db.session.refresh(fam.jordan_gfe)
    assert fam.jordan_gfe.first_viewed_at is None and fam.jordan_gfe.download_count == 0


def test_a_replacement_the_minor_has_not_shared_is_not_even_named(app, fam):
    from portal.estimates import follow_ups

    links.share(fam.riley, fam.riley_link, "estimate", fam.riley_gfe.id)
    correction = follow_ups.start_correction(fam.therapist, fam.riley_gfe)
    drafting.save_draft(fam.therapist, correction, complete_draft(practice_today()))
    newer = issuing.issue(fam.therapist, correction.id)
    client = signed_in(app, fam.guardian)
    page = _text(client.get(f"/estimates/{fam.riley_gfe.id}"))
    assert "Replaced" in page and newer.number not in page
    assert client.get(f"/estimates/{newer.id}").status_code == 404
    # Riley sees their own replacement named, as always.
    assert newer.number in _text(signed_in(app, fam.riley).get(f"/estimates/{fam.riley_gfe.id}"))
