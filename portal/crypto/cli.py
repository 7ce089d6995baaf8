"""`portal keys ...`: status, rewrap, reencrypt, shred. Thin wrappers over rotation.py."""

import sys
import uuid

import click
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from portal.crypto import rotation
from portal.crypto.errors import KeyConfigError

keys_cli = AppGroup("keys", help="Master keys, data keys, rotation and crypto-shredding.")


@keys_cli.command("status")
def status_command() -> None:
    """Show what depends on each master key and data key generation."""
    st = _run(rotation.status)
    click.echo("Master keys (first configured one wraps new data keys):")
    click.echo(f"  {'key id':<24} {'state':<16} {'data keys':>10} {'sealed values':>14}")
    for m in st.master_keys:
        state = "current" if m.current else "configured" if m.configured else "NOT CONFIGURED"
        click.echo(f"  {m.key_id:<24} {state:<16} {m.data_keys:>10} {m.sealed_values:>14}")
        if m.configured and not m.current and m.data_keys == 0:
            click.echo(f"  {'':<24} nothing depends on {m.key_id!r}; it can be removed")
    click.echo("Data keys by generation and age:")
    click.echo(f"  {'generation':<10} {'age':<18} {'data keys':>10} {'sealed values':>14}")
    for b in st.buckets:
        click.echo(f"  {b.state:<10} {b.age:<18} {b.data_keys:>10} {b.sealed_values:>14}")
    click.echo("Sealed fields:")
    click.echo(f"  {'field':<32} {'values':>8} {'newest key':>11} {'older key':>10} "
               f"{'unopenable':>11} {'unpadded':>9}")
    for f in st.fields:
        click.echo(f"  {f.table + '.' + f.column:<32} {f.values:>8} {f.on_current_key:>11} "
                   f"{f.on_older_key:>10} {f.unopenable:>11} {f.unpadded:>9}")
    if any(f.unpadded for f in st.fields):
        click.echo("Unpadded: short values sealed before padding, whose length shows; "
                   "`portal keys reencrypt` pads them.")


@keys_cli.command("rewrap")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=500, show_default=True)
def rewrap_command(batch_size: int) -> None:
    """Wrap every data key under the newest master key (cheap; no field is touched)."""
    total = _run(rotation.keys_to_rewrap)
    with _bar(total, "Re-wrapping data keys") as bar:
        result = _run(lambda: rotation.rewrap(batch_size=batch_size, progress=bar.update))
    click.echo(f"Re-wrapped {result.rewrapped} data keys under {result.master_key_id!r}; "
               f"{result.already_current} were already; {result.not_configured} are under "
               f"keys not configured; {result.failed} failed to unwrap.")
    if result.not_configured or result.failed:
        raise click.exceptions.Exit(1)


@keys_cli.command("reencrypt")
@click.option("--client", "client_id", type=click.UUID, help="Only this client's fields.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=500, show_default=True)
def reencrypt_command(client_id: uuid.UUID | None, batch_size: int) -> None:
    """Move sealed fields to fresh data keys, in batches; safe to re-run after a crash."""
    total = _run(lambda: rotation.count_sealed_values(client_id))
    with _bar(total, "Re-encrypting sealed values") as bar:
        result = _run(lambda: rotation.reencrypt(client_id, batch_size=batch_size,
                                                 progress=bar.update))
    click.echo(f"Clients: {result.clients_rotated} given new data keys, "
               f"{result.clients_resumed} resumed from an earlier run.")
    click.echo(f"Sealed values: {result.resealed} re-encrypted, {result.skipped} already on the "
               f"newest key, {result.unreadable} could not be opened.")
    click.echo(f"Data keys: {result.keys_retired} retired, {result.keys_kept} kept because a "
               "value still names them.")
    for label, count in sorted(result.failures.items()):
        click.echo(f"  {label}: {count} values could not be opened")
    if result.unreadable:
        raise click.exceptions.Exit(1)


@keys_cli.command("shred")
@click.option("--client", "client_id", type=click.UUID, required=True)
def shred_command(client_id: uuid.UUID) -> None:
    """Crypto-shred a client's data keys: their sealed records become unreadable for good."""
    values = _run(lambda: rotation.count_sealed_values(client_id))
    click.echo(f"This destroys the data keys of client {client_id}. Their {values} sealed "
               "values can never be read again, by anyone. There is no undo.")
    answer = click.prompt("Type SHRED or the client id to confirm", default="",
                          show_default=False)
    if answer.strip() not in ("SHRED", str(client_id)):
        click.echo("Not confirmed; nothing shredded.")
        raise click.exceptions.Exit(1)
    try:
        result = _run(lambda: rotation.shred(client_id))
    except rotation.ShredRefused as refused:
        raise click.ClickException(f"not shredded: {refused}") from None
    click.echo(f"Shredded {result.data_keys} data keys; {result.sealed_values} sealed values "
               "are now unreadable.")


def _bar(total: int, label: str):
    # Progress on stderr, so the counts on stdout stay easy to read and to script.
    return click.progressbar(length=total, label=label, file=sys.stderr)


def _run(action):
    """Turn key and database errors into one line instead of a traceback."""
    try:
        return action()
    except KeyConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:  # e.g. migrations not applied; the driver message has no data
        reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
        raise click.ClickException(f"database error: {reason}") from None
