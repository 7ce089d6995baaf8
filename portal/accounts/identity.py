"""Who a user is, sealed at rest: names and emails open only in the application.

Every look-up by email goes through `find_by_email`, which uses the blind index, so a
stolen database does not say who the practice's clients are.
"""

import uuid
from collections.abc import Iterable

from flask import g
from sqlalchemy import Uuid, bindparam, select

from portal.accounts.models import User
from portal.crypto import (
    DecryptionError,
    context_for,
    email_index,
    open_text,
    preload_keys,
    seal,
)
from portal.db import new_id
from portal.extensions import db

UNREADABLE_NAME = "(name could not be decrypted)"


def set_identity(user: User, *, name: str, email: str) -> None:
    """Seal a user's name and email and index the email; gives the row its id if it has none."""
    if user.id is None:
        user.id = new_id()
    user.name_sealed = seal(user.id, context_for(User.name_sealed, user.id), name.strip())
    user.email_sealed = seal(user.id, context_for(User.email_sealed, user.id), email.strip())
    user.email_index = email_index(email)
    _cache().pop(user.id, None)


def find_by_email(email: str) -> User | None:
    """Return the account with this email (normalized), or None."""
    if not email or len(email) > 254:
        return None
    return db.session.scalar(select(User).where(User.email_index == email_index(email)))


def email_taken(email: str) -> bool:
    return find_by_email(email) is not None


def _cache() -> dict[uuid.UUID, tuple[str, str]]:
    if "identity_cache" not in g:
        g.identity_cache = {}
    return g.identity_cache


def _open(user: User) -> tuple[str, str]:
    cache = _cache()
    if user.id not in cache:
        name = _open_name(user.id, user.name_sealed)
        try:
            email = open_text(user.id, context_for(User.email_sealed, user.id),
                              user.email_sealed)
        except DecryptionError:
            email = ""
        cache[user.id] = (name, email)
    return cache[user.id]


def name_of(user: User) -> str:
    """Return the user's name, opened once per request."""
    return _open(user)[0]


def email_of(user: User) -> str:
    """Return the user's email address, opened once per request ('' if unreadable)."""
    return _open(user)[1]


def names_of(users: list[User]) -> dict[uuid.UUID, str]:
    """Open many names with one key query (list pages stay flat as they grow)."""
    wanted = [u for u in users if u.id not in _cache()]
    if wanted:
        preload_keys([u.id for u in wanted])
    return {u.id: name_of(u) for u in users}


# Built once: list pages run it (see README, "Conventions for speed").
_NAMES_OF = select(User.id, User.name_sealed).where(
    User.id.in_(bindparam("ids", expanding=True, type_=Uuid())))


def names_by_id(ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Open the names of many users by id: one query for the sealed names, one for keys.

    For list pages, which show names only: no user models, no email addresses opened.
    """
    cache = _cache()
    ids = list(dict.fromkeys(ids))
    names = {i: cache[i][0] for i in ids if i in cache}
    wanted = [i for i in ids if i not in cache]
    if wanted:
        rows = db.session.execute(_NAMES_OF, {"ids": wanted}).all()
        preload_keys([row.id for row in rows])
        names.update((row.id, _open_name(row.id, row.name_sealed)) for row in rows)
    return names


def _open_name(user_id: uuid.UUID, sealed: bytes) -> str:
    try:
        return open_text(user_id, context_for(User.name_sealed, user_id), sealed)
    except DecryptionError:
        return UNREADABLE_NAME
