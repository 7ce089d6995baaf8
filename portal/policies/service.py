"""Policy rules: publishing versions, which version is current, and clients' acceptances.

A version is current from its effective date (in the practice's time zone) until the next
version's effective date. New versions cannot take effect in the past or before an earlier
version, so "current" is simply the highest-numbered version whose date has come.

Who must accept what: Terms of Service and the Privacy Policy always need a client's
acceptance (at first sign-in they accept whatever version is current); any policy also needs it
once a version marked `requires_acceptance` has taken effect and the client has not accepted
that version or a later one. A version published without the mark does not ask anyone again.
"Accepting" is worded per policy (`AGREED`): a client agrees to the Terms of Service; for every
other policy, the Notice of Privacy Practices first, they acknowledge receipt
(45 CFR 164.520(c)(2)(ii) asks for a written acknowledgment of receipt, not agreement).

The standard texts (`STANDARD`) are a history: each policy's versions as the portal ships
them. `ensure_defaults` (`portal policies init`, run by `make run`, `make serve` and after
each upgrade) publishes the ones a database lacks, in order, effective today: a fresh database
gets the same numbered versions as one that has run for years. A policy whose newest version
is not a standard text (the practice wrote its own) is left alone and reported instead.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Date, Uuid, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer

from portal import practice
from portal.accounts.models import Role, User
from portal.audit import record
from portal.crypto import context_for, open_text_safe, preload_keys, seal
from portal.db import new_id, utcnow
from portal.errors import RuleError
from portal.extensions import db
from portal.policies.models import (
    SUMMARY_MAX,
    TEXT_MAX,
    PolicyAcceptance,
    PolicyVersion,
)
from portal.policies.rendering import (
    POLICY_TITLES,
    load_content,
    normalize_newlines,
    render_markdown,
    text_hash,
)

# Display order everywhere (index, acceptance page, admin, sitemap).
POLICY_SLUGS: tuple[str, ...] = tuple(POLICY_TITLES)

# Policies every client accepts before using the portal, whatever the version marks say.
ALWAYS_ACCEPT = frozenset({"terms", "privacy"})

# One plain sentence per policy, for the acceptance page and the index.
DESCRIPTIONS = {
    "terms": "How the portal works, what messaging is for (and not for), and what we ask of "
             "you.",
    "privacy": "How we use and protect your health information, and your rights over it.",
    "good-faith-estimate": "Your right to know what your care is expected to cost if you pay "
                           "for it yourself.",
    "accessibility": "How we make the portal work for everyone, and how to tell us when it "
                     "does not.",
}

FIRST_SUMMARY = "The first version of this policy in the portal."

# Policies a client agrees to; for the others they acknowledge that they received them.
AGREED = frozenset({"terms"})


@dataclass(frozen=True)
class Standard:
    """One version of a policy's standard text, as the portal ships it."""

    slug: str
    number: int
    source: str  # under portal/policies/content
    summary: str
    requires_acceptance: bool

    @property
    def text(self) -> str:
        return load_content(self.source)


PRIVACY_V2_SUMMARY = (
    "We added when we may share information with family, friends or others involved in your "
    "care, in a disaster, with funeral directors, and for organ and tissue donation. We explain "
    "Pennsylvania's stricter rules in plain terms: most sharing of mental health, drug and "
    "alcohol, or HIV information needs your written consent or a court order. We say how long "
    "we keep records, and that confirming you received this notice does not mean you agree "
    "with it.")
GFE_V2_SUMMARY = (
    "A correction: the $400 that lets you dispute a bill is counted for each provider or "
    "facility (everything billed compared with the total on your estimate), not for each "
    "service. Nothing else changed.")

