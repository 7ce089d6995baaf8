"""Legal holds: a dispute, litigation or an investigation blocks the retention purge.

Practice policy on record retention (45 CFR 164.316(b)(2) asks for six years; the practice
keeps RETENTION_YEARS): a record under a legal hold is kept past the retention period until
the hold is released, whatever calls the purge. Holds are released, never deleted, and both
changes are audited with ids and fixed words only.
"""

import os
import re
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, select, update

from portal.accounts.models import LegalHold, User
from portal.audit import AuditEvent, verify
from portal.audit.access_log import access_log
from portal.crypto.cli import keys_cli
from portal.crypto.models import DataKey
from portal.errors import RuleError
from portal.extensions import db
from portal.ops import holds, retention
from portal.practice import today as practice_today
from tests.accounts.support import (
    guarded_requests,  # noqa: F401 - fixture (500 guard)
    post_form,
    sign_in,
)
from tests.accounts.support import make_user as make_person
from tests.messaging.conftest import make_user
from tests.ops.test_retention import conversation_at, counts, person_at, years_ago


@pytest.fixture
def old_client(app):
    """A client whose retention clock started eight years ago: past seven, eligible."""
    therapist = person_at(years_ago(9), "therapist", "Colleen Xu")
    client = person_at(years_ago(8.2), "client", "Hal Dover", therapist)
    conversation_at(years_ago(8), client, therapist)
    return client


def events(action_prefix: str) -> list[AuditEvent]:
    found = list(db.session.scalars(select(AuditEvent).where(
        AuditEvent.action.startswith(action_prefix)).order_by(AuditEvent.seq)))
    db.session.commit()
    return found


# ----------------------------------------------------------------------------- the service


def test_placing_and_releasing_a_hold_is_audited_with_ids_and_a_fixed_reason(app):
    admin, client = make_user("admin", "Ada Min"), make_user("client", "Cle Ent")
    hold = holds.place(admin, client, "litigation")
    assert holds.open_hold(client.id).id == hold.id
    holds.release(admin, client, hold.id)
    assert holds.open_hold(client.id) is None

    placed, released = events("legal_hold.")
    assert (placed.action, placed.actor_id, placed.subject_id, placed.target_type,
            placed.target_id) == ("legal_hold.placed.litigation", admin.id, client.id,
                                  "legal_hold", str(hold.id))
    assert (released.action, released.subject_id) == ("legal_hold.released", client.id)
    kept = db.session.get(LegalHold, hold.id)
    assert kept.released_by_id == admin.id and kept.released_at is not None
    assert verify().ok
    words = [entry.what for entry in access_log(client)]
    assert words == ["Released the hold that kept your record from being deleted",
                     "Placed a hold that keeps your record from being deleted"]


@pytest.mark.parametrize("reason", [None, "", "grudge", "dispute; drop table"])
def test_a_hold_needs_a_reason_from_the_list(app, reason):
    admin, client = make_user("admin"), make_user("client")
    with pytest.raises(RuleError) as refused:
        holds.place(admin, client, reason)
    assert refused.value.field == "reason"
    assert db.session.scalar(select(func.count()).select_from(LegalHold)) == 0
    assert events("legal_hold.") == []


def test_only_an_administrator_places_a_hold_and_only_on_a_client(app):
    therapist, client = make_user("therapist"), make_user("client")
    admin = make_user("admin")
    with pytest.raises(RuleError, match="administrator"):
        holds.place(therapist, client, "dispute")
    with pytest.raises(RuleError, match="client"):
        holds.place(admin, therapist, "dispute")
    assert db.session.scalar(select(func.count()).select_from(LegalHold)) == 0


def test_the_same_reason_is_not_held_twice_and_a_release_happens_once(app):
    admin, client = make_user("admin"), make_user("client")
    hold = holds.place(admin, client, "dispute")
    with pytest.raises(RuleError, match="already held for a dispute"):
        holds.place(admin, client, "dispute")
    other = holds.place(admin, client, "investigation")  # another matter: a second hold
    holds.release(admin, client, hold.id)
    with pytest.raises(RuleError, match="already released"):
        holds.release(admin, client, hold.id)
    assert holds.open_hold(client.id).id == other.id
    someone_else = make_user("client")
    with pytest.raises(RuleError, match="not on this record"):
        holds.release(admin, someone_else, other.id)
    assert holds.open_hold(client.id).id == other.id


def test_a_hold_is_released_never_deleted_or_rewritten(app):
    admin, client = make_user("admin"), make_user("client")
    hold = holds.place(admin, client, "dispute")
    db.session.delete(db.session.get(LegalHold, hold.id))
    with pytest.raises(holds.HoldHistoryError, match="never deleted"):
        db.session.flush()
    db.session.rollback()
    with pytest.raises(holds.HoldHistoryError, match="bulk"):
        db.session.execute(delete(LegalHold))
    db.session.rollback()
    with pytest.raises(holds.HoldHistoryError, match="bulk"):
        db.session.execute(update(LegalHold).values(released_at=datetime.now(UTC)))
    db.session.rollback()
    kept = db.session.get(LegalHold, hold.id)
    kept.reason = "litigation"
    with pytest.raises(holds.HoldHistoryError, match="only its release"):
        db.session.flush()
    db.session.rollback()
    holds.release(admin, client, hold.id)
    kept = db.session.get(LegalHold, hold.id)
    kept.released_at = None
    with pytest.raises(holds.HoldHistoryError, match="stays released"):
        db.session.flush()
    db.session.rollback()
    assert [h.id for h in holds.history(client.id)] == [hold.id]


