"""How Good Faith Estimates plug into the app: pages, the dashboard panel, demo data."""

from flask import Flask

from portal import hooks
from portal.estimates import demo, service
from portal.estimates.views import bp
from portal.hooks import NavItem

DASHBOARD_PANEL = ("estimates/_dashboard_panel.html", service.dashboard_panel)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    hooks.navigation.provide(NavItem("Estimates", "estimates.client_list", ("client",), 20))
    hooks.navigation.provide(NavItem("Estimates", "estimates.staff_list",
                                     ("therapist", "admin"), 20))
    hooks.dashboard_panels.provide(DASHBOARD_PANEL)
    hooks.demo_seeders.provide(demo.seed)
