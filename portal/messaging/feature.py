"""How messaging plugs into the app: its pages, the unread badges, its Account section."""

from flask import Flask

from portal import hooks
from portal.hooks import NavItem
from portal.messaging import (
    audited,
    care,
    crisis_state,
    demo,
    draft_views,  # noqa: F401  (its routes join `bp` on import)
    drafts,
    escalation,
)
from portal.messaging.views import SETTINGS_SECTION, bp, unread_badge


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    hooks.navigation.provide(NavItem("Home", "messaging.dashboard", ("therapist",), 10,
                                     badge=unread_badge))
    hooks.navigation.provide(NavItem("Messages", "messaging.inbox", ("client", "guardian"), 10,
                                     badge=unread_badge))
    hooks.account_sections.provide(SETTINGS_SECTION)
    hooks.demo_seeders.provide(demo.seed)
    hooks.care_checks.provide(care.refuse_orphans)
    hooks.worker_tasks.provide(hooks.WorkerTask("crisis escalation", escalation.scheduled))
    hooks.key_event.provide(_forget_shredded_states)
    hooks.worker_tasks.provide(hooks.WorkerTask("draft purge", drafts.purge_old))
    audited.declare_actions()


def _forget_shredded_states(action: str, *, target=None, **_details) -> None:
    """A shredded owner's opened crisis states leave this process's memory at once."""
    if action == "crypto.shred" and target is not None:
        crisis_state.forget_owner(target)
