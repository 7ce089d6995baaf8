"""Drafts: the words someone is typing into a form, saved as they type (sealed), so an idle
sign-out or a closed tab loses nothing.

One draft per person and form (`form_key`):

- "compose": a new message (fields recipient, subject, body);
- "reply:<thread id>": a reply in a conversation the author takes part in (body);
- "estimate:<estimate id>": the estimate builder of a draft estimate the author may edit
  (its field names, e.g. "client_legal_name", "lines-3-description").

The fields are sealed together (JSON) under the data key of the client whose record the words
will join: the author when a client writes; the conversation's client for a reply; the
estimate's client for the builder; for a therapist's new message, the chosen client (the
therapist's own key while nobody is chosen). A draft is deleted when its form is sent, when
the person discards it, and by `purge_old` after DRAFT_DAYS. Drafts are never audited: they
are not part of anybody's record until they are sent, and the sending is audited.

Drafts live only here, on the server: never in the browser's localStorage or sessionStorage.
"""

import json
import re
import uuid
from datetime import datetime, timedelta

from flask import abort, current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from portal.accounts.models import Role, User
from portal.crypto import DecryptionError, open_text, seal
from portal.db import new_id, utcnow
from portal.estimates import access as estimate_access
from portal.extensions import db
from portal.messaging import access
from portal.messaging.models import Draft
from portal.messaging.sending import counterparts, guardian_choices

COMPOSE = "compose"
REPLY = "reply"
ESTIMATE = "estimate"
# Field names a form's draft may carry; the builder's are its own field names (nested rows
# such as "providers-0-name").
_FIELDS = {COMPOSE: frozenset({"recipient", "subject", "body"}), REPLY: frozenset({"body"})}
_BUILDER_NAME = re.compile(r"[a-z][a-z_]{0,39}(?:-\d{1,2}-[a-z][a-z_]{0,39})?")
MAX_FIELDS = 1000
MAX_TOTAL_CHARS = 100_000  # the whole draft, as JSON: far above a full builder


class DraftTooLarge(Exception):
    """A draft bigger than any form could send (the view answers 413)."""


def _max_chars() -> int:
    return current_app.config["MESSAGE_MAX_CHARS"]


def parse_key(form_key: str) -> tuple[str, uuid.UUID | None]:
    """Split a form key into its kind and object id; 404 for anything that is not one."""
    if form_key == COMPOSE:
        return COMPOSE, None
    kind, _, rest = (form_key or "").partition(":")
    if kind in (REPLY, ESTIMATE) and len(rest) == 36:
        try:
            return kind, uuid.UUID(rest)
        except ValueError:
            pass
    abort(404)


def _clean(kind: str, fields: dict[str, str]) -> dict[str, str]:
    """Keep the fields this form has; refuse (DraftTooLarge) what no form could send."""
    if len(fields) > MAX_FIELDS:
        raise DraftTooLarge
    kept: dict[str, str] = {}
    for name, value in fields.items():
        if not isinstance(name, str) or not isinstance(value, str):
            continue
        allowed = (name in _FIELDS[kind]) if kind in _FIELDS else bool(
            _BUILDER_NAME.fullmatch(name))
        if not allowed:
            continue
        value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
        if len(value) > _max_chars():
            raise DraftTooLarge
        kept[name] = value
    return kept


def _owner_for(author: User, kind: str, object_id: uuid.UUID | None,
               fields: dict[str, str]) -> uuid.UUID:
    """Whose data key seals the draft; 404 when the author may not write there."""
    if kind == REPLY:
        return access.thread_for(author, object_id, write=True).client_id
    if kind == ESTIMATE:
        return estimate_access.draft_estimate_for(author, object_id).client_id
    if author.role == Role.GUARDIAN:  # their own conversation: sealed under their key
        if fields.get("recipient") and guardian_choices(author).find(
                fields["recipient"]) is None:
            fields.pop("recipient", None)
        return author.id
    if author.role not in (Role.CLIENT, Role.THERAPIST):
        abort(404)
    chosen = fields.get("recipient", "")
    people = {str(p.id): p for p in counterparts(author)} if chosen else {}
    if chosen not in people:
        fields.pop("recipient", None)  # nobody chosen, or nobody they may write to now
        return author.id
    return author.id if author.role == Role.CLIENT else people[chosen].id