STANDARD: dict[str, tuple[Standard, ...]] = {
    "terms": (Standard("terms", 1, "terms.md", FIRST_SUMMARY, True),),
    "privacy": (
        Standard("privacy", 1, "history/privacy-1.md", FIRST_SUMMARY, True),
        # 45 CFR 164.520(b): a revised notice; clients are asked to acknowledge it again.
        Standard("privacy", 2, "privacy.md", PRIVACY_V2_SUMMARY, True),
    ),
    "good-faith-estimate": (
        Standard("good-faith-estimate", 1, "history/good-faith-estimate-1.md", FIRST_SUMMARY,
                 False),
        # A wording correction (45 CFR 149.620): nobody is asked to accept it again.
        Standard("good-faith-estimate", 2, "good-faith-estimate.md", GFE_V2_SUMMARY, False),
    ),
    "accessibility": (Standard("accessibility", 1, "accessibility.md", FIRST_SUMMARY, False),),
}


# --- reading ------------------------------------------------------------------------------


def title_of(slug: str) -> str:
    return POLICY_TITLES[slug]


def is_known(slug: str) -> bool:
    return slug in POLICY_TITLES


def _light():
    """Leave the (long) text out of list queries; it loads if a caller really reads it."""
    return defer(PolicyVersion.text)


def current_version(slug: str, on: date | None = None) -> PolicyVersion | None:
    """Return the version of a policy in effect on a date (today by default), or None."""
    on = on or practice.today()
    return db.session.scalar(
        select(PolicyVersion)
        .where(PolicyVersion.slug == slug, PolicyVersion.effective_date <= on)
        .order_by(PolicyVersion.number.desc()).limit(1))


def current_versions(on: date | None = None) -> dict[str, PolicyVersion]:
    """Return every policy's version in effect on a date, by slug (one query, no texts)."""
    on = on or practice.today()
    rows = db.session.scalars(
        select(PolicyVersion).options(_light())
        .where(PolicyVersion.effective_date <= on)
        .order_by(PolicyVersion.slug, PolicyVersion.number))
    return {version.slug: version for version in rows}  # the highest number wins


def versions_of(slug: str) -> list[PolicyVersion]:
    """Return every version of a policy, newest first (texts deferred)."""
    return list(db.session.scalars(
        select(PolicyVersion).options(_light()).where(PolicyVersion.slug == slug)
        .order_by(PolicyVersion.number.desc())))


def all_versions() -> dict[str, list[PolicyVersion]]:
    """Return every version of every policy, newest first per slug (one query, no texts)."""
    by_slug: dict[str, list[PolicyVersion]] = {slug: [] for slug in POLICY_SLUGS}
    rows = db.session.scalars(
        select(PolicyVersion).options(_light())
        .order_by(PolicyVersion.slug, PolicyVersion.number.desc()))
    for version in rows:
        by_slug.setdefault(version.slug, []).append(version)
    return by_slug


def get_version(slug: str, number: int) -> PolicyVersion | None:
    """Return one version of a policy, or None."""
    return db.session.scalar(select(PolicyVersion).where(PolicyVersion.slug == slug,
                                                         PolicyVersion.number == number))


def latest_version(slug: str) -> PolicyVersion | None:
    """Return the newest version of a policy, whether or not it is in effect yet."""
    return db.session.scalar(select(PolicyVersion).where(PolicyVersion.slug == slug)
                             .order_by(PolicyVersion.number.desc()).limit(1))


def status_of(version: PolicyVersion, current: PolicyVersion | None,
              on: date | None = None) -> str:
    """Say whether a version is "current", "upcoming" or "superseded"."""
    if version.effective_date > (on or practice.today()):
        return "upcoming"
    if current is not None and current.id == version.id:
        return "current"
    return "superseded"


def rendered(version_or_text: PolicyVersion | str) -> str:
    """Return the sanitized HTML of a version (or of a Markdown text)."""
    text = version_or_text if isinstance(version_or_text, str) else version_or_text.text
    return render_markdown(text)


# --- publishing ---------------------------------------------------------------------------

