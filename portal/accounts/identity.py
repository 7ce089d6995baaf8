"""Who a user is, sealed at rest: names and emails open only in the application.

Every look-up by email goes through `find_by_email`, which uses the blind index, so a
stolen database does not say who the practice's clients are.

A person has the name they go by (`name_of`, shown everywhere), optional pronouns
(`pronouns_of`, `pronouns_by_id`) and, for a client, a legal name (`legal_name_of`) used only
where the law needs it; until it is set it is the name they go by.
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
NAME_MAX = 120
PRONOUNS_MAX = 40


def set_identity(user: User, *, name: str, email: str) -> None:
    """Seal a user's name and email and index the email; gives the row its id if it has none."""
    if user.id is None:
        user.id = new_id()
    user.name_sealed = seal(user.id, context_for(User.name_sealed, user.id), name.strip())
    user.email_sealed = seal(user.id, context_for(User.email_sealed, user.id), email.strip())
    user.email_index = email_index(email)
    _cache().pop(user.id, None)


def set_email(user: User, email: str) -> None:
    """Seal a new email and move the blind index to it (a confirmed email change only)."""
    user.email_sealed = seal(user.id, context_for(User.email_sealed, user.id), email.strip())
    user.email_index = email_index(email)
    _cache().pop(user.id, None)


def set_names(user: User, *, name: str | None = None, legal_name: str | None = None,
              pronouns: str | None = None) -> None:
    """Seal whichever of the names is given; "" clears a legal name or the pronouns.

    A legal name equal to the name they go by is stored as "not set", so a later change of
    the name they go by carries it along until someone sets a different legal name.
    """
    if name is not None:
        user.name_sealed = seal(user.id, context_for(User.name_sealed, user.id), name.strip())
    if legal_name is not None:
        legal = legal_name.strip()
        current = name.strip() if name is not None else name_of(user)
        user.legal_name_sealed = (
            seal(user.id, context_for(User.legal_name_sealed, user.id), legal)
            if legal and legal != current else None)
    if pronouns is not None:
        user.pronouns_sealed = (
            seal(user.id, context_for(User.pronouns_sealed, user.id), pronouns.strip())
            if pronouns.strip() else None)
    _cache().pop(user.id, None)
    _pronouns_cache().pop(user.id, None)


def legal_name_of(user: User) -> str:
    """The client's legal name: as set, or the name they go by until it is set."""
    if user.legal_name_sealed is None:
        return name_of(user)
    try:
        return open_text(user.id, context_for(User.legal_name_sealed, user.id),
                         user.legal_name_sealed)
    except DecryptionError:
        return UNREADABLE_NAME


def legal_name_is_set(user: User) -> bool:
    return user.legal_name_sealed is not None


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


def _pronouns_cache() -> dict[uuid.UUID, str]:
    if "pronouns_cache" not in g:
        g.pronouns_cache = {}
    return g.pronouns_cache


def _open_pronouns(user_id: uuid.UUID, sealed: bytes | None) -> str:
    if sealed is None:
        return ""
    try:
        return open_text(user_id, context_for(User.pronouns_sealed, user_id), sealed)
    except DecryptionError:
        return ""


def pronouns_of(user: User) -> str:
    """The person's pronouns as they wrote them ("she/her"), or "" when none are set."""
    cache = _pronouns_cache()
    if user.id not in cache:
        cache[user.id] = _open_pronouns(user.id, user.pronouns_sealed)
    return cache[user.id]


_PRONOUNS_OF = select(User.id, User.pronouns_sealed).where(
    User.id.in_(bindparam("ids", expanding=True, type_=Uuid())),
    User.pronouns_sealed.is_not(None))


def pronouns_by_id(ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The pronouns of many people by id, in one statement (list pages stay flat).

    Only people who set pronouns appear in the answer; use `.get(id, "")`.
    """
    cache = _pronouns_cache()
    ids = list(dict.fromkeys(ids))
    found = {i: cache[i] for i in ids if i in cache}
    wanted = [i for i in ids if i not in cache]
    if wanted:
        rows = db.session.execute(_PRONOUNS_OF, {"ids": wanted}).all()
        preload_keys([row.id for row in rows])
        opened = {row.id: _open_pronouns(row.id, row.pronouns_sealed) for row in rows}
        for i in wanted:
            cache[i] = opened.get(i, "")
        found.update(opened)
    return {i: p for i, p in found.items() if p}


def _open_name(user_id: uuid.UUID, sealed: bytes) -> str:
    try:
        return open_text(user_id, context_for(User.name_sealed, user_id), sealed)
    except DecryptionError:
        return UNREADABLE_NAME


_STAFF_DETAILS_OF = select(User.id, User.credentials, User.reply_hours).where(
    User.id.in_(bindparam("ids", expanding=True, type_=Uuid())))


def staff_details_by_id(ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, tuple[str, str]]:
    """Staff's credentials and reply hours by id, in one statement: {id: ("LPC", "usually
    replies within a day")}, "" for a part not set. Plain columns: nothing to open."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return {}
    rows = db.session.execute(_STAFF_DETAILS_OF, {"ids": ids}).all()
    return {row.id: (row.credentials or "", row.reply_hours or "") for row in rows}
