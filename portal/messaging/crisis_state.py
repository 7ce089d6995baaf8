"""Crisis flags at rest: sealed with the message and the conversation, never readable.

A stolen copy of the database must not say which clients wrote words about self-harm. So no
column holds a crisis value in the clear, and no column is set only when something is flagged:

- `messages.crisis_sealed`, on EVERY message (client's or staff's): "1" or "0", sealed under
  the thread's client's key. The seal is randomized (a fresh nonce each time) and padded to
  the 32-byte bucket, so a flagged message's blob looks like any other. (A keyed digest of a
  yes/no would not do: it is still one of two values, and a thief can count them.)
- `message_threads.crisis_sealed`, on EVERY thread: one `CrisisState` (when the flag was
  raised, the message to jump to, who acknowledged it and when, when the escalation timer
  fires next and how many times it has), as JSON padded with spaces to WIDTH bytes, so every
  state, empty or not, lands in the same 256-byte bucket. It is resealed on every message
  sent in the thread (`sending._append`) and on every clinician's look at it (`reseal`), so a
  rewrite of the blob does not tell a flag or its acknowledgement from ordinary use.

Everything that reads or writes a flag goes through this module: `state_of(thread)` opens a
loaded thread's state, `write(thread, state)` reseals it, `open_states(rows)` opens many plain
rows' at once (the dashboard's, the escalation scan's), `seal_message_flag` / `message_flagged`
the messages'. A state that will not open is reported through the crypto hooks (audited, ids
only) and read as unflagged with `unreadable=True`; nothing here ever raises into a page.

Speed: the dashboard orders every conversation of a therapist crisis-first, so it needs every
one of their states, not only a page's: 2,000 clients' states cost 2,000 data keys loaded and
unwrapped and 2,000 opens, about ten times the rest of the page. So opened states are kept in
this process's memory (`_opened`, at most CACHE_MAX), by thread, each with the exact sealed
blob it was opened from: any rewrite (a message, an acknowledgement, an escalation, a tampered
row) misses and is opened again, so the cache never says anything the database does not. It
holds no more than the process can open anyway with the keys it holds. A shredded owner's
entries are dropped on that process's shred event (`forget_owner`, through `hooks.key_event`),
and every entry expires after CACHE_SECONDS to twice that (spread by thread, so a dashboard's
thousands of states do not all expire on the same page load).
"""

import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import String, type_coerce, update
from sqlalchemy.orm.attributes import set_committed_value

from portal.crypto import DecryptionError, context_for, open_text, preload_keys, seal
from portal.crypto.hooks import report_decrypt_failure
from portal.extensions import db
from portal.messaging.models import Message, Thread

WIDTH = 240  # bytes of JSON (space padded): with the 2-byte length, always the 256 bucket
FLAGGED, NOT_FLAGGED = "1", "0"
_CACHE = "_crisis_state_cache"  # on a Thread instance: (blob, CrisisState)
CACHE_SECONDS = 300
CACHE_MAX = 50_000
# thread id (hex) -> (its blob, expires at, owner id (hex), the opened state): see above.
_opened: "OrderedDict[str, tuple[bytes, float, str, CrisisState]]" = OrderedDict()
_opened_lock = threading.Lock()


@dataclass(frozen=True)
class CrisisState:
    """A conversation's crisis flag. `flagged_at` is set while a flag is waiting for "seen and
    acted on"; acknowledging clears it (and the timer) and keeps who and when."""

    flagged_at: datetime | None = None
    message_id: uuid.UUID | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: uuid.UUID | None = None
    escalate_at: datetime | None = None
    escalations: int = 0
    unreadable: bool = False  # the sealed state would not open (reported)

    @property
    def flagged(self) -> bool:
        return self.flagged_at is not None

    def unacknowledged(self) -> bool:
        """Flagged, and nobody has marked it "seen and acted on" since."""
        return self.flagged_at is not None and (
            self.acknowledged_at is None or self.acknowledged_at < self.flagged_at)

    def due(self, now: datetime) -> bool:
        """The escalation timer has fired and the flag is still unacknowledged."""
        return (self.escalate_at is not None and self.escalate_at <= now
                and self.unacknowledged())