def check_new_version(slug: str, *, text: str, effective_date: date | None,
                      summary: str) -> tuple[str, str, date]:
    """Check a would-be new version; return its normalized (text, summary, date) or raise."""
    if not is_known(slug):
        raise RuleError("There is no such policy.", "slug")
    text = normalize_newlines(text or "")
    if not text.strip():
        raise RuleError("Write the policy text.", "text")
    if len(text) > TEXT_MAX:
        raise RuleError(f"The text is too long: keep it under {TEXT_MAX:,} characters.",
                          "text")
    if not render_markdown(text).strip():
        raise RuleError("Nothing would be left of this text once unsafe content (scripts, "
                          "raw HTML) is removed.", "text")
    summary = " ".join((summary or "").split())
    if not summary:
        raise RuleError("Say in a sentence or two what changed.", "summary")
    if len(summary) > SUMMARY_MAX:
        raise RuleError(f"Keep the summary under {SUMMARY_MAX} characters.", "summary")
    if effective_date is None:
        raise RuleError("Choose the date this version takes effect.", "effective_date")
    latest = latest_version(slug)
    if latest is not None:
        if effective_date < practice.today():
            raise RuleError("A new version cannot take effect in the past: clients accepted "
                              "the earlier one. Choose today or a later date.",
                              "effective_date")
        if effective_date < latest.effective_date:
            raise RuleError(f"Version {latest.number} takes effect on "
                              f"{latest.effective_date:%B} {latest.effective_date.day}, "
                              f"{latest.effective_date.year}; a newer version cannot take "
                              "effect before it.", "effective_date")
        if text_hash(text) == latest.text_hash:
            raise RuleError(f"This text is the same as version {latest.number}. Change the "
                              "text, or keep the version you have.", "text")
    return text, summary, effective_date


def publish(actor: User | None, *, slug: str, text: str, effective_date: date | None,
            summary: str, requires_acceptance: bool = False) -> PolicyVersion:
    """Publish the next version of a policy; it can never be changed afterwards."""
    text, summary, effective_date = check_new_version(
        slug, text=text, effective_date=effective_date, summary=summary)
    number = (db.session.scalar(select(func.max(PolicyVersion.number))
                                .where(PolicyVersion.slug == slug)) or 0) + 1
    version = PolicyVersion(
        id=new_id(), slug=slug, number=number, effective_date=effective_date, summary=summary,
        text=text, text_hash=text_hash(text), requires_acceptance=bool(requires_acceptance),
        published_at=utcnow(), published_by_id=actor.id if actor is not None else None)
    db.session.add(version)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise RuleError(f"Version {number} of this policy was published by someone else a "
                          "moment ago. Check the list of versions and try again.") from None
    record("policy.published", actor=actor, target=("policy_version", version.id))
    db.session.commit()
    return version


def missing_defaults() -> list[str]:
    """Return the slugs of policies with no published version at all."""
    have = set(db.session.scalars(select(PolicyVersion.slug).distinct()))
    return [slug for slug in POLICY_SLUGS if slug not in have]


@dataclass(frozen=True)
class StandardState:
    """Where a policy stands against its standard texts."""

    slug: str
    to_publish: tuple[Standard, ...]  # the standard versions this database lacks, in order
    customized: PolicyVersion | None  # the newest version, when it is not a standard text


def standard_states() -> list[StandardState]:
    """Compare each policy's versions with its standard history (one query per policy)."""
    states = []
    for slug in POLICY_SLUGS:
        standards = STANDARD.get(slug, ())
        versions = versions_of(slug)  # newest first
        if not versions:
            states.append(StandardState(slug, standards, None))
            continue
        hashes = [text_hash(standard.text) for standard in standards]
        published = {v.text_hash for v in versions}
        newest_standard = max((i for i, h in enumerate(hashes) if h in published), default=-1)
        behind = standards[newest_standard + 1:]
        if versions[0].text_hash in hashes:
            states.append(StandardState(slug, behind, None))
        else:  # the practice's own text is newest: never replaced, reported when behind
            states.append(StandardState(slug, (), versions[0] if behind else None))
    return states


