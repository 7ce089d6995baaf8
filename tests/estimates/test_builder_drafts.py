"""The estimate builder keeps what is typed before "Save draft": saved as typed (sealed under
the estimate's client), restored on the builder, gone once the estimate is saved."""

from sqlalchemy import select

from portal.estimates import content
from portal.extensions import db
from portal.messaging import drafts
from portal.messaging.models import Draft
from portal.practice import today as practice_today
from tests.estimates.conftest import builder_payload, complete_draft, csrf, sign_in

MARKER = "Ximena Draftmarker-5521"


def _rows():
    db.session.expire_all()
    return db.session.scalars(select(Draft)).all()


def _save(client, estimate_id, fields, token):
    return client.post(f"/drafts/estimate:{estimate_id}", data=fields,
                       headers={"X-CSRFToken": token, "X-Requested-With": "fetch"})


def test_unsaved_builder_changes_come_back_on_the_builder(app, client, practice):
    estimate = practice.draft()
    db.session.commit()
    sign_in(client, practice.therapist)
    token = csrf(client)
    typed = builder_payload(complete_draft(practice_today(), client_legal_name=MARKER),
                            token=token)
    typed["lines-1-description"] = "Individual psychotherapy, typed again"
    del typed["csrf_token"]
    assert _save(client, estimate.id, typed, token).status_code == 204
    (row,) = _rows()
    assert row.owner_id == practice.client.id and row.author_id == practice.therapist.id
    assert MARKER.encode() not in bytes(row.content_sealed)

    page = client.get(f"/estimates/{estimate.id}/edit").get_data(as_text=True)
    assert "Draft restored" in page
    assert f'value="{MARKER}"' in page
    assert 'value="Individual psychotherapy, typed again"' in page
    assert f'data-draft-url="/drafts/estimate:{estimate.id}"' in page
    # The estimate itself is unchanged until it is saved.
    assert content.open_draft(estimate).client_legal_name != MARKER


def test_saving_the_estimate_deletes_the_typed_draft(app, client, practice):
    estimate = practice.draft()
    db.session.commit()
    sign_in(client, practice.therapist)
    token = csrf(client)
    payload = builder_payload(complete_draft(practice_today(), client_legal_name=MARKER),
                              token=token)
    assert _save(client, estimate.id, {"client_legal_name": MARKER}, token).status_code == 204
    assert client.post(f"/estimates/{estimate.id}/edit", data=payload).status_code == 302
    assert _rows() == []
    page = client.get(f"/estimates/{estimate.id}/edit").get_data(as_text=True)
    assert "Draft restored" not in page and f'value="{MARKER}"' in page  # now saved


def test_a_refused_save_keeps_the_typed_draft(app, client, practice):
    estimate = practice.draft()
    db.session.commit()
    sign_in(client, practice.therapist)
    token = csrf(client)
    payload = builder_payload(complete_draft(practice_today()), token=token,
                              client_dob="1991-02-30")
    assert _save(client, estimate.id, {"client_dob": "1991-02-30"}, token).status_code == 204
    assert client.post(f"/estimates/{estimate.id}/edit", data=payload).status_code == 422
    assert drafts.load(practice.therapist, f"estimate:{estimate.id}") == {
        "client_dob": "1991-02-30"}


def test_only_staff_who_may_edit_the_estimate_can_keep_a_draft_of_it(app, client, practice):
    estimate = practice.draft()
    issued = practice.issued()
    db.session.commit()
    for person in (practice.other_therapist, practice.client):
        sign_in(client, person)
        token = csrf(client)
        assert _save(client, estimate.id, {"client_legal_name": "x"}, token).status_code == 404
    sign_in(client, practice.therapist)
    token = csrf(client)
    assert _save(client, issued.id, {"client_legal_name": "x"}, token).status_code == 404
    assert _rows() == []
    # An administrator may edit every draft estimate, so may keep a draft of one.
    sign_in(client, practice.admin)
    token = csrf(client)
    assert _save(client, estimate.id, {"client_legal_name": "admin"}, token).status_code == 204
    assert [row.owner_id for row in _rows()] == [practice.client.id]


def test_a_builder_draft_with_too_long_a_field_is_refused(app, client, practice):
    estimate = practice.draft()
    db.session.commit()
    sign_in(client, practice.therapist)
    token = csrf(client)
    too_long = "x" * (app.config["MESSAGE_MAX_CHARS"] + 1)
    assert _save(client, estimate.id, {"client_address": too_long}, token).status_code == 413
    assert _rows() == []
