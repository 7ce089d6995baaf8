"""`portal backup`, `portal restore` and `portal retention report|purge`."""

from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask.cli import AppGroup, with_appcontext

from portal.ops import retention
from portal.ops.backup import BackupError, backup, restore


@contextmanager
def _one_line(*expected: type[Exception]) -> Iterator[None]:
    """Show an expected failure as click's one-line error, not a traceback."""
    try:
        yield
    except expected as error:
        raise click.ClickException(str(error)) from None


@click.command("backup")
@click.option("--to", "target", required=True, type=click.Path(dir_okay=False),
              help="File to write (must not exist).")
@with_appcontext
def backup_command(target: str) -> None:
    """Write a consistent snapshot of the database (keys are NOT included: back them up apart)."""
    with _one_line(BackupError):
        result = backup(target)
    click.echo(f"Backed up to {result.path} ({result.size:,} bytes) using {result.method}.")
    click.echo("Remember: the master keys are not in this file. Keep their backup apart.")


@click.command("restore")
@click.option("--from", "source", required=True, type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def restore_command(source: str) -> None:
    """Restore a snapshot into an empty database (run with the same master keys)."""
    with _one_line(BackupError):
        method = restore(source)
    click.echo(f"Restored from {source} using {method}. Check it with `portal audit-verify`.")


# ----------------------------------------------------------------------------- retention

retention_cli = AppGroup("retention", help="Find and purge records past the retention period.")


def _print_records(records) -> None:
    click.echo(f"{'client id':<38}{'last activity':<15}{'what':<17}{'threads':>8}"
               f"{'messages':>10}{'files':>7}  estimates")
    for r in records:
        kept = (f"{r.issued_estimates} issued, kept until {r.keep_estimates_until}"
                if r.key_held else f"{r.issued_estimates} issued" if r.issued_estimates
                else "-")
        click.echo(f"{r.client_id!s:<38}{r.last_activity.date().isoformat():<15}"
                   f"{r.last_activity_kind:<17}{r.threads:>8}{r.messages:>10}"
                   f"{r.attachments:>7}  {kept}")


@retention_cli.command("report")
@with_appcontext
def retention_report_command() -> None:
    """List clients whose last activity is older than RETENTION_YEARS (ids and counts only)."""
    with _one_line(retention.RetentionError):
        cutoff, records = retention.report()
    years = retention.retention_years()
    if not records:
        click.echo(f"No client has been inactive for more than {years} years "
                   f"(last activity before {cutoff}).")
        return
    click.echo(f"{len(records)} client(s) inactive for more than {years} years "
               f"(last activity before {cutoff}):")
    _print_records(records)
    held = sum(r.key_held for r in records)
    if held:
        click.echo(f"{held} of them have an issued Good Faith Estimate younger than "
                   f"{retention.GFE_KEEP_YEARS} years: their conversations can go, their "
                   "data key stays until the estimate is old enough.")
    click.echo(f"Purge with: portal retention purge --before {cutoff}")


@retention_cli.command("purge")
@click.option("--before", "before", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Purge clients whose last activity is before this day (YYYY-MM-DD).")
@click.option("--confirm", "confirm", metavar="PHRASE",
              help='The confirmation phrase, e.g. "purge 3 clients" (otherwise asked for).')
@with_appcontext
def retention_purge_command(before, confirm: str | None) -> None:
    """Crypto-shred and delete the conversations of clients inactive since before a day.

    Issued Good Faith Estimates are never deleted; a client with one younger than six years
    keeps their data key (so it stays readable) until a later purge.
    """
    day = before.date()
    with _one_line(retention.RetentionError):
        retention.check_before(day)
        records = retention.client_records(day)
    if not records:
        click.echo(f"No client's last activity is before {day}; nothing to purge.")
        return
    _print_records(records)
    messages = sum(r.messages for r in records)
    files = sum(r.attachments for r in records)
    held = sum(r.key_held for r in records)
    click.echo(f"\nThis deletes {messages} messages and {files} attachments of "
               f"{len(records)} client(s), deactivates their accounts and destroys the data "
               f"keys of {len(records) - held} of them. It cannot be undone; backups taken "
               "before now still hold the data (and the wrapped keys): age them out too.")
    phrase = retention.confirmation_phrase(len(records))
    if confirm is None:
        confirm = click.prompt(f'Type "{phrase}" to go ahead', default="", show_default=False)
    if confirm.strip() != phrase:
        raise click.ClickException("not confirmed; nothing was purged")
    with _one_line(retention.RetentionError):
        result = retention.purge(day, records=records)
    click.echo(f"Purged {len(result.shredded) + len(result.held)} client(s): "
               f"{result.threads} conversations, {result.messages} messages, "
               f"{result.attachments} attachments deleted; {len(result.shredded)} data "
               "key set(s) shredded.")
    for r in result.held:
        click.echo(f"  {r.client_id}: data key kept until {r.keep_estimates_until} "
                   "(issued Good Faith Estimate); purge again after that day.")
    skipped = len(records) - len(result.shredded) - len(result.held)
    if skipped:
        click.echo(f"  {skipped} client(s) became active or were purged meanwhile: left alone.")
