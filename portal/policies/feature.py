"""How the policies plug into the app: pages, the acceptance gate, the footer links."""

from flask import Flask

from portal import hooks
from portal.hooks import FooterLink, NavItem
from portal.policies import gate, service
from portal.policies.views import SETTINGS_SECTION, bp

FOOTER = (("Terms of Service", "terms"), ("Privacy Policy", "privacy"),
          ("Good Faith Estimate Notice", "good-faith-estimate"),
          ("Accessibility", "accessibility"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    hooks.sign_in_gates.provide(gate.GATE)
    hooks.navigation.provide(NavItem("Policies", "policies.admin_index", ("admin",), 50))
    for order, (label, slug) in enumerate(FOOTER):
        hooks.footer_links.provide(FooterLink(label, "policies.show", order,
                                              (("slug", slug),)))
    hooks.account_sections.provide(SETTINGS_SECTION)
    hooks.demo_seeders.provide(service.seed_demo)
