"""How minors and their guardians plug into the app."""

from flask import Flask

from portal import hooks
from portal.guardians import (
    links,
    models,  # noqa: F401  (the tables, for the metadata)
)


def init_app(app: Flask) -> None:
    hooks.worker_tasks.provide(hooks.WorkerTask("guardian access at 18",
                                                links.end_links_of_adults))
