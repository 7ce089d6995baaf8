"""`portal backup` and `portal restore`."""

import click
from flask.cli import with_appcontext

from portal.ops.backup import BackupError, backup, restore


@click.command("backup")
@click.option("--to", "target", required=True, type=click.Path(dir_okay=False),
              help="File to write (must not exist).")
@with_appcontext
def backup_command(target: str) -> None:
    """Write a consistent snapshot of the database (keys are NOT included: back them up apart)."""
    try:
        result = backup(target)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Backed up to {result.path} ({result.size:,} bytes) using {result.method}.")
    click.echo("Remember: the master keys are not in this file. Keep their backup apart.")


@click.command("restore")
@click.option("--from", "source", required=True, type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def restore_command(source: str) -> None:
    """Restore a snapshot into an empty database (run with the same master keys)."""
    try:
        method = restore(source)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Restored from {source} using {method}. Check it with `portal audit-verify`.")
