"""How Good Faith Estimates plug into the app: pages, the dashboard panel, demo data."""

from flask import Flask

from portal import hooks
from portal.audit.catalogue import declare
from portal.estimates import corrections, demo, looks, panel
from portal.estimates.views import bp
from portal.hooks import NavItem, Panel

DASHBOARD_PANEL = Panel("estimates/_dashboard_panel.html", panel.dashboard_panel,
                        stylesheet="css/estimates.css", looks=looks.panel_looks)

# How the client's access log words what staff did with their estimates.
OPENED = "Opened one of your Good Faith Estimates"
WORKED = "Worked on one of your Good Faith Estimates"
AUDITED = {"estimate.viewed": OPENED, "estimate.downloaded": OPENED,
           **dict.fromkeys(("estimate.draft.created", "estimate.draft.saved",
                            "estimate.draft.discarded", "estimate.issued",
                            "estimate.superseded", "estimate.requested",
                            "estimate.acknowledged", "estimate.bill.recorded",
                            "estimate.bill.voided", "estimate.dispute_eligible"), WORKED)}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    hooks.navigation.provide(NavItem("Estimates", "estimates.client_list", ("client",), 20))
    hooks.navigation.provide(NavItem("Estimates", "estimates.staff_list",
                                     ("therapist", "admin"), 20))
    hooks.dashboard_panels.provide(DASHBOARD_PANEL)
    hooks.demo_seeders.provide(demo.seed)
    for action, words in AUDITED.items():
        declare(action, words)
    corrections.declare_actions()
