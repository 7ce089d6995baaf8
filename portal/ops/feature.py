"""How the health endpoints plug into the app."""

from flask import Flask

from portal.ops import audited, holds  # noqa: F401 (holds: its guards refuse deleting a hold)
from portal.ops.views import bp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    audited.declare_actions()
