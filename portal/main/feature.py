"""How the front door plugs into the app."""

from flask import Flask

from portal.main.views import bp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
