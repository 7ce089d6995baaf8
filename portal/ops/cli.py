"""`portal backup`, `portal restore` and `portal retention report|purge`."""

from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask.cli import AppGroup, with_appcontext

from portal.accounts.identity import find_by_email
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


def _estimates(r) -> str:
    return (f"{r.issued_estimates} issued, kept until {r.keep_estimates_until}"
            if r.key_held else f"{r.issued_estimates} issued" if r.issued_estimates else "-")


def _print_records(records) -> None:
    """Ids, dates and counts only (the purge's list): no names."""
    click.echo(f"{'client id':<38}{'clock started':<15}{'by':<22}{'threads':>8}"
               f"{'messages':>10}{'files':>7}  estimates")
    for r in records:
        click.echo(f"{r.client_id!s:<38}{r.clock_start.isoformat():<15}"
                   f"{r.clock_kind:<22}{r.threads:>8}{r.messages:>10}"
                   f"{r.attachments:>7}  {_estimates(r)}")


def _print_named(found: retention.NamedReport) -> None:
    """One block per client: name, therapists, when and why the clock started, hold."""
    for r in found.records:
        therapists = ", ".join(found.names.get(t, "(unknown)")
                               for t in found.therapists.get(r.client_id, [])) or "none"
        click.echo("")
        click.echo(found.names.get(r.client_id, "(unknown)"))
        click.echo(f"  client id      {r.client_id}")
        click.echo(f"  therapist      {therapists}")
        click.echo(f"  clock started  {r.clock_start.isoformat()} ({r.clock_kind})")
        click.echo(f"  eligible from  {r.eligible_on.isoformat()}")
        click.echo(f"  legal hold     {r.hold_status}")
        click.echo(f"  records        {r.threads} conversation(s), {r.messages} message(s), "
                   f"{r.attachments} file(s); estimates: {_estimates(r)}")


def _administrator(email: str):
    actor = find_by_email(email)
    if actor is None or actor.role != "admin" or not actor.active:
        raise click.ClickException(f"no active administrator with the email {email}")
    return actor


@retention_cli.command("report")
@click.option("--by", "by_email", required=True, metavar="EMAIL",
              help="You, the administrator running it (it names clients; audited).")
@with_appcontext
def retention_report_command(by_email: str) -> None:
    """Name the clients past RETENTION_YEARS, their therapists and when their clock started.

    The clock starts on the later of the last portal activity and the last date of service
    staff recorded. The names go to this terminal only, never to a log; each client named
    gets a `retention.reported` event (ids only) in the audit trail and their access log.
    """
    actor = _administrator(by_email)
    with _one_line(retention.RetentionError):
        found = retention.report_named(actor)
    years, cutoff, records = retention.retention_years(), found.cutoff, found.records
    if not records:
        click.echo(f"No client's retention clock started more than {years} years ago "
                   f"(before {cutoff}).")
        return
    click.echo(f"{len(records)} client(s) past the retention period of {years} years "
               f"(clock started before {cutoff}). This list names clients: keep it private.")
    _print_named(found)
    click.echo("")
    held = sum(r.key_held for r in records)
    if held:
        click.echo(f"{held} of them have an issued Good Faith Estimate younger than "
                   f"{retention.GFE_KEEP_YEARS} years: their conversations can go, their "
                   "data key stays until the estimate is old enough.")
    on_hold = sum(r.on_hold for r in records)
    if on_hold:
        click.echo(f"{on_hold} of them are under a legal hold: the purge leaves them alone "
                   "until the hold is released.")
    click.echo(f"Purge with: portal retention purge --before {cutoff}")


@retention_cli.command("purge")
@click.option("--before", "before", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Purge clients whose clock started before this day (YYYY-MM-DD).")
@click.option("--confirm", "confirm", metavar="PHRASE",
              help='The confirmation phrase, e.g. "purge 3 clients" (otherwise asked for).')
@with_appcontext
def retention_purge_command(before, confirm: str | None) -> None:
    """Crypto-shred and delete the conversations of clients inactive since before a day.

    Issued Good Faith Estimates are never deleted; a client with one younger than six years
    keeps their data key (so it stays readable) until a later purge. A client under a legal
    hold is never purged.
    """
    day = before.date()
    with _one_line(retention.RetentionError):
        retention.check_before(day)
        found = retention.client_records(day)
    records = [r for r in found if not r.on_hold]
    for r in found:
        if r.on_hold:
            click.echo(f"  {r.client_id}: {r.hold_status}: not purged.")
    if not records:
        outside = " outside a legal hold" if found else ""
        click.echo(f"No client{outside} has a retention clock that started before {day}; "
                   "nothing to purge.")
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
    for r in result.on_hold:
        click.echo(f"  {r.client_id}: {r.hold_status}: not purged.")
    skipped = len(records) - len(result.shredded) - len(result.held) - len(result.on_hold)
    if skipped:
        click.echo(f"  {skipped} client(s) became active or were purged meanwhile: left alone.")
