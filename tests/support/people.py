"""The one set of builders every test folder uses: people, e-mail addresses, the password,
and reading a CSRF token from a page (cookiecutter-flask's factories, as plain functions)."""

import re
import uuid

import pyotp
from flask import current_app

from portal.accounts import mfa, passwords
from portal.accounts.identity import set_identity
from portal.accounts.models import Role, User
from portal.db import new_id, utcnow
from portal.extensions import db
from portal.guardians import links

PASSWORD = "tidal porch cinnamon beetle"  # 27 characters, not on the blocklist
# A form's hidden field, or (on every signed-in page, error pages too) the meta tag.
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                  r'<meta name="csrf-token" content="([^"]+)"')

_NAMES = {Role.CLIENT: "Robin Client", Role.THERAPIST: "Terry Therapist",
          Role.ADMIN: "Ada Admin"}
_hashes: dict[tuple, str] = {}


def unique_email(prefix: str = "user") -> str:
    """Return an email address no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.org"


def csrf_from(html: str | bytes) -> str:
    """Return the CSRF token of a rendered page (a form's field or the signed-in meta tag)."""
    if isinstance(html, bytes):
        html = html.decode()
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1) or found.group(2)


def password_hash(password: str) -> str:
    """Hash a password under the app's Argon2 settings, once per password and settings.

    Argon2 is slow on purpose; an Argon2 hash carries its own salt and parameters, so one hash
    serves every account a test suite builds with that password.
    """
    cfg = current_app.config
    key = (password, cfg["ARGON2_TIME_COST"], cfg["ARGON2_MEMORY_COST"],
           cfg["ARGON2_PARALLELISM"])
    if key not in _hashes:
        _hashes[key] = passwords.hash_password(password)
    return _hashes[key]


def make_user(role: str = Role.CLIENT, name: str | None = None, *, email: str | None = None,
              password: str | None = PASSWORD, mfa_on: bool | None = None,
              seed: str | None = None, active: bool = True,
              mfa_prompt_dismissed: bool = True) -> User:
    """Save an account directly (no invitation); staff get two-step sign-in unless told not to.

    What a test needs to act as the person rides on the returned user: `email_address`,
    `password`, `seed` (the TOTP key, or None) and `totp` (a pyotp.TOTP, or None).
    """
    email = email or unique_email(role)
    user = User(id=new_id(), role=role, active=active, mfa_prompt_dismissed=mfa_prompt_dismissed)
    set_identity(user, name=name or _NAMES.get(role, "Robin Test"), email=email)
    if password is not None:
        user.password_hash = password_hash(password)
    if mfa_on if mfa_on is not None else role != Role.CLIENT:
        seed = seed or pyotp.random_base32()
        user.totp_seed_sealed = mfa.seal_seed(user, seed)
        user.totp_enabled_at = utcnow()
    else:
        seed = None
    db.session.add(user)
    db.session.commit()
    user.email_address, user.password, user.seed = email, password, seed
    user.totp = pyotp.TOTP(seed) if seed else None
    return user


def make_client(name: str | None = None, **options) -> User:
    return make_user(Role.CLIENT, name, **options)


def make_therapist(name: str | None = None, **options) -> User:
    return make_user(Role.THERAPIST, name, **options)


def make_admin(name: str | None = None, **options) -> User:
    return make_user(Role.ADMIN, name, **options)


def make_guardian(name: str | None = None, **options) -> User:
    """A parent or guardian's account (no two-step sign-in by default, like a client)."""
    options.setdefault("mfa_on", False)
    return make_user(Role.GUARDIAN, name or "Gale Guardian", **options)


def make_minor(born, *, consent_by: str = "guardian", guardian: User | None = None,
               name: str | None = None, **options) -> User:
    """A client recorded as a minor (by an administrator), linked to `guardian` if given."""
    client = make_client(name or "Jordan Minor", **options)
    admin = make_admin()
    links.record_minor(admin, client, born=born, consent_by=consent_by)
    if guardian is not None:
        links.link(admin, guardian, client)
    return client
