"""Every extension point of the base layers, declared in one place.

The base (crypto, audit, mail, security, templating) calls these and imports no feature; a
feature provides them from its `init_app` (FlaskBB's `plugins/spec.py` in miniature).
Providing the same function twice is harmless, so every app built in one process (the
tests build many) shares one set.

| point                 | kind   | called by  | with                                      |
|-----------------------|--------|------------|-------------------------------------------|
| `user_loader`         | one    | security   | the session's id -> a user or None        |
| `email_address_of`    | one    | mail       | a user -> their address (opened)          |
| `display_names`       | one    | audit      | user ids -> {id: name} for the access log |
| `sign_in_gates`       | many   | security   | a `Gate`, checked before every page       |
| `navigation`          | many   | templating | a `NavItem` for the main navigation       |
| `footer_links`        | many   | templating | a `FooterLink` for every page's footer    |
| `decrypt_failure`     | many   | crypto     | (owner_id, context, reason); never raises |
| `key_event`           | many   | crypto     | (action, *, actor, target, details)       |
| `account_sections`    | many   | accounts   | a template included on the Account page   |
| `dashboard_panels`    | many   | messaging  | a `Panel` on the therapist's dashboard    |
| `demo_seeders`        | many   | cli        | a function(people) adding demo data       |
| `care_checks`         | many   | accounts   | client ids (None: all) whose care changed |
| `worker_tasks`        | many   | mail (cli) | a `WorkerTask` run every deliver-mail round|
| `shred_guards`        | many   | crypto     | owner id -> why not to shred it, or None  |
| `digest_key_started`  | many   | crypto     | a keyed digest's name, its canary just made |

`account_sections`, `dashboard_panels` and `demo_seeders` let one feature show another's part
without importing it. `care_checks` run after a therapist leaves a client's care (unassigned,
deactivated, no longer covering), inside that transaction and before its commit: a check
raises `RuleError` to refuse the change (messaging refuses to leave a conversation nobody can
read). `worker_tasks` are the timers the `deliver-mail` loop runs before each round of
delivery (crisis escalation, draft purging): each must be safe with several loops running.
`shred_guards` can refuse a crypto-shred before any key goes (a legal hold on the record).
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ExtensionPoint(Generic[T]):
    """A named place where features plug in: one provider, or any number of them."""

    def __init__(self, name: str, *, single: bool = False) -> None:
        self.name = name
        self.single = single
        self._entries: list[T] = []

    def provide(self, entry: T) -> T:
        """Add an entry (for `single` points: replace the provider); usable as a decorator."""
        if self.single:
            self._entries[:] = [entry]
        elif entry not in self._entries:
            self._entries.append(entry)
        return entry

    def remove(self, entry: T) -> None:
        if entry in self._entries:
            self._entries.remove(entry)

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the single provider; a missing one is a start-up mistake, said plainly."""
        if not self._entries:
            raise LookupError(f"no feature provides the {self.name!r} extension point")
        return self._entries[0](*args, **kwargs)  # type: ignore[operator]

    # The crypto hooks were plain lists; tests and tools still append and pop.
    append = provide

    def pop(self) -> T:
        return self._entries.pop()


@dataclass(frozen=True)
class Gate:
    """A check run for signed-in users before every non-public page.

    `check()` returns a response (usually a redirect) to stop the request, or None. A view
    marked with `exempt_mark` (see `portal.pages`) is never stopped by this gate. While
    `hides_navigation(user)` is true the main navigation is not shown (it would lead only
    back to the gate).
    """

    name: str
    check: Callable[[], Any]
    exempt_mark: str
    hides_navigation: Callable[[Any], bool] = field(default=lambda user: False)


@dataclass(frozen=True)
class NavItem:
    """One entry of the main navigation, for the given roles, in `order`.

    The item is marked current on its own endpoint and on any endpoint starting with one of
    `sections` (by default the endpoint's blueprint, e.g. "messaging.").
    """

    label: str
    endpoint: str
    roles: tuple[str, ...]
    order: int
    sections: tuple[str, ...] | None = None
    badge: Callable[[Any], int | None] | None = None

    def is_current(self, endpoint: str) -> bool:
        if endpoint == self.endpoint:
            return True
        sections = self.sections
        if sections is None:
            sections = (self.endpoint.split(".")[0] + ".",)
        return any(endpoint.startswith(prefix) for prefix in sections)


@dataclass(frozen=True)
class Panel:
    """Another feature's part of a page: a template, the context it needs, its stylesheet."""

    template: str
    context: Callable[[Any], dict]
    stylesheet: str | None = None
    # The looks at clients the panel shows (`portal.audit.looks.Look`s, from what `context`
    # returned), which the page puts on their access logs along with its own.
    looks: Callable[[dict], Iterable[Any]] | None = None


@dataclass(frozen=True)
class WorkerTask:
    """A timer the deliver-mail loop runs each round; `run()` returns a count to print.

    It owns its transactions, and must be safe when several loops run it at once (claim the
    work with a compare-and-set or a row lock, never "read, then act").
    """

    name: str
    run: Callable[[], int]


@dataclass(frozen=True)
class FooterLink:
    label: str
    endpoint: str
    order: int
    values: tuple[tuple[str, str], ...] = ()


user_loader: ExtensionPoint[Callable[[str], Any]] = ExtensionPoint("user_loader", single=True)
email_address_of: ExtensionPoint[Callable[[Any], str]] = ExtensionPoint("email_address_of",
                                                                         single=True)
display_names: ExtensionPoint[Callable[[Any], dict]] = ExtensionPoint("display_names",
                                                                      single=True)
sign_in_gates: ExtensionPoint[Gate] = ExtensionPoint("sign_in_gates")
navigation: ExtensionPoint[NavItem] = ExtensionPoint("navigation")
footer_links: ExtensionPoint[FooterLink] = ExtensionPoint("footer_links")
decrypt_failure: ExtensionPoint[Callable[..., None]] = ExtensionPoint("decrypt_failure")
key_event: ExtensionPoint[Callable[..., None]] = ExtensionPoint("key_event")
account_sections: ExtensionPoint[str] = ExtensionPoint("account_sections")
dashboard_panels: ExtensionPoint[Panel] = ExtensionPoint("dashboard_panels")
demo_seeders: ExtensionPoint[Callable[..., None]] = ExtensionPoint("demo_seeders")
care_checks: ExtensionPoint[Callable[[Any], None]] = ExtensionPoint("care_checks")
worker_tasks: ExtensionPoint[WorkerTask] = ExtensionPoint("worker_tasks")
shred_guards: ExtensionPoint[Callable[[Any], str | None]] = ExtensionPoint("shred_guards")
# Called with a keyed digest's name ("recovery-codes") in the transaction that first creates
# its canary: values made before that key existed are voided by the feature that keeps them.
digest_key_started: ExtensionPoint[Callable[[str], None]] = ExtensionPoint(
    "digest_key_started")
