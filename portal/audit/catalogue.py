"""The audited actions a client's access log ("Who has seen my record") can show, each
declared once, by the feature that records it, in the plain words the log uses.

The audit package knows no feature: a feature declares its actions from its `init_app`
(`declare("thread.viewed", "Read {target}")`) and says how to name the things its events
point at (`name_targets(("thread",), subjects_of, otherwise="one of your conversations")`).
`{target}` in an action's words becomes that name, or `otherwise` when none is found.
An action that was never declared reads "Worked with your record".
"""

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

UNDECLARED = "Worked with your record"

# (client id, {target type: [ids]}) -> {target id as a string: "your file “x.pdf”"}
TargetNamer = Callable[[uuid.UUID, dict[str, list[uuid.UUID]]], dict[str, str]]


@dataclass(frozen=True)
class Action:
    """How the client's log shows one audited action.

    `words` None: recorded but never listed (another event already says it).
    `emergency`: done under emergency access, and marked so in the log.
    `about`: `{target}` names the object of this type whose id is in the event's sealed
    detail (`detail[about]`), not the row's target (an emergency event's target is its
    grant, and the conversation it read is kept out of the readable row).
    """

    name: str
    words: str | None
    emergency: bool = False
    about: str | None = None


@dataclass(frozen=True)
class Targets:
    """How to name the objects of some target types for one client, in one batch."""

    kinds: tuple[str, ...]
    namer: TargetNamer
    otherwise: str


_actions: dict[str, Action] = {}
_targets: dict[str, Targets] = {}


def declare(name: str, words: str | None, *, emergency: bool = False,
            about: str | None = None) -> Action:
    """Declare how the client's log shows `name`; the same declaration again is harmless
    (every app built in one process declares), a different one is a mistake."""
    action = Action(name, words, emergency, about)
    known = _actions.setdefault(name, action)
    if known != action:
        raise ValueError(f"audited action {name!r} is already declared as {known.words!r}")
    return action


def name_targets(kinds: Iterable[str], namer: TargetNamer, *, otherwise: str) -> None:
    """Say how to name the targets of these types (one call of `namer` for all of them)."""
    entry = Targets(tuple(kinds), namer, otherwise)
    for kind in entry.kinds:
        known = _targets.setdefault(kind, entry)
        if known.kinds != entry.kinds or known.otherwise != otherwise:
            raise ValueError(f"targets of type {kind!r} are already named")


def action(name: str) -> Action:
    """The declaration for `name` (an undeclared action gets the general words)."""
    return _actions.get(name) or Action(name, UNDECLARED)


def declared() -> dict[str, Action]:
    return dict(_actions)


def target_names(client_id: uuid.UUID, ids: dict[str, list[uuid.UUID]]) -> dict[str, str]:
    """Names of the targets of a client's events, by target id: one call per namer."""
    names: dict[str, str] = {}
    namers = {id(entry): entry for kind, entry in _targets.items() if ids.get(kind)}
    for entry in namers.values():
        names.update(entry.namer(client_id, {kind: ids.get(kind, []) for kind in entry.kinds}))
    return names


def describe(event, names: dict[str, str],
             about: tuple[str | None, str | None] | None = None) -> str | None:
    """Say in plain words what a staff event was; None for events not worth listing.
    `about` is (target type, id) when it is not the row's target (`Action.about`)."""
    declaration = action(event.action)
    if declaration.words is None or "{target}" not in declaration.words:
        return declaration.words
    target_type, target_id = about or (event.target_type, event.target_id)
    named = names.get(target_id or "")
    targets = _targets.get(target_type or "")
    fallback = targets.otherwise if targets else "your record"
    return declaration.words.format(target=named or fallback)


# The audit layer records this one itself, for the crypto layer (see `portal.audit.hooks`).
declare("crypto.decrypt_failure", "Tried to open part of your record that could not be "
                                  "decrypted")
