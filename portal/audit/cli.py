"""`portal audit-verify`: walk the audit chain and say whether it is whole."""

import click
from flask.cli import with_appcontext

from portal.audit.service import verify


@click.command("audit-verify")
@with_appcontext
def audit_verify_command() -> None:
    """Check the audit trail's hash chain; exit 1 when it is broken."""
    result = verify()
    if result.ok:
        click.echo(f"audit chain OK: {result.count} events")
        return
    click.echo(f"audit chain BROKEN at event #{result.first_broken_seq}: {result.reason}")
    raise SystemExit(1)
