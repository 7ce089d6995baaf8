"""Correcting and renewing from the staff page: one flow, two rules about which estimate may
start it, two messages. Pinned here so the shared view code keeps each route's behaviour."""

import re
import uuid

import pytest
from sqlalchemy import select

from portal.errors import RuleError
from portal.estimates import follow_ups, issuing
from portal.estimates.models import GoodFaithEstimate
from portal.extensions import db
from tests.estimates.conftest import csrf, sign_in

READY = {
    # 45 CFR 149.610(b)(1)(vii): the flash says when the correction is due.
    "correct": "A corrected copy is ready to edit. The current estimate stays in force until "
               "you issue the correction, which is due one business day before the",
    "renew": "A renewal for the next period is ready to edit.",
}
LINK = {"correct": "supersedes_id", "renew": "renews_id"}


@pytest.fixture
def therapist(client, practice):
    """The therapist, signed in, and a CSRF token for their session."""
    sign_in(client, practice.therapist)
    return client, csrf(client)


def _follow_up(therapist, estimate, action: str, *, with_form: bool = True):
    client, token = therapist
    return client.post(f"/estimates/{estimate.id}/{action}",
                       data={"csrf_token": token} if with_form else {})


def _draft_id(response) -> uuid.UUID:
    return uuid.UUID(re.search(r"/estimates/([0-9a-f-]{36})/edit",
                               response.headers["Location"]).group(1))


@pytest.mark.parametrize("action", ["correct", "renew"])
def test_a_follow_up_opens_a_linked_draft_and_says_so(therapist, practice, action):
    client, _ = therapist
    issued = practice.issued()
    response = _follow_up(therapist, issued, action)
    assert response.status_code == 302
    draft = db.session.get(GoodFaithEstimate, _draft_id(response))
    assert draft.status == "draft" and getattr(draft, LINK[action]) == issued.id
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert READY[action] in page


@pytest.mark.parametrize("action", ["correct", "renew"])
def test_asking_twice_returns_the_draft_under_way(therapist, practice, action):
    issued = practice.issued()
    first = _follow_up(therapist, issued, action)
    second = _follow_up(therapist, issued, action)
    assert _draft_id(first) == _draft_id(second)


@pytest.mark.parametrize("action", ["correct", "renew"])
def test_a_follow_up_needs_the_button_form(therapist, practice, action):
    response = _follow_up(therapist, practice.issued(), action, with_form=False)
    assert response.status_code == 400


@pytest.mark.parametrize("action", ["correct", "renew"])
def test_a_draft_has_no_follow_up(therapist, practice, action):
    assert _follow_up(therapist, practice.draft(), action).status_code == 404


def test_a_superseded_estimate_is_not_corrected_again(therapist, practice):
    original = practice.issued()
    issuing.issue(practice.therapist, follow_ups.start_correction(practice.therapist, original).id)
    assert _follow_up(therapist, original, "correct").status_code == 404


@pytest.mark.parametrize(("action", "starter"), [("correct", "start_correction"),
                                                  ("renew", "start_renewal")])
def test_a_refusal_is_shown_on_the_estimate(therapist, practice, monkeypatch, action, starter):
    client, _ = therapist
    issued = practice.issued()

    def refuse(actor, estimate):
        raise RuleError("Not today.")

    monkeypatch.setattr(follow_ups, starter, refuse)
    response = _follow_up(therapist, issued, action)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/estimates/{issued.id}")
    assert "Not today." in client.get(response.headers["Location"]).get_data(as_text=True)


def _renewal_drafts(estimate_id) -> list[GoodFaithEstimate]:
    return list(db.session.scalars(select(GoodFaithEstimate).where(
        GoodFaithEstimate.renews_id == estimate_id)))


def test_a_superseded_estimate_is_not_renewed(therapist, practice):
    client, _ = therapist
    original = practice.issued()
    issuing.issue(practice.therapist, follow_ups.start_correction(practice.therapist, original).id)
    page = client.get(f"/estimates/{original.id}").get_data(as_text=True)
    assert f"/estimates/{original.id}/renew" not in page  # the page offers no renewal...
    response = _follow_up(therapist, original, "renew")
    assert response.status_code == 404  # ...and a direct POST is refused the same way
    assert _renewal_drafts(original.id) == []


def test_a_one_off_estimate_is_not_renewed(therapist, practice):
    client, _ = therapist
    one_off = practice.issued(sessions_min=1, sessions_max=1)
    assert one_off.recurring is False
    page = client.get(f"/estimates/{one_off.id}").get_data(as_text=True)
    assert f"/estimates/{one_off.id}/renew" not in page
    assert _follow_up(therapist, one_off, "renew").status_code == 404
    assert _renewal_drafts(one_off.id) == []
