"""The demo conversations seed cleanly (`portal seed-demo`)."""

from sqlalchemy import func, select

from portal import hooks
from portal.cli import seed_demo
from portal.messaging import crisis_state, demo
from portal.messaging.models import Attachment, Message, Thread
from tests.messaging import crisis_support


def test_demo_conversations_seed(app, db, monkeypatch):
    monkeypatch.setattr(hooks.demo_seeders, "_entries", [demo.seed])  # only this feature's
    seed_demo()
    assert db.session.scalar(select(func.count()).select_from(Thread)) == len(
        demo.CONVERSATIONS)
    assert db.session.scalar(select(func.count()).select_from(Message)) == sum(
        len(messages) for *_, messages, _ in demo.CONVERSATIONS)
    assert db.session.scalar(select(func.count()).select_from(Attachment)) == 1
    threads = list(db.session.scalars(select(Thread)))
    flagged = [t for t in threads if crisis_state.state_of(t).flagged]
    assert len(flagged) == 1
    # The flag's time is the flagged message's, spread into the past like the others.
    [message] = [m for m in db.session.scalars(select(Message).where(
        Message.thread_id == flagged[0].id)) if crisis_support.flagged(m.id)]
    assert crisis_state.state_of(flagged[0]).flagged_at == message.created_at


def test_seed_demo_prints_the_sign_ins_once_whether_or_not_it_seeded(app, db, monkeypatch):
    monkeypatch.setattr(hooks.demo_seeders, "_entries", [])
    runner = app.test_cli_runner()
    first = runner.invoke(args=["portal", "seed-demo"])
    again = runner.invoke(args=["portal", "seed-demo"])
    assert first.exit_code == again.exit_code == 0
    assert first.output.count("Demo sign-ins") == again.output.count("Demo sign-ins") == 1
    assert "nothing seeded" in again.output
    assert "quiet harbor lantern morning" in again.output