# ----------------------------------------------------------------------------- the purge


def test_a_held_client_is_reported_as_held_and_never_purged(old_client, app, runner):
    admin = make_user("admin", "Ada Min")
    holds.place(admin, old_client, "dispute")
    since = practice_today().isoformat()

    report = runner.invoke(args=["portal", "retention", "report", "--by", admin.email_address])
    assert report.exit_code == 0, report.output
    assert f"legal hold     held (dispute, since {since})" in report.output
    assert "1 of them are under a legal hold: the purge leaves them alone" in report.output

    cutoff = retention.retention_cutoff().isoformat()
    purge = runner.invoke(args=["portal", "retention", "purge", "--before", cutoff],
                          input="purge 1 client\n")
    assert purge.exit_code == 0, purge.output
    assert f"{old_client.id}: held (dispute, since {since}): not purged." in purge.output
    assert "nothing to purge" in purge.output
    db.session.remove()
    assert counts(old_client.id) == (1, 3, 0)
    assert db.session.get(User, old_client.id).active


def test_purge_refuses_a_held_client_even_when_called_directly_with_its_id(old_client, app):
    """Practice policy: a legal hold overrides the retention period (45 CFR 164.316(b)(2) is
    a minimum), even for a caller that skips the report and names the client itself."""
    admin = make_user("admin")
    cutoff = retention.retention_cutoff()
    confirmed = retention.client_records(cutoff)  # listed before the hold was placed
    assert [r.client_id for r in confirmed] == [old_client.id] and not confirmed[0].on_hold
    holds.place(admin, old_client, "litigation")

    forged = retention.ClientRecord(old_client.id, years_ago(8), "message")
    for records in (confirmed, [forged], None):
        result = retention.purge(cutoff, records=records)
        assert result.shredded == [] and result.held == []
        assert [r.client_id for r in result.on_hold] == [old_client.id]
        assert result.on_hold[0].hold_status.startswith("held (litigation, since ")
    db.session.remove()
    assert counts(old_client.id) == (1, 3, 0)
    assert db.session.get(User, old_client.id).active
    blocked = events("retention.purge_blocked.legal_hold")
    assert len(blocked) == 3 and {e.subject_id for e in blocked} == {old_client.id}
    assert {e.outcome for e in blocked} == {"denied"}
    assert events("retention.purged") == []


def test_once_the_hold_is_released_the_purge_goes_ahead(old_client, app):
    admin = make_user("admin")
    hold = holds.place(admin, old_client, "investigation")
    cutoff = retention.retention_cutoff()
    assert retention.purge(cutoff).on_hold
    holds.release(admin, old_client, hold.id)
    result = retention.purge(cutoff)
    assert result.shredded == [old_client.id] and result.on_hold == []
    db.session.remove()
    assert counts(old_client.id) == (0, 0, 0)
    assert holds.history(old_client.id)[0].released_at is not None  # the history stays


# ----------------------------------------------------------------------------- the page


@pytest.fixture
def signed_in_admin(app):
    person = make_person("admin", name="Ada Admin")
    browser = app.test_client()
    sign_in(browser, person)
    return person, browser


def test_an_administrator_places_and_releases_a_hold_from_the_clients_page(app,
                                                                          signed_in_admin):
    _admin, browser = signed_in_admin
    client = make_person("client", name="Robin Client")
    page = f"/admin/users/{client.id}"
    assert "No legal hold." in browser.get(page).get_data(as_text=True)

    placed = post_form(browser, f"{page}/holds", {"reason": "dispute"}, page=page)
    assert placed.status_code == 302 and placed.location.endswith(page)
    html = browser.get(page).get_data(as_text=True)
    assert "A dispute, since" in html and "Release hold" in html
    assert re.search(r"A dispute: placed \w+ \d+, \d{4} by Ada Admin;\s+still open\.", html)
    hold = holds.open_hold(client.id)
    db.session.commit()

    released = post_form(browser, f"{page}/holds/{hold.id}/release", page=page)
    assert released.status_code == 302
    html = browser.get(page).get_data(as_text=True)
    assert "No legal hold." in html and "Release hold" not in html
    assert re.search(r"A dispute: placed .+ by Ada Admin;\s+released .+ by Ada Admin\.", html)
    assert [e.action for e in events("legal_hold.")] == ["legal_hold.placed.dispute",
                                                         "legal_hold.released"]


@pytest.mark.parametrize("reason", ["", "grudge"])
def test_a_bad_reason_is_shown_on_the_form_with_422(app, signed_in_admin, reason):
    _, browser = signed_in_admin
    client = make_person("client")
    page = f"/admin/users/{client.id}"
    response = post_form(browser, f"{page}/holds", {"reason": reason}, page=page)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert re.search(r'id="reason-error">.*(Choose why the record is held|Not a valid choice)',
                     html)
    assert 'aria-invalid="true"' in html
    assert holds.open_hold(client.id) is None


