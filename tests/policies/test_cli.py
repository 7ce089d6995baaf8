"""`portal policies publish / list / init` from the command line."""

from datetime import timedelta

from sqlalchemy import func, select

from portal import practice
from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.policies import service
from portal.policies.rendering import text_hash
from tests.policies.conftest import email_of, make_user

TEXT = "# Privacy Policy\n\n## What changed\n\nWe keep the access log for six years.\n"


def _publish_args(path, *extra, effective=None, summary="We keep the access log longer."):
    effective = effective or (practice.today() + timedelta(days=14)).isoformat()
    return ["portal", "policies", "publish", "--slug", "privacy", "--file", str(path),
            "--effective", effective, "--summary", summary, *extra]


def test_init_publishes_the_standard_texts_once(runner):
    result = runner.invoke(args=["portal", "policies", "init"])
    assert result.exit_code == 0, result.output
    assert "Published Terms of Service version 1" in result.output
    assert service.missing_defaults() == []
    again = runner.invoke(args=["portal", "policies", "init"])
    assert again.exit_code == 0
    assert "nothing to do" in again.output


def test_publish_from_a_file(runner, tmp_path):
    runner.invoke(args=["portal", "policies", "init"])
    source = tmp_path / "privacy.md"
    source.write_text(TEXT, encoding="utf-8")
    result = runner.invoke(args=_publish_args(source, "--requires-acceptance"))
    assert result.exit_code == 0, result.output
    assert "Published Privacy Policy version 3" in result.output  # after the standard 1 and 2
    assert "clients must accept it" in result.output
    assert text_hash(TEXT) in result.output
    version = service.get_version("privacy", 3)
    assert version.text == TEXT
    assert version.requires_acceptance is True
    assert version.published_by_id is None
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "policy.published")) == 7


def test_publish_can_name_the_admin_who_publishes(runner, tmp_path, app):
    admin = make_user("admin")
    source = tmp_path / "privacy.md"
    source.write_text(TEXT, encoding="utf-8")
    result = runner.invoke(args=_publish_args(source, "--by", email_of(admin)))
    assert result.exit_code == 0, result.output
    assert service.get_version("privacy", 1).published_by_id == admin.id
    client = make_user("client")
    refused = runner.invoke(args=_publish_args(source, "--by", email_of(client)))
    assert refused.exit_code == 1
    assert "no admin with the email" in refused.output


def test_publish_explains_what_is_wrong(runner, tmp_path):
    runner.invoke(args=["portal", "policies", "init"])
    source = tmp_path / "privacy.md"
    source.write_text(TEXT, encoding="utf-8")
    past = runner.invoke(args=_publish_args(source, effective="2001-01-01"))
    assert past.exit_code == 1
    assert "cannot take effect in the past" in past.output
    bad_date = runner.invoke(args=_publish_args(source, effective="next week"))
    assert bad_date.exit_code == 2
    unknown = runner.invoke(args=["portal", "policies", "publish", "--slug", "cookies",
                                  "--file", str(source), "--effective", "2030-01-01",
                                  "--summary", "x"])
    assert unknown.exit_code == 2
    missing = runner.invoke(args=_publish_args(tmp_path / "nope.md"))
    assert missing.exit_code == 2
    binary = tmp_path / "binary.md"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert runner.invoke(args=_publish_args(binary)).exit_code == 1
    assert service.latest_version("privacy").number == 2


def test_list_shows_versions_states_and_counts(runner, tmp_path):
    runner.invoke(args=["portal", "policies", "init"])
    client = make_user("client")
    service.accept(client, [service.current_version("terms").id])
    source = tmp_path / "privacy.md"
    source.write_text(TEXT, encoding="utf-8")
    runner.invoke(args=_publish_args(source))
    result = runner.invoke(args=["portal", "policies", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    terms = next(line for line in lines if line.startswith("terms"))
    assert terms.split()[:3] == ["terms", "1", practice.today().isoformat()]
    assert "current" in terms and " yes " in terms and terms.split()[5] == "1"
    assert any(line.startswith("privacy") and "upcoming" in line for line in lines)


def test_list_before_anything_is_published(runner):
    result = runner.invoke(args=["portal", "policies", "list"])
    assert result.exit_code == 0
    assert "not published" in result.output
