"""What staff see of a client's Good Faith Estimates goes on the client's access log, through
`portal.audit.looks` (one helper for every page), in the words declared here.

Minimum necessary (45 CFR 164.502(b), 164.514(d)): an administrator is not in the client's
care, so an estimate's clinical fields (its diagnosis codes) are shown to them only for a
reason chosen from a short fixed list, which the action's name records
(`estimate.clinical_viewed.billing`); without one they see the estimate with the codes
withheld. A therapist assigned to the client sees the codes as always.
"""

import uuid
from dataclasses import replace

from flask import request
from sqlalchemy import select

from portal.accounts.models import Role, User
from portal.audit.catalogue import declare, name_targets
from portal.audit.looks import CLIENT_LISTED, Look, record_looks
from portal.estimates.models import TABLE, GoodFaithEstimate
from portal.extensions import db

# The reasons an administrator may give for seeing diagnosis codes: key -> the button's words
# and how the client's log says it. Keys go into action names: lower case, no spaces.
REASONS = {
    "billing": ("For billing", "for billing"),
    "client_request": ("Because the client asked", "because you asked the practice to"),
    "compliance_review": ("For a compliance review", "for a compliance review"),
}
HIDDEN = "Not shown"

OPENED = "estimate.opened"  # an issued (or superseded) estimate, without the codes for admins
DRAFT_OPENED = "estimate.draft.opened"  # a draft, on the review page or in the builder
LISTED = "estimate.listed"  # a client's estimates in the practice's list of estimates
PANEL_LISTED = "estimate.panel_listed"  # named in the estimates panel of the dashboard
CLINICAL = "estimate.clinical_viewed"  # + "." + reason: an admin saw the diagnosis codes
DOWNLOADED_FOR = "estimate.downloaded"  # + "." + reason: an admin downloaded the PDF

declare(OPENED, "Opened {target}")
declare(DRAFT_OPENED, "Opened {target}")
declare(LISTED, "Saw your name and your estimates in the practice's list of Good Faith "
                "Estimates")
declare(PANEL_LISTED, "Saw your name and your estimates' deadlines on their dashboard")
for _key, (_label, _words) in REASONS.items():
    declare(f"{CLINICAL}.{_key}", "Looked at the diagnosis codes on {target}, " + _words)
    declare(f"{DOWNLOADED_FOR}.{_key}",
            "Downloaded {target}, with its diagnosis codes, " + _words)


def _estimate_names(client_id: uuid.UUID, ids: dict[str, list[uuid.UUID]]) -> dict[str, str]:
    """"your Good Faith Estimate GFE-…" (or "a draft of your Good Faith Estimate") by id,
    for this client's estimates only."""
    rows = db.session.execute(
        select(GoodFaithEstimate.id, GoodFaithEstimate.number)
        .where(GoodFaithEstimate.client_id == client_id,
               GoodFaithEstimate.id.in_(ids.get(TABLE, []))))
    return {str(estimate_id): (f"your Good Faith Estimate {number}" if number
                               else "a draft of your Good Faith Estimate")
            for estimate_id, number in rows}


name_targets((TABLE,), _estimate_names, otherwise="one of your Good Faith Estimates")


# ------------------------------------------------------------------------- the admin's reason

def needs_reason(viewer: User) -> bool:
    """Whether this viewer sees diagnosis codes only for a stated reason (administrators)."""
    return viewer.role == Role.ADMIN


def reason_given(viewer: User) -> str | None:
    """The reason key in `?reason=`, if this viewer needs one and gave a known one (an unknown
    reason is no reason: the page is shown without the codes, never an error)."""
    if not needs_reason(viewer):
        return None
    reason = request.args.get("reason", "")
    return reason if reason in REASONS else None


def shows_codes(viewer: User) -> bool:
    return not needs_reason(viewer) or reason_given(viewer) is not None


def without_codes(document):
    """The estimate's document with every diagnosis code withheld (the rest unchanged)."""
    if document is None:
        return None
    return replace(document, line_items=tuple(replace(item, diagnosis_codes=HIDDEN)
                                              for item in document.line_items))


def without_code_problems(summary: list[tuple]) -> list[tuple]:
    """The review's (problem, message, field id) list with any message about a line's
    diagnosis codes worded without them (a message may quote a code that is not valid)."""
    return [(problem, "A line's diagnosis codes need attention (not shown: choose a reason "
                      "to see them)." if problem.field.endswith(".diagnosis_codes")
             else message, target) for problem, message, target in summary]


def reason_choices() -> list[tuple[str, str]]:
    """(key, button words) for the page's reason links."""
    return [(key, label) for key, (label, _) in REASONS.items()]


# ---------------------------------------------------------------------------------- the looks

def opened(viewer: User, estimate: GoodFaithEstimate) -> int:
    """One estimate's page (issued, superseded or a draft) seen by a member of staff: with
    the codes when they may see them (an admin's reason in the action), without otherwise."""
    reason = reason_given(viewer)
    if reason is not None:
        action = f"{CLINICAL}.{reason}"
    else:
        action = DRAFT_OPENED if estimate.is_draft else OPENED
    return record_looks(viewer, [Look(action, (TABLE, estimate.id), estimate.client_id)])


def download_action(viewer: User) -> str | None:
    """The audited action for a PDF download by this viewer, None when an admin has not given
    a reason (the frozen PDF carries the diagnosis codes, so the same rule applies)."""
    if not needs_reason(viewer):
        return "estimate.downloaded"
    reason = reason_given(viewer)
    return f"{DOWNLOADED_FOR}.{reason}" if reason else None


def downloaded(viewer: User, estimate: GoodFaithEstimate, action: str) -> int:
    """An administrator's PDF download, with the reason they gave in `action`."""
    return record_looks(viewer, [Look(action, (TABLE, estimate.id), estimate.client_id)])


def panel_estimates(shown: dict) -> list[GoodFaithEstimate]:
    """The estimates the estimates panel (`panel.dashboard_panel`) names clients for."""
    found = shown.get("estimates_panel") or {}
    return [e for key in ("overdue", "due_today", "renewals", "flagged")
            for e in found.get(key, ())]


def panel_looks(shown: dict) -> list[Look]:
    """The clients the estimates panel names (its `names`), for the dashboard's looks."""
    names = (shown.get("estimates_panel") or {}).get("names") or {}
    return [Look(PANEL_LISTED, None, client_id) for client_id in names]


def listed(viewer: User, estimates, clients=()) -> int:
    """The practice's list of estimates: one event per client shown, in one transaction. A
    client with estimates in the list is `estimate.listed`; a client named only in a chooser
    is `client.listed`."""
    with_estimates = {e.client_id for e in estimates}
    looks = [Look(LISTED, None, client_id) for client_id in dict.fromkeys(
        e.client_id for e in estimates)]
    looks += [Look(CLIENT_LISTED, None, c.id) for c in clients if c.id not in with_estimates]
    return record_looks(viewer, looks)
