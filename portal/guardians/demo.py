"""Demo minors for `portal seed-demo`: Riley (15, a parent consented to treatment) and Jesse
(16, consented themselves, Act 147), both Colleen's clients, both linked to their parent
Casey, a guardian account (the accounts are in `portal.cli.DEMO_PEOPLE`)."""

from datetime import timedelta

from portal import practice
from portal.guardians import links

GUARDIAN = "casey@example.org"
MINORS = (  # email, age in years, extra days, who consented
    ("riley@example.org", 15, 40, "guardian"),
    ("jesse@example.org", 16, 100, "minor"),
)


def seed_demo(by_email: dict) -> None:
    admin, guardian = by_email.get("admin@coeo.example"), by_email.get(GUARDIAN)
    if admin is None or guardian is None:
        return
    today = practice.today()
    for email, years, days, consent_by in MINORS:
        client = by_email.get(email)
        if client is None:
            continue
        born = links.birthday(today, -years) - timedelta(days=days)
        links.record_minor(admin, client, born=born, consent_by=consent_by)
        links.link(admin, guardian, client)
