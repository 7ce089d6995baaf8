"""How the health endpoints plug into the app."""

from flask import Flask

from portal import hooks
from portal.ops import audited, holds  # holds: its guards refuse deleting a hold
from portal.ops.views import bp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    audited.declare_actions()
    hooks.shred_guards.provide(holds.shred_refusal)
