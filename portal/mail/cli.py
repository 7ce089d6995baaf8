"""`portal deliver-mail`: send what the outbox holds (a loop, or once for cron).

Each round first runs the features' timers (`hooks.worker_tasks`: crisis escalation, draft
purging), which may queue mail, then delivers. Several loops may run on several machines:
the timers claim their work atomically and the outbox claims each message, so nothing goes
twice.
"""

import logging
import time

import click
from flask.cli import with_appcontext

from portal import hooks
from portal.extensions import db
from portal.mail.service import deliver_pending, purge_delivered

log = logging.getLogger("portal.mail")

_sleep = time.sleep  # a seam for tests


@click.command("deliver-mail")
@click.option("--once", is_flag=True, help="Deliver what is due and exit (for cron).")
@click.option("--interval", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds to wait between rounds when looping.")
@with_appcontext
def deliver_mail_command(once: bool, interval: float) -> None:
    """Deliver queued mail and retry failures; prints counts, never addresses."""
    try:
        while True:
            run_worker_tasks()
            report = deliver_pending()
            click.echo(f"mail: {report.sent} sent, {report.failed} failed, "
                       f"{report.pending} pending")
            purged = purge_delivered()  # each round: a sent row still names its recipient
            if purged:
                click.echo(f"mail: {purged} delivered messages purged")
            db.session.remove()
            if once:
                return
            _sleep(interval)
    except KeyboardInterrupt:
        click.echo("mail: stopped")


def run_worker_tasks() -> dict[str, int]:
    """Run every feature's timer once; one that fails is logged and the others still run."""
    done: dict[str, int] = {}
    for task in hooks.worker_tasks:
        try:
            done[task.name] = count = task.run()
        except Exception:  # a timer's failure must not stop mail delivery
            db.session.rollback()
            log.exception("worker task %s failed", task.name)
            continue
        if count:
            click.echo(f"{task.name}: {count}")
    return done
