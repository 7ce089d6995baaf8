"""The account journey leaves every required audit event, with ids only (no PHI)."""

import re

import pyotp
from sqlalchemy import select

from portal.accounts.identity import find_by_email
from portal.audit import AuditEvent, verify
from portal.extensions import db

from .support import (
    NEW_PASSWORD,
    PASSWORD,
    link_in,
    mail_text,
    make_user,
    outbox,
    post_form,
    sign_in,
    sign_out,
)

REQUIRED = {
    "auth.signin.success", "auth.signin.failure", "auth.signout", "auth.lockout",
    "auth.mfa.enrolled", "auth.mfa.disabled", "auth.mfa.reset", "auth.recovery_code.used",
    "account.password.changed", "account.password.reset", "invitation.sent", "invitation.used",
    "account.created", "account.deactivated", "account.reactivated", "assignment.added",
    "assignment.removed",
}
NAME = "Quinn Zephyrine"
EMAIL = "quinn.zephyrine@example.org"


def _journey(app) -> None:
    """Invite a client and take them through everything the audit trail must record."""
    admin = make_user("admin", name="Ada Zyxwadmin", email="ada.zyxwadmin@example.org")
    therapist = make_user("therapist", name="Theo Qwerapist", email="theo.q@example.org")
    admin_client = app.test_client()
    sign_in(admin_client, admin)
    post_form(admin_client, "/admin/users/invite", {
        "name": NAME, "email": EMAIL, "role": "client", "therapist": str(therapist.id)})
    user = find_by_email(EMAIL)
    page = f"/admin/users/{user.id}"
    path, _ = link_in(mail_text(outbox("invitation", user)[-1]))
    client = app.test_client()
    client.get(path)
    post_form(client, "/invitation", {"password": PASSWORD, "confirm": PASSWORD})
    post_form(client, "/account/two-factor/offer")
    # Two-step sign-in on, a recovery code used, then off again.
    html = client.get("/account/two-factor/setup").get_data(as_text=True)
    key = re.sub(r"<[^>]+>|\s", "", re.search(r'id="totp-key">(.*?)</code>', html).group(1))
    codes_page = post_form(client, "/account/two-factor/setup",
                           {"current_password": PASSWORD, "code": pyotp.TOTP(key).now()}
                           ).get_data(as_text=True)
    recovery = re.findall(r"<code[^>]*>((?:[0-9A-Z]{4}-){3}[0-9A-Z]{4})</code>", codes_page)
    sign_out(client)
    post_form(client, "/sign-in", {"email": EMAIL, "password": PASSWORD})
    post_form(client, "/sign-in/verify", {"code": recovery[0]})
    post_form(client, "/account/password", {"current_password": PASSWORD,
                                            "new_password": NEW_PASSWORD,
                                            "confirm": NEW_PASSWORD})
    post_form(admin_client, f"{page}/reset-2fa", page=page)
    # Ten wrong passwords: a lockout.
    for _ in range(10):
        post_form(app.test_client(), "/sign-in", {"email": EMAIL, "password": "nope " * 4})
    # A reset, then sign in, turn 2FA on and off again.
    post_form(app.test_client(), "/forgot-password", {"email": EMAIL})
    reset_path, _ = link_in(mail_text(outbox("password_reset", user)[-1]))
    reset_client = app.test_client()
    reset_client.get(reset_path)
    post_form(reset_client, "/reset", {"password": PASSWORD, "confirm": PASSWORD})
    client = app.test_client()
    post_form(client, "/sign-in", {"email": EMAIL, "password": PASSWORD})
    html = client.get("/account/two-factor/setup").get_data(as_text=True)
    key = re.sub(r"<[^>]+>|\s", "", re.search(r'id="totp-key">(.*?)</code>', html).group(1))
    post_form(client, "/account/two-factor/setup",
              {"current_password": PASSWORD, "code": pyotp.TOTP(key).now()})
    post_form(client, "/account/two-factor/disable", {"current_password": PASSWORD})
    post_form(admin_client, f"{page}/unassign/{therapist.id}", page=page)
    post_form(admin_client, f"{page}/deactivate", {"reason": "care_ended"}, page=page)
    post_form(admin_client, f"{page}/reactivate", page=page)


def test_every_required_event_is_recorded(app):
    _journey(app)
    actions = set(db.session.scalars(select(AuditEvent.action)))
    assert not REQUIRED - actions, sorted(REQUIRED - actions)
    assert verify().ok


def test_audit_rows_carry_no_names_or_email_addresses(app):
    _journey(app)
    table = AuditEvent.__table__
    rows = list(db.session.execute(select(table)))
    assert len(rows) > 30
    forbidden = ["quinn", "zephyrine", "example.org", "zyxwadmin", "qwerapist", "@",
                 PASSWORD, NEW_PASSWORD]
    for row in rows:
        for value in row:
            text = (bytes(value).hex() if isinstance(value, bytes | memoryview)
                    else str(value)).lower()
            for word in forbidden:
                assert word.lower() not in text, (row.action, word)
