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
    links,
    models,  # noqa: F401  (the tables, for the metadata)
    status,  # noqa: F401  (template globals for other features' staff pages)
)
from portal.guardians.views import bp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    hooks.worker_tasks.provide(hooks.WorkerTask("guardian access at 18",
                                                links.end_links_of_adults))
    audited.declare_actions()
    hooks.demo_seeders.provide(demo.seed_demo)
