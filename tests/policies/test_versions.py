"""Publishing versions: numbering, hashing, immutability, dates and the standard texts."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from portal import hooks, practice
from portal.audit.models import AuditEvent
from portal.db import new_id
from portal.errors import RuleError
from portal.extensions import db
from portal.policies import service
from portal.policies.models import PolicyAcceptance, PolicyImmutableError, PolicyVersion
from portal.policies.rendering import load_default, text_hash
from tests.policies.conftest import make_user, publish


def test_publish_numbers_versions_from_one_and_hashes_the_text(app):
    first = publish("privacy", number_text="# Privacy Policy\n\nOne.\n")
    second = publish("privacy", number_text="# Privacy Policy\n\nTwo.\n")
    other = publish("terms")
    assert (first.number, second.number, other.number) == (1, 2, 1)
    assert first.text_hash == text_hash("# Privacy Policy\n\nOne.\n")
    assert second.published_at is not None


def test_publish_stores_unix_line_endings_so_the_hash_matches_the_stored_text(app):
    version = publish("terms", number_text="# Terms of Service\r\n\r\nHello.\r\n")
    assert version.text == "# Terms of Service\n\nHello.\n"
    assert version.text_hash == text_hash(version.text)


def test_publish_writes_an_audit_event(app):
    admin = make_user("admin")
    version = publish("terms", actor=admin)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "policy.published"))
    assert event.target_type == "policy_version"
    assert event.target_id == str(version.id)
    assert event.actor_id == admin.id
    assert version.published_by_id == admin.id


def test_a_published_version_cannot_be_changed_through_the_orm(app):
    version = publish("terms")
    version.summary = "Something else"
    with pytest.raises(PolicyImmutableError):
        db.session.flush()
    db.session.rollback()
    version.text = "# Terms of Service\n\nRewritten.\n"
    with pytest.raises(PolicyImmutableError):
        db.session.commit()
    db.session.rollback()
    assert db.session.get(PolicyVersion, version.id).summary == "Clearer wording."


def test_a_published_version_cannot_be_deleted(app):
    version = publish("terms")
    db.session.delete(version)
    with pytest.raises(PolicyImmutableError):
        db.session.flush()
    db.session.rollback()
    assert db.session.get(PolicyVersion, version.id) is not None


@pytest.mark.parametrize("statement", [
    update(PolicyVersion).values(summary="sneaky"),
    delete(PolicyVersion),
    update(PolicyAcceptance).values(ip_sealed=b"1.2.3.4"),
    delete(PolicyAcceptance),
])
def test_bulk_update_and_delete_of_policy_rows_are_refused(app, statement):
    publish("terms")
    with pytest.raises(PolicyImmutableError):
        db.session.execute(statement)
    db.session.rollback()


def test_an_acceptance_cannot_be_changed(app):
    user = make_user()
    version = publish("terms")
    service.accept(user, [version.id], ip="10.0.0.1")
    row = db.session.scalar(select(PolicyAcceptance))
    row.ip_sealed = b"10.9.9.9"
    with pytest.raises(PolicyImmutableError):
        db.session.flush()
    db.session.rollback()


def test_setting_an_attribute_to_its_own_value_is_not_a_change(app):
    version = publish("terms")
    version.summary = version.summary
    db.session.commit()  # no error: nothing changed


def test_no_route_edits_or_deletes_a_published_version(app):
    writable = {rule.endpoint for rule in app.url_map.iter_rules()
                if rule.endpoint.startswith("policies.")
                and {"POST", "PUT", "PATCH", "DELETE"} & set(rule.methods or ())}
    assert writable == {"policies.accept", "policies.admin_publish", "policies.admin_init"}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("policies.") and "number" in rule.arguments:
            assert rule.methods <= {"GET", "HEAD", "OPTIONS"}, rule


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"slug": "cookies"}, "slug", "no such policy"),
    ({"text": "   \n"}, "text", "Write the policy text"),
    ({"text": "<script>alert(1)</script>"}, "text", "Nothing would be left"),
    ({"text": "x" * 100_001}, "text", "too long"),
    ({"summary": "  "}, "summary", "what changed"),
    ({"summary": "x" * 501}, "summary", "under 500"),
    ({"effective_date": None}, "effective_date", "Choose the date"),
])
def test_publish_refuses_bad_input(app, changes, field, message):
    values = {"slug": "terms", "text": "# Terms of Service\n\nHi.\n",
              "effective_date": practice.today(), "summary": "First."}
    values.update(changes)
    with pytest.raises(RuleError) as caught:
        service.publish(None, **values)
    assert caught.value.field == field
    assert message in caught.value.message
    assert db.session.scalar(select(func.count()).select_from(PolicyVersion)) == 0


def test_the_first_version_may_record_an_earlier_effective_date(app):
    version = publish("terms", effective=date(2024, 3, 1))
    assert version.effective_date == date(2024, 3, 1)


def test_a_new_version_cannot_take_effect_in_the_past(app):
    publish("terms", effective=date(2024, 3, 1))
    with pytest.raises(RuleError, match="in the past"):
        publish("terms", effective=practice.today() - timedelta(days=1))


def test_a_new_version_cannot_take_effect_before_the_previous_one(app):
    later = practice.today() + timedelta(days=30)
    publish("terms", effective=later)
    with pytest.raises(RuleError, match="cannot take effect before it"):
        publish("terms", effective=later - timedelta(days=1))


def test_a_new_version_must_change_the_text(app):
    version = publish("terms")
    with pytest.raises(RuleError, match="same as version 1"):
        publish("terms", number_text=version.text.replace("\n", "\r\n"))


def test_two_versions_with_the_same_number_are_refused_by_the_database(app):
    version = publish("terms")
    db.session.add(PolicyVersion(id=new_id(), slug="terms", number=version.number,
                                 effective_date=version.effective_date, summary="x",
                                 text="y", text_hash=text_hash("y")))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_the_current_version_changes_at_midnight_in_new_york(app):
    with time_machine.travel(datetime(2026, 12, 1, 12, tzinfo=UTC), tick=False):
        old = publish("terms", effective=date(2026, 12, 1))
        new = publish("terms", effective=date(2027, 1, 1))
    # 04:59 UTC on January 1 is still December 31 in New York (UTC-5).
    with time_machine.travel(datetime(2027, 1, 1, 4, 59, tzinfo=UTC), tick=False):
        assert practice.today() == date(2026, 12, 31)
        assert service.current_version("terms").id == old.id
        assert service.current_versions()["terms"].id == old.id
    with time_machine.travel(datetime(2027, 1, 1, 5, 0, tzinfo=UTC), tick=False):
        assert service.current_version("terms").id == new.id
        assert service.current_versions()["terms"].id == new.id


def test_status_of_versions(app):
    with time_machine.travel(datetime(2026, 12, 1, 12, tzinfo=UTC), tick=False):
        one = publish("terms", effective=date(2026, 12, 1))
        two = publish("terms", effective=date(2026, 12, 2))
        three = publish("terms", effective=date(2027, 6, 1))
    with time_machine.travel(datetime(2026, 12, 10, 12, tzinfo=UTC), tick=False):
        current = service.current_version("terms")
        assert [service.status_of(v, current) for v in (one, two, three)] == [
            "superseded", "current", "upcoming"]


def test_ensure_defaults_publishes_every_standard_text_once(app):
    published = service.ensure_defaults()
    assert [(v.slug, v.number) for v in published] == [
        ("terms", 1), ("privacy", 1), ("privacy", 2), ("good-faith-estimate", 1),
        ("good-faith-estimate", 2), ("accessibility", 1)]
    for version in published:
        assert version.effective_date == practice.today()
        assert version.requires_acceptance is (version.slug in {"terms", "privacy"})
    for slug in service.POLICY_SLUGS:  # the newest standard text is the current version
        assert service.current_version(slug).text == load_default(slug)
    assert service.ensure_defaults() == []
    assert db.session.scalar(select(func.count()).select_from(PolicyVersion)) == 6


def test_ensure_defaults_fills_in_only_what_is_missing(app):
    publish("terms")
    published = service.ensure_defaults()
    assert [v.slug for v in published] == ["privacy", "privacy", "good-faith-estimate",
                                            "good-faith-estimate", "accessibility"]
    assert len(service.versions_of("terms")) == 1  # the practice's own text stays


def test_demo_seeder_is_registered_and_publishes_the_standard_texts(app):
    admin = make_user("admin")
    assert service.seed_demo in list(hooks.demo_seeders)
    service.seed_demo({"admin@coeo.example": admin})
    assert service.missing_defaults() == []
    assert service.current_version("terms").published_by_id == admin.id
