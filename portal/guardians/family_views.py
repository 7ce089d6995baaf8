"""What a parent or guardian sees: their family page, and the buttons that share a minor's
Good Faith Estimate with them (for the minor and their therapist).

The family page lists the minors a guardian is linked to today (a link ends on the 18th
birthday, `links.live_links`), by the name each goes by, and says plainly what the guardian
sees, which depends on who consented to treatment (Pennsylvania, Act 147 of 2004). It never
shows anything of a minor's conversations. The guardian's estimates are the estimates
feature's pages (`estimates.client_list`, `estimates.show`), through `estimates.access`.
Every page that shows a guardian something of a minor's puts it on the minor's access log.
"""

import uuid

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from portal.accounts.identity import names_by_id
from portal.accounts.models import User
from portal.audit.catalogue import declare
from portal.audit.looks import clients_listed
from portal.errors import RuleError
from portal.estimates import access
from portal.estimates import guardians as estimate_sharing
from portal.forms import require_button
from portal.guardians import links
from portal.guardians.views import bp
from portal.pages import read_only
from portal.security import role_required

FAMILY_VIEWED = "guardianship.family_viewed"
declare(FAMILY_VIEWED, "Saw your name on their family page in the portal")


def _me() -> User:
    return current_user._get_current_object()


@bp.route("/family")
@role_required("guardian")
@read_only
def family():
    """The minors this guardian is linked to today, and what they can see for each."""
    me = _me()
    rows = links.live_links(me.id)
    names = names_by_id([r.minor_id for r in rows]) if rows else {}
    minors = [{"id": r.minor_id, "name": names.get(r.minor_id, "Your family member"),
               "guardian_consented": links.guardian_consented(r.minor_id),
               "shared": len(links.shared_ids(r, "estimate"))} for r in rows]
    clients_listed(me, [r.minor_id for r in rows], action=FAMILY_VIEWED)
    return render_template("guardians/family.html", minors=minors,
                           messages="messaging.inbox" in current_app.view_functions)


def _share_post(estimate_id: uuid.UUID, link_id: uuid.UUID, *, shared: bool):
    """Share an estimate with one guardian, or stop: the minor or their assigned therapist,
    when the minor consented themselves; anything else is a 404, a bad token a 400."""
    me = _me()
    estimate = access.estimate_for(me, estimate_id)
    row = estimate_sharing.share_link(me, estimate, link_id)
    if row is None:
        abort(404)
    require_button()
    try:
        estimate_sharing.change_share(me, estimate, row, shared=shared)
    except RuleError as error:
        flash(error.message, "info")
    else:
        name = names_by_id([row.guardian_id]).get(row.guardian_id, "Their parent or guardian")
        flash(f"{name} can now see estimate {estimate.number}." if shared else
              f"{name} no longer sees estimate {estimate.number}.", "success")
    return redirect(url_for("estimates.show", estimate_id=estimate.id, _anchor="sharing"))


@bp.route("/family/estimates/<uuid:estimate_id>/share/<uuid:link_id>", methods=["POST"])
@role_required("client", "therapist")
def share_estimate(estimate_id: uuid.UUID, link_id: uuid.UUID):
    """Let one parent or guardian see this issued estimate."""
    return _share_post(estimate_id, link_id, shared=True)


@bp.route("/family/estimates/<uuid:estimate_id>/stop-sharing/<uuid:link_id>",
          methods=["POST"])
@role_required("client", "therapist")
def stop_sharing_estimate(estimate_id: uuid.UUID, link_id: uuid.UUID):
    """Stop showing this estimate to one parent or guardian."""
    return _share_post(estimate_id, link_id, shared=False)
