"""How the client's own record plugs into the app."""

from flask import Flask

from portal import hooks
from portal.audit.catalogue import declare
from portal.hooks import NavItem, Panel
from portal.records import models  # noqa: F401  (the tables, for the metadata)
from portal.records import requests as record_requests
from portal.records.export import declare_actions as declare_export_actions
from portal.records.export_views import ACCOUNT_SECTION as EXPORT_SECTION  # + its routes
from portal.records.views import ACCOUNT_SECTION, REQUESTS_PANEL, bp

# Requests and disclosures: how the client's access log words them (staff actions only are
# listed there; the client's own request and withdrawal are on their requests page).
REQUEST_ACTIONS = {
    "record_request.made.copy": "Wrote down your request for a copy of your record",
    "record_request.made.amendment": "Wrote down your request for a change to your record",
    "record_request.viewed": "Opened your request about your record",
    "record_request.listed": "Looked at your requests and the disclosures of your record",
    "record_request.extended": "Extended the deadline of your request, with a reason",
    "record_request.fulfilled": "Marked your request about your record as done",
    "record_request.denied": "Declined your request about your record, with a reason",
    "record_request.withdrawn": None,  # the client's own act
    "disclosure.recorded": "Recorded a disclosure of your information made outside the portal",
    "disclosure.voided": "Voided a disclosure that was recorded by mistake",
}
REQUESTS_DASHBOARD_PANEL = Panel(REQUESTS_PANEL, record_requests.dashboard_panel,
                                 stylesheet="css/records_requests.css",
                                 looks=record_requests.panel_looks)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    # --- requests and disclosures
    hooks.navigation.provide(NavItem("Record requests", "records.staff_requests",
                                     ("therapist", "admin"), 45,
                                     sections=("records.staff_requests", "records.client",
                                               "records.request", "records.disclosure"),
                                     badge=record_requests.due_soon_count))
    hooks.account_sections.provide(ACCOUNT_SECTION)
    hooks.dashboard_panels.provide(REQUESTS_DASHBOARD_PANEL)
    hooks.demo_seeders.provide(record_requests.seed_demo)
    for action, words in REQUEST_ACTIONS.items():
        declare(action, words)
    # --- the record export
    hooks.account_sections.provide(EXPORT_SECTION)
    declare_export_actions()