def _blank(fields: dict[str, str]) -> bool:
    return not any(value.strip() for name, value in fields.items() if name != "recipient")


def _find(author: User, form_key: str) -> Draft | None:
    return db.session.scalar(select(Draft).where(Draft.author_id == author.id,
                                                 Draft.form_key == form_key))


def save(author: User, form_key: str, fields: dict[str, str]) -> bool:
    """Save (or replace) the author's draft of this form; returns whether one is kept.

    Blank fields delete the draft instead. Raises DraftTooLarge, or 404 when the author may
    not write to the conversation or estimate the key names.
    """
    kind, object_id = parse_key(form_key)
    try:
        fields = _clean(kind, dict(fields))
        owner_id = _owner_for(author, kind, object_id, fields)
        if _blank(fields):
            db.session.execute(delete(Draft).where(Draft.author_id == author.id,
                                                   Draft.form_key == form_key))
            db.session.commit()
            return False
        text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        if len(text) > MAX_TOTAL_CHARS:
            raise DraftTooLarge
        for attempt in (1, 2):
            draft = _find(author, form_key)
            now = utcnow()
            if draft is None:
                draft = Draft(id=new_id(), author_id=author.id, form_key=form_key,
                              created_at=now)
            # Sealed before the row joins the session (sealing may query for the data key).
            sealed = seal(owner_id, draft.content_context(), text)
            draft.owner_id, draft.updated_at, draft.content_sealed = owner_id, now, sealed
            db.session.add(draft)
            try:
                db.session.commit()
            except IntegrityError:  # the same person's other save inserted it first
                db.session.rollback()
                if attempt == 2:
                    raise
                continue
            return True
    except Exception:
        db.session.rollback()
        raise
    return True  # pragma: no cover (the loop returns or raises)


def load(author: User, form_key: str) -> dict[str, str] | None:
    """Return the author's saved fields of this form, or None (no draft, or it will not open)."""
    if author is None or not getattr(author, "is_authenticated", False):
        return None
    draft = _find(author, form_key)
    if draft is None:
        return None
    try:
        fields = json.loads(open_text(draft.owner_id, draft.content_context(),
                                      draft.content_sealed))
    except (DecryptionError, ValueError):
        return None  # a shredded key, say: the draft is gone in all but name
    if not isinstance(fields, dict):
        return None
    return {str(k): str(v) for k, v in fields.items() if isinstance(v, str)}


def restore(author: User, form_key: str, form, *, keep: frozenset[str] = frozenset()) -> bool:
    """Fill an empty form (a first showing) from the author's draft; return whether it was.

    Only fields the form has, that are empty, and that are not in `keep` (already chosen by
    the page, e.g. the recipient of a "write to" link) are filled; a choice is restored only
    when it is still one of the field's choices.
    """
    saved = load(author, form_key)
    if not saved:
        return False
    restored = False
    for name, value in saved.items():
        field = form._fields.get(name)
        if field is None or name in keep or field.type in ("CSRFTokenField", "FileField",
                                                            "MultipleFileField"):
            continue
        choices = getattr(field, "choices", None)
        if choices is not None:
            if value in {str(choice[0]) for choice in choices}:
                field.data = value
            continue
        if not field.data and value:
            field.data = value
            restored = True
    return restored


def discard(author: User, form_key: str) -> None:
    """Delete the author's draft of this form, if there is one (sent, or thrown away)."""
    try:
        db.session.execute(delete(Draft).where(Draft.author_id == author.id,
                                               Draft.form_key == form_key))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def purge_old(now: datetime | None = None) -> int:
    """Delete drafts not touched for DRAFT_DAYS; returns how many (the deliver-mail loop).

    One DELETE: safe when several loops run it at once (each row goes once).
    """
    cutoff = (now or utcnow()) - timedelta(days=current_app.config["DRAFT_DAYS"])
    try:
        count = db.session.execute(delete(Draft).where(Draft.updated_at < cutoff)).rowcount
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return count or 0


def form_key_for_reply(thread_id: uuid.UUID) -> str:
    return f"{REPLY}:{thread_id}"


def form_key_for_estimate(estimate_id: uuid.UUID) -> str:
    return f"{ESTIMATE}:{estimate_id}"
