"""`portal policies ...`: publish and list policy versions from the command line."""

from pathlib import Path

import click
from flask.cli import AppGroup

from portal import practice
from portal.accounts.identity import find_by_email
from portal.accounts.models import Role
from portal.errors import RuleError
from portal.policies import service

policies_cli = AppGroup("policies", help="Publish and list policy versions.")


@policies_cli.command("list")
def list_command() -> None:
    """List every policy's versions, with state and acceptance counts."""
    on = practice.today()
    counts = service.acceptance_counts()
    click.echo(f"{'policy':<21} {'ver':>3}  {'effective':<10}  {'state':<10} {'accept':<6} "
               f"{'accepted':>8}  summary")
    for slug, versions in service.all_versions().items():
        if not versions:
            click.echo(f"{slug:<21} {'-':>3}  {'-':<10}  {'standard':<10} {'-':<6} {'-':>8}  "
                       "(not published: run `portal policies init`)")
            continue
        current = next((v for v in versions if v.effective_date <= on), None)
        for v in versions:
            state = service.status_of(v, current, on)
            summary = v.summary if len(v.summary) <= 60 else v.summary[:59] + "…"
            click.echo(f"{slug:<21} {v.number:>3}  {v.effective_date.isoformat():<10}  "
                       f"{state:<10} {'yes' if v.requires_acceptance else 'no':<6} "
                       f"{counts.get(v.id, 0):>8}  {summary}")


@policies_cli.command("publish")
@click.option("--slug", type=click.Choice(service.POLICY_SLUGS), required=True,
              help="Which policy.")
@click.option("--file", "source", required=True, help="The Markdown text (UTF-8).",
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--effective", type=click.DateTime(formats=["%Y-%m-%d"]), required=True,
              help="The date it takes effect (YYYY-MM-DD), today or later.")
@click.option("--summary", required=True, help="What changed, in a sentence or two.")
@click.option("--requires-acceptance", is_flag=True,
              help="Clients must accept this version once it takes effect.")
@click.option("--by", "by_email", help="Record this admin (email) as the publisher.")
def publish_command(slug: str, source: Path, effective, summary: str, requires_acceptance: bool,
                    by_email: str | None) -> None:
    """Publish a new version of a policy (it can never be changed afterwards)."""
    actor = None
    if by_email:
        actor = find_by_email(by_email)
        if actor is None or actor.role != Role.ADMIN:
            raise click.ClickException(f"no admin with the email {by_email}")
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise click.ClickException("the file is not UTF-8 text") from None
    try:
        version = service.publish(actor, slug=slug, text=text,
                                  effective_date=effective.date(), summary=summary,
                                  requires_acceptance=requires_acceptance)
    except RuleError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Published {service.title_of(slug)} version {version.number}, effective "
               f"{version.effective_date.isoformat()}"
               f"{', clients must accept it' if version.requires_acceptance else ''}.")
    click.echo(f"SHA-256 of the text: {version.text_hash}")


@policies_cli.command("init")
def init_command() -> None:
    """Publish the standard versions the database lacks (version 1, then each update)."""
    published = service.ensure_defaults()
    for version in published:
        click.echo(f"Published {service.title_of(version.slug)} version {version.number}, "
                   f"effective {version.effective_date.isoformat()}"
                   f"{', clients must accept it' if version.requires_acceptance else ''}.")
    for version in service.customized_behind():
        click.echo(f"{service.title_of(version.slug)}: version {version.number} is the "
                   "practice's own text, so the newer standard text was not published. "
                   f"Compare it with portal/policies/content/{version.slug}.md and publish it "
                   "with `portal policies publish` if it fits.")
    if not published:
        click.echo("Every policy already has the standard versions; nothing to do.")
