"""The list pages: the client's inbox, the therapist's dashboard, and the unread badge.

A parent or guardian's inbox lists their own conversations about the minors they are linked
to today ("About Riley"); a therapist's dashboard lists a guardian's conversation while the
therapist is assigned to its minor, marked "Parent or guardian of Riley".

Each page is read into plain rows and the read transaction ends before the template renders.
"""

import math
import uuid
from collections.abc import Iterable

from sqlalchemy import Uuid, and_, bindparam, case, exists, func, or_, select

from portal.accounts.display import person_label
from portal.accounts.identity import (
    names_by_id,
    names_of,
    pronouns_by_id,
    staff_details_by_id,
)
from portal.accounts.models import Assignment, Role, User
from portal.crypto import open_text_safe, preload_keys
from portal.extensions import db
from portal.messaging import crisis_state
from portal.messaging.access import care_client, guardian_clause
from portal.messaging.crisis_state import EMPTY, CrisisState
from portal.messaging.models import Thread, ThreadStatus
from portal.messaging.shown import ListPage, ThreadRow

LIST_PAGE = 25
SEARCH_MAX = 100
FILTERS = ("all", "awaiting", "unread")


def _end_read() -> None:
    """End a read-only transaction once the page's data is in plain objects.

    On SQLite every transaction takes the write lock at its first statement (BEGIN
    IMMEDIATE), so a list page should not hold it while its template renders.
    """
    db.session.commit()


def _pages(total: int) -> int:
    return max(1, math.ceil(total / LIST_PAGE))


def _rows(threads: list[Thread], people: dict[uuid.UUID, str], person_of,
          labels: dict[uuid.UUID, str] | None = None,
          states: dict[uuid.UUID, CrisisState] | None = None) -> list[ThreadRow]:
    """Plain rows; `states`, the opened crisis states (the dashboard's; an inbox shows none)."""
    labels = labels or {}
    states = states or {}
    rows = []
    for t in threads:
        crisis = states.get(t.id, EMPTY)
        rows.append(ThreadRow(
            person_label=labels.get(person_of(t), people.get(person_of(t), "")),
            id=t.id, subject=open_text_safe(t.client_id, t.subject_context(), t.subject_sealed),
            client_id=t.client_id,
            person=people.get(person_of(t), ""), last_message_at=t.last_message_at,
            unread=t.therapist_unread if person_of(t) == t.client_id else t.client_unread,
            closed=t.status == ThreadStatus.CLOSED, awaiting_since=t.awaiting_since,
            crisis=crisis.flagged,
            crisis_message_id=crisis.message_id,
            crisis_acknowledged_at=crisis.acknowledged_at,
            crisis_acknowledged_by=people.get(crisis.acknowledged_by, "a clinician")
            if crisis.acknowledged_by else "", to_practice=t.to_practice,
            handed_over_from=(people.get(t.handed_over_from_id, "another therapist")
                              if t.handed_over_at is not None and person_of(t) == t.client_id
                              else None),
            about_client_id=t.about_client_id,
            about_name=people.get(t.about_client_id, "") if t.about_client_id else None))
    return rows


def _names_for(ids: Iterable[uuid.UUID], *, also_keys: Iterable[uuid.UUID] = ()
               ) -> dict[uuid.UUID, str]:
    """Names for a list page; `also_keys` preloads other owners' keys (e.g. for subjects)."""
    ids = list(ids)
    preload_keys([*ids, *also_keys])  # one key query for the names and the subjects
    return names_by_id(ids)


def _labels(names: dict[uuid.UUID, str], ids: Iterable[uuid.UUID], *,
            staff: bool = False) -> dict[uuid.UUID, str]:
    """The people a list names, with pronouns (and staff's credentials): one statement
    each, whatever the length of the list."""
    ids = list(dict.fromkeys(ids))
    pronouns = pronouns_by_id(ids)
    details = staff_details_by_id(ids) if staff else {}
    return {i: person_label(names.get(i, ""), pronouns.get(i, ""),
                            details.get(i, ("", ""))[0]) for i in ids}