def test_hold_forms_need_csrf_and_an_administrator_and_the_clients_own_hold(app,
                                                                           signed_in_admin):
    admin, browser = signed_in_admin
    client, other = make_person("client"), make_person("client")
    therapist = make_person("therapist")
    page = f"/admin/users/{client.id}"
    assert browser.post(f"{page}/holds", data={"reason": "dispute"}).status_code == 400
    assert post_form(browser, f"/admin/users/{therapist.id}/holds", {"reason": "dispute"},
                     page=page).status_code == 404
    hold = holds.place(admin.user, other.user, "dispute")
    # Another client's hold, or one that does not exist, through this client's page: 404.
    for hold_id in (hold.id, uuid.uuid4()):
        assert post_form(browser, f"{page}/holds/{hold_id}/release",
                         page=page).status_code == 404
    assert holds.open_hold(other.id) is not None

    staff_browser = app.test_client()
    sign_in(staff_browser, therapist)
    assert post_form(staff_browser, f"{page}/holds", {"reason": "dispute"},
                     page="/account").status_code == 404
    assert holds.open_hold(client.id) is None
    db.session.commit()


# A hold and a purge at once, on two connections: PostgreSQL only (SQLite has one writer).

@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"),
                    reason="needs PostgreSQL: set TEST_DATABASE_URL (CI does). SQLite takes "
                           "one writer at a time, so there is no race to prove.")
def test_a_hold_placed_while_a_purge_runs_is_never_missed(app):
    """Both take the client's row lock first: a purge either finished before the hold was
    placed, or it sees the hold and leaves the record alone."""
    therapist = person_at(years_ago(9), "therapist", "Colleen Xu")
    admin = make_user("admin")
    outcomes = []
    for n in range(6):
        client = person_at(years_ago(8.2), "client", f"Race {n}", therapist)
        conversation_at(years_ago(8), client, therapist)
        ids = dict(client=client.id, admin=admin.id)
        db.session.commit()
        barrier = threading.Barrier(2)
        errors: list[str] = []

        def hold(ids=ids, barrier=barrier, errors=errors) -> None:
            with app.app_context():
                try:
                    people = (db.session.get(User, ids["admin"]),
                              db.session.get(User, ids["client"]))
                    db.session.commit()
                    barrier.wait(timeout=10)
                    holds.place(*people, "litigation")
                except Exception as error:  # reported by the assertion
                    errors.append(f"{type(error).__name__}: {error}")
                finally:
                    db.session.remove()

        def purge(ids=ids, barrier=barrier, errors=errors, late=n % 2) -> None:
            with app.app_context():
                try:
                    cutoff = retention.retention_cutoff()
                    records = retention.client_records(cutoff, only=ids["client"])
                    db.session.commit()
                    barrier.wait(timeout=10)
                    if late:  # every other round the hold usually gets the lock first
                        time.sleep(0.2)
                    retention.purge(cutoff, records=records)
                except Exception as error:
                    errors.append(f"{type(error).__name__}: {error}")
                finally:
                    db.session.remove()

        workers = [threading.Thread(target=hold), threading.Thread(target=purge)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=60)
        assert not any(w.is_alive() for w in workers) and errors == []
        seq = {e.action: e.seq for e in db.session.scalars(select(AuditEvent).where(
            AuditEvent.subject_id == client.id))}
        db.session.commit()
        placed = seq["legal_hold.placed.litigation"]
        if "retention.purged" in seq:
            assert seq["retention.purged"] < placed  # purged first, then held
            outcomes.append("purged first")
        else:
            assert seq["retention.purge_blocked.legal_hold"] > placed
            assert counts(client.id) == (1, 3, 0)
            outcomes.append("held first")
    assert len(outcomes) == 6 and set(outcomes) == {"purged first", "held first"}, outcomes


def test_a_held_record_is_never_crypto_shredded_by_hand_either(app, old_client):
    """`portal keys shred` asks the shred guards first: a legal hold refuses it, no key goes;
    once the hold is released, the same command shreds."""
    admin = make_user("admin")
    hold = holds.place(admin, old_client, "litigation")
    runner = app.test_cli_runner()
    out = runner.invoke(keys_cli, ["shred", "--client", str(old_client.id)], input="SHRED\n")
    assert out.exit_code == 1
    assert "not shredded: the record is under a legal hold (litigation" in out.output
    db.session.expire_all()
    assert all(key.wrapped is not None for key in db.session.scalars(
        select(DataKey).where(DataKey.owner_id == old_client.id)))

    holds.release(admin, old_client, hold.id)
    out = runner.invoke(keys_cli, ["shred", "--client", str(old_client.id)], input="SHRED\n")
    assert out.exit_code == 0, out.output
    db.session.expire_all()
    assert all(key.wrapped is None for key in db.session.scalars(
        select(DataKey).where(DataKey.owner_id == old_client.id)))
