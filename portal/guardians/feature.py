"""How minors and their guardians plug into the app.

One blueprint (`portal.guardians.views.bp`); modules that add pages to it import it and are
imported here, so their routes exist before it is registered.
"""

from flask import Flask

from portal import hooks
from portal.guardians import (
    admin,  # noqa: F401  (the administrator's pages)
    audited,
    demo,
    family_views,  # noqa: F401  (what a parent or guardian sees: the family page, sharing)
    links,
    models,  # noqa: F401  (the tables, for the metadata)
    status,  # noqa: F401  (template globals for other features' staff pages)
)
from portal.guardians.views import bp
from portal.hooks import NavItem


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    hooks.navigation.provide(NavItem("Family", "guardians.family", ("guardian",), 10,
                                     sections=()))
    hooks.navigation.provide(NavItem("Estimates", "estimates.client_list", ("guardian",), 20))
    hooks.worker_tasks.provide(hooks.WorkerTask("guardian access at 18",
                                                links.end_links_of_adults))
    audited.declare_actions()
    hooks.demo_seeders.provide(demo.seed_demo)
