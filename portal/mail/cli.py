"""`portal deliver-mail`: send what the outbox holds (a loop, or once for cron)."""

import time

import click
from flask.cli import with_appcontext

from portal.extensions import db
from portal.mail.service import deliver_pending, purge_delivered

PURGE_EVERY_SECONDS = 3600
_sleep = time.sleep  # a seam for tests


@click.command("deliver-mail")
@click.option("--once", is_flag=True, help="Deliver what is due and exit (for cron).")
@click.option("--interval", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds to wait between rounds when looping.")
@with_appcontext
def deliver_mail_command(once: bool, interval: float) -> None:
    """Deliver queued mail and retry failures; prints counts, never addresses."""
    last_purge: float | None = None
    try:
        while True:
            report = deliver_pending()
            click.echo(f"mail: {report.sent} sent, {report.failed} failed, "
                       f"{report.pending} pending")
            if last_purge is None or time.monotonic() - last_purge >= PURGE_EVERY_SECONDS:
                purged = purge_delivered()
                last_purge = time.monotonic()
                if purged:
                    click.echo(f"mail: {purged} delivered messages purged")
            db.session.remove()
            if once:
                return
            _sleep(interval)
    except KeyboardInterrupt:
        click.echo("mail: stopped")