EMPTY = CrisisState()


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def encode(state: CrisisState) -> str:
    """The state as JSON of exactly WIDTH bytes (short keys, trailing spaces)."""
    data = {"f": _time(state.flagged_at),
            "m": str(state.message_id) if state.message_id else None,
            "a": _time(state.acknowledged_at),
            "b": str(state.acknowledged_by) if state.acknowledged_by else None,
            "e": _time(state.escalate_at), "n": state.escalations}
    text = json.dumps(data, separators=(",", ":"))
    if len(text) > WIDTH:  # cannot happen with ISO times and UUIDs; never leak a length
        raise ValueError("crisis state longer than its fixed width")
    return text.ljust(WIDTH)


def decode(text: str) -> CrisisState:
    data = json.loads(text)
    return CrisisState(
        flagged_at=_parse_time(data.get("f")),
        message_id=uuid.UUID(data["m"]) if data.get("m") else None,
        acknowledged_at=_parse_time(data.get("a")),
        acknowledged_by=uuid.UUID(data["b"]) if data.get("b") else None,
        escalate_at=_parse_time(data.get("e")), escalations=int(data.get("n") or 0))


def thread_context(thread_id: uuid.UUID):
    return context_for(Thread.crisis_sealed, thread_id)


def message_context(message_id: uuid.UUID):
    return context_for(Message.crisis_sealed, message_id)


def seal_state(client_id: uuid.UUID, thread_id: uuid.UUID, state: CrisisState) -> bytes:
    return seal(client_id, thread_context(thread_id), encode(state))


def hex_of(value: uuid.UUID | str) -> str:
    """An id as the cache keys it: SQLite hands back the 32 hex digits it stores."""
    return value if isinstance(value, str) else value.hex