def standard_updates() -> list[Standard]:
    """Return the standard versions this database has not published yet, in order."""
    return [standard for state in standard_states() for standard in state.to_publish]


def customized_behind() -> list[PolicyVersion]:
    """Return the newest versions the practice wrote itself (no standard update applies)."""
    return [state.customized for state in standard_states() if state.customized is not None]


def ensure_defaults(actor: User | None = None) -> list[PolicyVersion]:
    """Publish the standard versions a database lacks, in order, effective today (idempotent).

    A fresh database gets version 1 and every later standard version at once (the newest is
    current); one that already has version 1 of the standard text gets version 2, and so
    on. Each carries its summary and acceptance mark (terms and privacy are always asked).
    A policy whose newest version is the practice's own text is never replaced.
    """
    published = []
    for standard in standard_updates():
        try:
            published.append(publish(actor, slug=standard.slug, text=standard.text,
                                     effective_date=practice.today(),
                                     summary=standard.summary,
                                     requires_acceptance=standard.requires_acceptance))
        except RuleError:
            latest = latest_version(standard.slug)
            if latest is None or latest.number < standard.number:  # not a lost race
                raise
    return published


def seed_demo(by_email: dict[str, User]) -> None:
    """Publish the standard texts for `portal seed-demo` (as the demo admin)."""
    admin = next((u for u in by_email.values() if u.role == Role.ADMIN), None)
    ensure_defaults(admin)


# --- acceptance ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Light:
    id: uuid.UUID
    slug: str
    number: int
    requires_acceptance: bool


# The name a client acknowledges receiving, where it differs from the policy's title.
RECEIPT_NAMES = {"privacy": "Notice of Privacy Practices (our Privacy Policy)"}


@dataclass(frozen=True)
class Confirmation:
    """The words of the acceptance page for the versions it asks about, true for each mix.

    A client agrees to the Terms of Service; for the Notice of Privacy Practices, and any
    other policy, they acknowledge that they received it (45 CFR 164.520(c)(2)(ii): "a written
    acknowledgment of receipt of the notice"), which is not agreement.
    """

    asks: str  # "agree to the Terms of Service and confirm that you have received ..."
    statement: str  # the sentence above the buttons
    button: str
    decline: str
    thanks: str


def _joined(names: list[str]) -> str:
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def confirmation(versions: Iterable[PolicyVersion]) -> Confirmation:
    """Word what choosing the button means for these versions (agreement or receipt)."""
    slugs = sorted({v.slug for v in versions}, key=_order)
    agreed = [f"the {title_of(s)}" for s in slugs if s in AGREED]
    received = [f"the {RECEIPT_NAMES.get(s, title_of(s))}" for s in slugs if s not in AGREED]
    received_short = [f"the {title_of(s)}" for s in slugs if s not in AGREED]
    parts, done = [], []
    if agreed:
        parts.append(f"agree to {_joined(agreed)}")
        done.append(f"You agreed to {_joined(agreed)}")
    if received:
        parts.append(f"confirm that you have received {_joined(received)}")
        done.append(("and confirmed" if agreed else "You confirmed")
                    + f" that you received {_joined(received_short)}")
    asks = " and ".join(parts)
    if agreed and received:
        button = "Agree and confirm receipt"
    elif agreed:
        button = "Accept and continue"
    else:
        button = "Acknowledge receipt and continue"
    statement = f"By choosing {button}, you {asks} shown above."
    if received:
        statement += (" Confirming that you received a notice does not mean you agree with it, "
                      "and it does not change your rights.")
    return Confirmation(
        asks=asks, statement=statement, button=button,
        decline="Decline and sign out" if agreed else "Not now, sign me out",
        thanks=" ".join(done) + ".")