def inbox(client: User, page: int = 1) -> ListPage:
    """The client's conversations (a guardian's: while linked to the minor), newest first."""
    where = (guardian_clause(client) if client.role == Role.GUARDIAN
             else and_(Thread.client_id == client.id, Thread.about_client_id.is_(None)))
    total = db.session.scalar(select(func.count()).select_from(Thread).where(where)) or 0
    pages = _pages(total)
    page = min(max(page, 1), pages)
    threads = list(db.session.scalars(
        select(Thread).where(where)
        .order_by(Thread.last_message_at.desc(), Thread.id)
        .limit(LIST_PAGE).offset((page - 1) * LIST_PAGE)))
    names = _names_for([*{t.therapist_id for t in threads},
                        *{t.about_client_id for t in threads if t.about_client_id}],
                       also_keys=[client.id])
    labels = _labels(names, [t.therapist_id for t in threads], staff=True)
    listing = ListPage(_rows(threads, names, lambda t: t.therapist_id, labels), page, pages,
                       total)
    _end_read()
    return listing


def _dashboard_from(stmt, therapist: User):
    """Limit a statement to the therapist's threads with clients still assigned to them (and,
    for a covering clinician, every conversation written to the practice)."""
    if therapist.covering:
        own = and_(Thread.therapist_id == therapist.id, exists(
            select(Assignment.id).where(Assignment.client_id == care_client(),
                                        Assignment.therapist_id == therapist.id)))
        return stmt.where(or_(own, Thread.to_practice))
    return (stmt.join(Assignment, and_(Assignment.client_id == care_client(),
                                       Assignment.therapist_id == Thread.therapist_id))
            .where(Thread.therapist_id == therapist.id))


def matching_clients(therapist: User, query: str) -> list[uuid.UUID]:
    """Ids of the therapist's clients whose name contains the query (names open in the app)."""
    needle = " ".join(query.split()).casefold()
    mine = select(Assignment.client_id).where(Assignment.therapist_id == therapist.id)
    if therapist.covering:  # and the clients who wrote to the practice
        mine = mine.union(select(Thread.client_id).where(Thread.to_practice))
    clients = list(db.session.scalars(select(User).where(User.id.in_(mine))))
    names = names_of(clients)
    return [c.id for c in clients if needle in " ".join(names[c.id].split()).casefold()]