def uuid_of(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(hex=value)


def sealed_columns() -> tuple:
    """(id, client_id, crisis_sealed) for `open_states`, with the ids as the database returns
    them: a list of 2,000 conversations should not make 4,000 UUID objects to look them up."""
    return (type_coerce(Thread.id, String()).label("id"),
            type_coerce(Thread.client_id, String()).label("client_id"), Thread.crisis_sealed)


def _cached(client_hex: str, thread_hex: str, blob: bytes) -> CrisisState | None:
    with _opened_lock:
        hit = _opened.get(thread_hex)
        if (hit is not None and hit[0] == blob and hit[2] == client_hex
                and hit[1] >= time.monotonic()):
            return hit[3]
        return None


def _remember(client_hex: str, thread_hex: str, blob: bytes, state: CrisisState) -> None:
    with _opened_lock:
        # Spread over CACHE_SECONDS to twice that, by thread: a dashboard's thousands of states,
        # opened together, then expire a few at a time rather than all on one page load.
        spread = 1 + int(thread_hex[-4:], 16) / 0x10000
        _opened[thread_hex] = (bytes(blob), time.monotonic() + CACHE_SECONDS * spread,
                               client_hex, state)
        _opened.move_to_end(thread_hex)
        while len(_opened) > CACHE_MAX:
            _opened.popitem(last=False)


def forget_owner(owner_id: uuid.UUID | str) -> None:
    """Drop the opened states of one owner's threads (their key was shredded)."""
    owner = uuid.UUID(str(owner_id)).hex
    with _opened_lock:
        for key in [k for k, hit in _opened.items() if hit[2] == owner]:
            del _opened[key]


def forget_all() -> None:
    with _opened_lock:
        _opened.clear()


def open_state(client_id: uuid.UUID | str, thread_id: uuid.UUID | str,
               blob: bytes | None) -> CrisisState:
    """Open a plain row's state; unflagged and `unreadable` (reported) if it will not open."""
    if blob is None:
        return EMPTY
    client_hex, thread_hex = hex_of(client_id), hex_of(thread_id)
    cached = _cached(client_hex, thread_hex, blob)
    if cached is not None:
        return cached
    client_id = uuid_of(client_id)
    context = thread_context(uuid_of(thread_id))
    try:
        state = decode(open_text(client_id, context, blob))
    except DecryptionError as exc:
        report_decrypt_failure(client_id, context, exc.reason)
    except (ValueError, KeyError, TypeError):
        report_decrypt_failure(client_id, context, "not-a-crisis-state")
    else:
        _remember(client_hex, thread_hex, blob, state)
        return state
    return replace(EMPTY, unreadable=True)


def open_states(rows: Iterable) -> dict[str, CrisisState]:
    """The states of many plain rows, each starting (id, client_id, crisis_sealed) (see
    `sealed_columns`), by the id's 32 hex digits. The keys of the owners whose states were
    not opened before are loaded with one SELECT (per 1,000 owners)."""
    states: dict[str, CrisisState] = {}
    missing = []
    now = time.monotonic()
    get = _opened.get
    with _opened_lock:  # once for the whole list: a dashboard may hold thousands
        for row in rows:
            thread_id, client_id, blob = row[0], row[1], row[2]
            thread_hex = thread_id if thread_id.__class__ is str else thread_id.hex
            if blob is None:
                states[thread_hex] = EMPTY
                continue
            hit = get(thread_hex)
            if (hit is not None and hit[0] == blob and hit[1] >= now
                    and hit[2] == (client_id if client_id.__class__ is str else client_id.hex)):
                states[thread_hex] = hit[3]
            else:
                missing.append((thread_id, client_id, blob))
    if missing:
        preload_keys({uuid_of(client_id) for _, client_id, _ in missing})
        for thread_id, client_id, blob in missing:
            states[hex_of(thread_id)] = open_state(client_id, thread_id, blob)
    return states


def state_of(thread: Thread) -> CrisisState:
    """A loaded thread's state (opened once per blob: a reload or a rewrite opens it again)."""
    blob = thread.crisis_sealed
    cached = thread.__dict__.get(_CACHE)
    if cached is not None and cached[0] is blob:
        return cached[1]
    state = open_state(thread.client_id, thread.id, blob)
    thread.__dict__[_CACHE] = (blob, state)
    return state


def write(thread: Thread, state: CrisisState) -> None:
    """Reseal the thread's state (a fresh seal even when nothing changed)."""
    blob = seal_state(thread.client_id, thread.id, state)
    thread.crisis_sealed = blob
    thread.__dict__[_CACHE] = (blob, state)


def reseal(thread: Thread) -> bool:
    """Seal a thread's state afresh, unchanged, unless someone rewrote it since it was read
    (a compare-and-set on the blob; then that rewrite did the same). A clinician's every look
    at a conversation does this, so the rewrite an acknowledgement makes looks like a look to
    someone comparing two copies of the database (backups, say)."""
    seen = thread.crisis_sealed
    state = state_of(thread)
    if seen is None or state.unreadable:
        return False
    blob = seal_state(thread.client_id, thread.id, state)
    done = db.session.execute(
        update(Thread).where(Thread.id == thread.id, Thread.crisis_sealed == seen)
        .values(crisis_sealed=blob).execution_options(synchronize_session=False)).rowcount
    if done:
        set_committed_value(thread, "crisis_sealed", blob)
        thread.__dict__[_CACHE] = (blob, state)
    return bool(done)


def ensure(thread: Thread) -> None:
    """Give a new thread its (empty) sealed state if it has none yet."""
    if thread.crisis_sealed is None:
        write(thread, EMPTY)


def seal_message_flag(client_id: uuid.UUID, message_id: uuid.UUID, flagged: bool) -> bytes:
    return seal(client_id, message_context(message_id), FLAGGED if flagged else NOT_FLAGGED)


def message_flagged(client_id: uuid.UUID, message_id: uuid.UUID, blob: bytes | None, *,
                    report: bool = True) -> bool:
    """Whether a message was crisis-flagged; False (reported, unless `report=False` on a
    second pass over the same messages) if its seal will not open."""
    if blob is None:
        return False
    context = message_context(message_id)
    try:
        return open_text(client_id, context, blob) == FLAGGED
    except DecryptionError as exc:
        if report:
            report_decrypt_failure(client_id, context, exc.reason)
        return False


def viewed_detail(*, acknowledged: bool = False) -> dict:
    """The sealed detail of every "thread.viewed" audit event: the same shape on every view,
    so the one that marked a flag "seen and acted on" looks like any other."""
    return {"crisis_acknowledged": acknowledged}
