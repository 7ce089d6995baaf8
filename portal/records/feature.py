"""How the client's own record plugs into the app."""

from flask import Flask

from portal.records import models  # noqa: F401  (the tables, for the metadata)
from portal.records.views import bp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