def dashboard(therapist: User, *, show: str = "all", query: str = "", page: int = 1
              ) -> ListPage:
    """The therapist's conversations: crisis-flagged first, then longest waiting, then newest.

    Whether a conversation is flagged is sealed (crisis_state.py), so SQL cannot put the
    flagged ones first. One statement reads the id, client and sealed state of every matching
    conversation (all of them, not only the page's, so crisis-first order holds across pages;
    the counts come from the same rows); they are opened (crisis_state.open_states: one key
    query for the owners not opened before) and the flagged ones, oldest flag first, take the
    first places; SQL orders the rest as before, without them, from the offset that is left.
    """
    show = show if show in FILTERS else "all"
    query = (query or "").strip()[:SEARCH_MAX]
    conditions = []
    if query:
        # A guardian's conversation is found by its minor's name too.
        found = matching_clients(therapist, query)
        conditions.append(or_(Thread.client_id.in_(found), Thread.about_client_id.in_(found)))
    awaiting = and_(Thread.awaiting_since.is_not(None), Thread.status == ThreadStatus.OPEN)
    # The counts come from the same rows (one statement): id, client, sealed state, whether
    # it awaits a reply, its unread count.
    sealed = db.session.execute(_dashboard_from(
        select(*crisis_state.sealed_columns(), case((awaiting, 1), else_=0),
               Thread.therapist_unread).select_from(Thread),
        therapist).where(*conditions)).all()
    counts = {"all": len(sealed), "awaiting": sum(row[3] for row in sealed),
              "unread": sum(1 for row in sealed if row[4] > 0)}
    # Unfiltered, the same rows as `unread_count`: the badge needs no query of its own.
    unread_messages = None if conditions else sum(row[4] for row in sealed)
    if show == "awaiting":
        conditions.append(awaiting)
        sealed = [row for row in sealed if row[3]]
    elif show == "unread":
        conditions.append(Thread.therapist_unread > 0)
        sealed = [row for row in sealed if row[4] > 0]
    total = counts[show]
    pages = _pages(total)
    page = min(max(page, 1), pages)
    states = crisis_state.open_states(sealed)  # by the ids' hex digits
    flagged = [uuid.UUID(hex=key) for key in sorted(
        (key for key, state in states.items() if state.flagged),
        key=lambda key: (states[key].flagged_at, key))]
    start = (page - 1) * LIST_PAGE
    flagged_here = flagged[start:start + LIST_PAGE]
    rest_offset = max(0, start - len(flagged))
    rest_limit = LIST_PAGE - len(flagged_here)
    order = (
        # Handed over and not opened yet by its new therapist: first, newest handover first.
        case((Thread.handed_over_at.is_not(None), 0), else_=1),
        Thread.handed_over_at.desc(),
        case((awaiting, 0), else_=1),
        Thread.awaiting_since,
        Thread.last_message_at.desc(),
        Thread.id,
    )
    # The flagged conversations on this page, if any (one statement), then the rest.
    by_id = {t.id: t for t in db.session.scalars(
        select(Thread).where(Thread.id.in_(flagged_here)))} if flagged_here else {}
    rest = list(db.session.scalars(
        _dashboard_from(select(Thread), therapist)
        .where(*conditions, Thread.id.not_in(flagged))
        .order_by(*order).limit(rest_limit).offset(rest_offset)))
    threads = [by_id[i] for i in flagged_here if i in by_id] + rest
    states = {t.id: states.get(t.id.hex) or crisis_state.state_of(t) for t in threads}
    names = _names_for([*{t.client_id for t in threads},
                        *{t.about_client_id for t in threads if t.about_client_id},
                        *{states[t.id].acknowledged_by for t in threads
                          if states[t.id].acknowledged_by},
                        *{t.handed_over_from_id for t in threads
                          if t.handed_over_at is not None and t.handed_over_from_id}],
                       # and the therapist's: the page's audit row seals its origin under it
                       also_keys=[therapist.id])
    labels = _labels(names, [t.client_id for t in threads])
    listing = ListPage(_rows(threads, names, lambda t: t.client_id, labels, states), page,
                       pages, total, counts, unread_messages)
    _end_read()
    return listing


_UNREAD_OF_CLIENT = select(func.coalesce(func.sum(Thread.client_unread), 0)).where(
    Thread.client_id == bindparam("user_id", type_=Uuid()), Thread.client_unread > 0)
_UNREAD_OF_THERAPIST = (
    select(func.coalesce(func.sum(Thread.therapist_unread), 0))
    .join(Assignment, and_(Assignment.client_id == care_client(),
                           Assignment.therapist_id == Thread.therapist_id))
    .where(Thread.therapist_id == bindparam("user_id", type_=Uuid()),
           Thread.therapist_unread > 0))


_UNREAD_OF_COVERING = select(func.coalesce(func.sum(Thread.therapist_unread), 0)).where(
    Thread.therapist_unread > 0,
    or_(and_(Thread.therapist_id == bindparam("user_id", type_=Uuid()),
             exists(select(Assignment.id).where(
                 Assignment.client_id == care_client(),
                 Assignment.therapist_id == bindparam("user_id", type_=Uuid())))),
        Thread.to_practice))


def unread_count(user: User) -> int:
    """Unread messages for the navigation badge (one query, on every page)."""
    if user.role == Role.CLIENT:
        stmt = _UNREAD_OF_CLIENT
    elif user.role == Role.GUARDIAN:  # only while linked to the minor (not a hot statement)
        return int(db.session.scalar(
            select(func.coalesce(func.sum(Thread.client_unread), 0))
            .where(guardian_clause(user), Thread.client_unread > 0)) or 0)
    elif user.role == Role.THERAPIST:
        stmt = _UNREAD_OF_COVERING if user.covering else _UNREAD_OF_THERAPIST
    else:
        return 0
    return int(db.session.execute(stmt, {"user_id": user.id}).scalar() or 0)