def _order(slug: str) -> int:
    return POLICY_SLUGS.index(slug) if slug in POLICY_SLUGS else len(POLICY_SLUGS)


# The acceptance gate runs these on every client page: built once, with typed parameters
# (see README, "Conventions for speed").
_ACCEPTED = (select(PolicyAcceptance.slug, func.max(PolicyAcceptance.number))
             .where(PolicyAcceptance.user_id == bindparam("user_id", type_=Uuid()))
             .group_by(PolicyAcceptance.slug))
_IN_EFFECT = select(PolicyVersion.id, PolicyVersion.slug, PolicyVersion.number,
                    PolicyVersion.requires_acceptance
                    ).where(PolicyVersion.effective_date <= bindparam("on", type_=Date()))


def accepted_numbers(user_id: uuid.UUID) -> dict[str, int]:
    """Return the highest version number of each policy the user has accepted."""
    rows = db.session.execute(_ACCEPTED, {"user_id": user_id})
    return {slug: number for slug, number in rows}


def pending_for(user: User, on: date | None = None) -> list[PolicyVersion]:
    """Return the current versions this user must accept before going on (maybe none)."""
    rows = db.session.execute(_IN_EFFECT, {"on": on or practice.today()})
    current: dict[str, _Light] = {}
    needed: dict[str, int] = {}
    for row in rows:
        light = _Light(*row)
        if light.slug not in current or light.number > current[light.slug].number:
            current[light.slug] = light
        if light.requires_acceptance:
            needed[light.slug] = max(needed.get(light.slug, 0), light.number)
    for slug in ALWAYS_ACCEPT:
        if slug in current:
            needed[slug] = max(needed.get(slug, 0), 1)
    if not needed:
        return []
    accepted = accepted_numbers(user.id)
    ids = [current[slug].id for slug, number in needed.items()
           if accepted.get(slug, 0) < number]
    if not ids:
        return []
    versions = db.session.scalars(select(PolicyVersion).where(PolicyVersion.id.in_(ids)))
    return sorted(versions, key=lambda v: _order(v.slug))


def _insert_ignoring_duplicates(values: dict) -> bool:
    """Insert an acceptance unless the same user already accepted that version."""
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(PolicyAcceptance)
    elif dialect == "sqlite":
        stmt = sqlite.insert(PolicyAcceptance)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"policies: unsupported database {dialect}")
    stmt = (stmt.values(**values)
            .on_conflict_do_nothing(index_elements=["user_id", "version_id"])
            .returning(PolicyAcceptance.id))
    return db.session.execute(stmt).first() is not None


def accept(user: User, version_ids: Iterable[uuid.UUID], *,
           ip: str | None = None) -> list[PolicyVersion]:
    """Record that the user accepted these versions; returns the ones newly accepted.

    Accepting a version twice (a double click, two tabs, a race) leaves one row: the insert
    does nothing on the unique (user, version) pair, and only new rows are audited.
    """
    wanted = set(version_ids)
    if not wanted:
        raise RuleError("There is nothing to accept.")
    versions = list(db.session.scalars(select(PolicyVersion).options(_light())
                                       .where(PolicyVersion.id.in_(wanted))))
    if len(versions) != len(wanted):
        raise RuleError("One of these policies does not exist.")
    on = practice.today()
    if any(v.effective_date > on for v in versions):
        raise RuleError("A version cannot be accepted before it takes effect.")
    # A fixed order, so two concurrent submissions lock rows in the same order.
    versions.sort(key=lambda v: (_order(v.slug), v.number))
    now = utcnow()
    new = []
    for version in versions:
        row_id = new_id()
        sealed_ip = None if not ip else seal(
            user.id, context_for(PolicyAcceptance.ip_sealed, row_id), ip[:64])
        inserted = _insert_ignoring_duplicates({
            "id": row_id, "user_id": user.id, "version_id": version.id,
            "slug": version.slug, "number": version.number, "text_hash": version.text_hash,
            "accepted_at": now, "ip_sealed": sealed_ip})
        if inserted:
            new.append(version)
    for version in new:
        record("policy.accepted", actor=user, target=("policy_version", version.id),
               subject_id=user.id)
    db.session.commit()
    return new


