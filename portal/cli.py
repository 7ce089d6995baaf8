"""The `portal` command group: flask --app wsgi portal ..."""

import sys
import time

import click
import pyotp
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

from portal import hooks
from portal.accounts import mfa, passwords, service
from portal.accounts.identity import find_by_email, set_identity, set_names
from portal.accounts.models import Assignment, Role, User
from portal.audit.cli import audit_verify_command
from portal.crypto.cli import keys_cli
from portal.db import new_id, utcnow
from portal.errors import RuleError
from portal.extensions import db
from portal.mail.cli import deliver_mail_command
from portal.ops.cli import backup_command, restore_command, retention_cli
from portal.policies.cli import policies_cli

portal_cli = AppGroup("portal", help="coeo portal administration.")

DEMO_PEOPLE = (
    # role, name, email, password, TOTP key (staff must use two-step sign-in)
    ("admin", "Morgan Avery", "admin@coeo.example", "quiet harbor lantern morning",
     "COEOADMINDEMOKEYJBSWY3DPEHPK3PXP"),
    ("therapist", "Colleen Demo", "colleen@coeo.example", "maple window sunrise tea",
     "COEOCOLLEENDEMOKEYJBSWY3DPEHPK3P"),
    ("therapist", "Kristen Demo", "kristen@coeo.example", "river stones and wild thyme",
     "COEOKRISTENDEMOKEYJBSWY3DPEHPK3P"),
    ("client", "Alex Rivera", "alex@example.org", "paper boats on a slow river", None),
    ("client", "Zoë Nguyễn-Ōtsuka", "zoe@example.org", "seven quiet owls at dusk", None),
    ("client", "Sam Okafor", "sam@example.org", "lemon tree porch swing summer", None),
    # Minors and their parent (portal/guardians/demo.py records the minors and the links).
    ("client", "Riley Brooks", "riley@example.org", "blue kite over the hill", None),
    ("client", "Jesse Brooks", "jesse@example.org", "green bicycle in the rain", None),
    ("guardian", "Casey Brooks", "casey@example.org", "warm bread on a sunday", None),
)
DEMO_ASSIGNMENTS = {"alex@example.org": ["colleen@coeo.example"],
                    "zoe@example.org": ["colleen@coeo.example", "kristen@coeo.example"],
                    "sam@example.org": ["kristen@coeo.example"],
                    "riley@example.org": ["colleen@coeo.example"],
                    "jesse@example.org": ["colleen@coeo.example"]}
# The practice's covering clinicians (on call): they read what clients write to the practice.
DEMO_COVERING = {"kristen@coeo.example"}
# How some of them are named beyond their name: pronouns, and staff's credentials and hours.
DEMO_DETAILS = {
    "colleen@coeo.example": ("she/her", "LPC", "usually replies within a day"),
    "kristen@coeo.example": ("she/her", "LCSW", "usually replies within 2 business days"),
    "alex@example.org": ("they/them", None, None),
}


@portal_cli.command("create-user")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--therapist", "therapist_email", help="Assign this therapist (clients only).")
def create_user_command(role: str, email: str, name: str, therapist_email: str | None) -> None:
    """Create an account and print its invitation link (the first admin starts here)."""
    therapist_ids = []
    if therapist_email:
        therapist = find_by_email(therapist_email)
        if therapist is None or therapist.role != Role.THERAPIST:
            raise click.ClickException(f"no therapist with the email {therapist_email}")
        therapist_ids = [therapist.id]
    try:
        user, link = service.create_user(None, role=role, name=name, email=email,
                                          therapist_ids=therapist_ids)
    except RuleError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Created {role} {user.id}.")
    click.echo(f"Invitation link (valid {current_app.config['INVITATION_HOURS']} hours):")
    click.echo(link)


@portal_cli.command("seed-demo")
def seed_demo_command() -> None:
    """Create a demo practice: an admin, two therapists and three clients (development only)."""
    count = db.session.scalar(select(func.count()).select_from(User))
    if current_app.config["ENV_NAME"] == "production":
        raise click.ClickException("seed-demo refuses to run in production")
    if count:
        click.echo(f"The database already has {count} accounts; nothing seeded.")
    else:
        seed_demo()
    if find_by_email(DEMO_PEOPLE[0][2]) is not None:  # the demo practice is here
        print_demo_accounts()


def seed_demo() -> None:
    """Create the demo accounts with passwords set and staff enrolled in two-step sign-in."""
    by_email = {}
    for role, name, email, password, key in DEMO_PEOPLE:
        user = User(id=new_id(), role=role, mfa_prompt_dismissed=True,
                    covering=email in DEMO_COVERING)
        set_identity(user, name=name, email=email)
        if email in DEMO_DETAILS:
            pronouns, user.credentials, user.reply_hours = DEMO_DETAILS[email]
            set_names(user, pronouns=pronouns)
        user.password_hash = passwords.hash_password(password)
        if key:
            user.totp_seed_sealed = mfa.seal_seed(user, key)
            user.totp_enabled_at = utcnow()
        db.session.add(user)
        by_email[email] = user
    db.session.flush()
    for client_email, therapist_emails in DEMO_ASSIGNMENTS.items():
        for therapist_email in therapist_emails:
            db.session.add(Assignment(client_id=by_email[client_email].id,
                                      therapist_id=by_email[therapist_email].id))
    db.session.commit()
    for seeder in hooks.demo_seeders:
        seeder(by_email)


@portal_cli.command("demo-accounts")
def demo_accounts_command() -> None:
    """Print the demo sign-ins (development only)."""
    if current_app.config["ENV_NAME"] == "production":
        raise click.ClickException("demo accounts do not exist in production")
    print_demo_accounts()


def print_demo_accounts() -> None:
    click.echo("")
    click.echo("Demo sign-ins (development only):")
    for role, _name, email, password, key in DEMO_PEOPLE:
        line = f"  {role:<9} {email:<22} password: {password}"
        if key:
            line += f"   2-step key: {key}"
        click.echo(line)
    click.echo("  Staff need a 6-digit code: add the key to an authenticator app, or run")
    click.echo("  `make demo-code EMAIL=colleen@coeo.example` to print the current one.")
    click.echo("")


@portal_cli.command("demo-code")
@click.argument("email")
def demo_code_command(email: str) -> None:
    """Print the current two-step code of a demo account (development only)."""
    if current_app.config["ENV_NAME"] == "production":
        raise click.ClickException("demo-code refuses to run in production")
    for _role, _name, demo_email, _password, key in DEMO_PEOPLE:
        if demo_email == email and key:
            click.echo(pyotp.TOTP(key).now())
            return
    raise click.ClickException("not a demo account with two-step sign-in")


FEATURE_COMMANDS = {"audit-verify": audit_verify_command, "deliver-mail": deliver_mail_command,
                    "keys": keys_cli, "backup": backup_command, "restore": restore_command,
                    "retention": retention_cli, "policies": policies_cli}
for _name, _command in FEATURE_COMMANDS.items():
    portal_cli.add_command(_command, _name)


def _wait(seconds: float) -> None:  # pragma: no cover - used by loops in subcommands
    time.sleep(seconds)
    sys.stdout.flush()
