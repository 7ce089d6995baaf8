"""The per-source sign-in rules compare keyed digests of the source, not addresses (issue 17):
one account's attempts from one address share a digest, another account's from the same
address do not, and nobody holding only the database can compute one."""

import hashlib
import hmac
from datetime import timedelta

import time_machine
from sqlalchemy import select

from portal.accounts import service
from portal.accounts.models import SignInAttempt
from portal.crypto.envelope import crypto_state
from portal.db import utcnow
from portal.extensions import db

from .support import fresh, make_user, outbox

WRONG = "definitely not the password"
FIRST, SECOND = "198.51.100.41", "198.51.100.42"


def _guesses(app, person, count: int, ip: str) -> None:
    for _ in range(count):
        with app.test_request_context("/sign-in", method="POST",
                                      environ_base={"REMOTE_ADDR": ip}):
            service.authenticate(person.email, WRONG)


def _digests(person) -> list[bytes]:
    found = list(db.session.scalars(select(SignInAttempt.source_digest)
                                    .where(SignInAttempt.user_id == person.id)
                                    .order_by(SignInAttempt.at)))
    db.session.commit()
    return found


def test_a_source_is_a_keyed_digest_of_account_and_address(app):
    person, other = make_user(), make_user()
    _guesses(app, person, 2, FIRST)
    _guesses(app, person, 1, SECOND)
    _guesses(app, other, 1, FIRST)
    mine = _digests(person)
    assert mine[0] == mine[1] != mine[2]
    assert _digests(other)[0] != mine[0]  # the same address for another account
    key = crypto_state().subkey("signin-source")
    assert mine[0] == hmac.new(key, person.id.bytes + FIRST.encode(), hashlib.sha256).digest()
    # What someone with the database but not PORTAL_INDEX_KEY could try does not match.
    assert mine[0] != hashlib.sha256(person.id.bytes + FIRST.encode()).digest()
    assert mine[0] != hmac.new(crypto_state().index_subkey, person.id.bytes + FIRST.encode(),
                               hashlib.sha256).digest()
    for digest in mine:
        assert FIRST.encode() not in digest and SECOND.encode() not in digest


def _paced(app, person, count: int, ip: str, start) -> None:
    """`count` wrong passwords from one address, waiting out each pause."""
    for round_ in range(count // 10):
        with time_machine.travel(start + timedelta(minutes=16 * (round_ + 1)), tick=False):
            _guesses(app, person, 10, ip)


def test_the_ceiling_needs_two_distinct_digests(app):
    start = utcnow()
    alone, shared = make_user(), make_user()
    _paced(app, alone, 100, FIRST, start)
    assert len(set(_digests(alone))) == 1
    assert fresh(alone.user).failed_signins == 100 and not fresh(alone.user).password_disabled
    _paced(app, shared, 90, FIRST, start)
    with time_machine.travel(start + timedelta(minutes=16 * 10), tick=False):
        _guesses(app, shared, 9, FIRST)
        _guesses(app, shared, 1, SECOND)  # the 100th, from a second source
    assert len(set(_digests(shared))) == 2
    assert fresh(shared.user).password_disabled
    assert len(outbox("password_disabled", shared.user)) == 1


def test_a_source_at_the_ceiling_is_refused_by_its_digest(app):
    """The source that made 100 guesses is refused even with the right password; the check
    finds its guesses by digest, so another address for the same account is not held back."""
    start = utcnow()
    person = make_user()
    _paced(app, person, 100, FIRST, start)
    later = start + timedelta(days=1)
    with time_machine.travel(later, tick=False), app.test_request_context(
            "/sign-in", method="POST", environ_base={"REMOTE_ADDR": FIRST}):
        assert service.authenticate(person.email, person.password).status == "failed"
    # A second later: attempts are listed newest first, and ids (UUIDs) do not break a tie.
    with time_machine.travel(later + timedelta(seconds=1), tick=False), \
            app.test_request_context("/sign-in", method="POST",
                                     environ_base={"REMOTE_ADDR": SECOND}):
        assert service.authenticate(person.email, person.password).status == "ok"
    outcomes = [a.outcome for a in service.recent_attempts(person.user, limit=2)]
    assert outcomes == ["success", "refused"]