def decline(user: User, version_ids: Iterable[uuid.UUID]) -> None:
    """Record that the user declined these versions (the caller then signs them out)."""
    known = db.session.scalars(select(PolicyVersion.id)
                               .where(PolicyVersion.id.in_(set(version_ids))))
    targets = sorted(known, key=str)
    if not targets:
        record("policy.declined", actor=user, subject_id=user.id)
    for version_id in targets:
        record("policy.declined", actor=user, target=("policy_version", version_id),
               subject_id=user.id)
    db.session.commit()


def acceptances_of(user: User) -> list[PolicyAcceptance]:
    """Return what the user accepted, newest first."""
    return list(db.session.scalars(
        select(PolicyAcceptance).where(PolicyAcceptance.user_id == user.id)
        .order_by(PolicyAcceptance.accepted_at.desc(), PolicyAcceptance.slug)))


def acceptance_counts() -> dict[uuid.UUID, int]:
    """Return how many people accepted each version, by version id (one query)."""
    rows = db.session.execute(select(PolicyAcceptance.version_id, func.count())
                              .group_by(PolicyAcceptance.version_id))
    return {version_id: count for version_id, count in rows}


def accepted_current_counts(current: dict[str, PolicyVersion]) -> dict[str, int]:
    """Return how many active clients accepted the current version (or a later one) per slug."""
    if not current:
        return {}
    rows = db.session.execute(
        select(PolicyAcceptance.slug, func.count(func.distinct(PolicyAcceptance.user_id)))
        .join(User, User.id == PolicyAcceptance.user_id)
        .where(User.active.is_(True), User.role == Role.CLIENT,
               PolicyAcceptance.version_id.in_([v.id for v in current.values()]))
        .group_by(PolicyAcceptance.slug))
    return {slug: count for slug, count in rows}


def active_client_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User)
                             .where(User.role == Role.CLIENT, User.active.is_(True))) or 0


@dataclass(frozen=True)
class AcceptancePage:
    """`rows`: (acceptance, its client, the address it came from, opened, or None)."""

    rows: list[tuple[PolicyAcceptance, User, str | None]]
    total: int
    page: int
    pages: int


def acceptances_for_version(version: PolicyVersion, *, page: int = 1,
                            per_page: int = 100) -> AcceptancePage:
    """Return one page of who accepted a version (with their user rows), newest first."""
    total = db.session.scalar(select(func.count()).select_from(PolicyAcceptance)
                              .where(PolicyAcceptance.version_id == version.id)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = db.session.execute(
        select(PolicyAcceptance, User).join(User, User.id == PolicyAcceptance.user_id)
        .where(PolicyAcceptance.version_id == version.id)
        .order_by(PolicyAcceptance.accepted_at.desc(), PolicyAcceptance.id)
        .limit(per_page).offset((page - 1) * per_page)).all()
    preload_keys({acc.user_id for acc, _ in rows if acc.ip_sealed is not None})
    return AcceptancePage([(acc, user, _opened_ip(acc)) for acc, user in rows],
                          total, page, pages)


def _opened_ip(acceptance: PolicyAcceptance) -> str | None:
    if acceptance.ip_sealed is None:
        return None
    return open_text_safe(acceptance.user_id,
                          context_for(PolicyAcceptance.ip_sealed, acceptance.id),
                          acceptance.ip_sealed)


def publisher_of(version: PolicyVersion) -> User | None:
    if version.published_by_id is None:
        return None
    return db.session.get(User, version.published_by_id)
