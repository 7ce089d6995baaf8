"""How the administrators' screens plug into the app."""

from flask import Flask

from portal import hooks
from portal.admin.views import bp
from portal.hooks import NavItem


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    hooks.navigation.provide(NavItem("People", "admin.users", ("admin",), 40,
                                     sections=("admin.user", "admin.invite",
                                               "guardians.admin_minor",
                                               "guardians.admin_minors_of",
                                               "guardians.admin_unlink")))
    hooks.navigation.provide(NavItem("Audit", "admin.audit", ("admin",), 60, sections=()))
