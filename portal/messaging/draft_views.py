"""Draft routes on the messaging blueprint: static/js/drafts.js saves what is typed into a
form (`data-draft-url`) while the person types, and the "Discard draft" button throws it away.

The CSRF token comes in the X-CSRFToken header (a fetch) or in the body (a beacon as the page
is left, or the discard button's form); CSRFProtect refuses a missing or wrong one with 400.
"""

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user

from portal.messaging import drafts
from portal.messaging.views import bp

_NOT_FIELDS = frozenset({"csrf_token", "action"})


def _me():
    return current_user._get_current_object()


@bp.route("/drafts/<form_key>", methods=["POST"])
def save_draft(form_key: str):
    """Save the fields of a form being typed (204); 404 for a form the person may not use."""
    fields = {name: value for name, value in request.form.to_dict(flat=True).items()
              if name not in _NOT_FIELDS}
    try:
        drafts.save(_me(), form_key, fields)
    except drafts.DraftTooLarge:
        abort(413)
    return ("", 204)


@bp.route("/drafts/<form_key>/discard", methods=["POST"])
def discard_draft(form_key: str):
    """Throw a draft away, then show its form again, empty (a script gets 204)."""
    kind, object_id = drafts.parse_key(form_key)
    drafts.discard(_me(), form_key)
    if request.headers.get("X-Requested-With") == "fetch":
        return ("", 204)
    flash("The draft was discarded.", "success")
    if kind == drafts.REPLY:
        return redirect(url_for("messaging.thread", thread_id=object_id, _anchor="reply-h"))
    if kind == drafts.ESTIMATE:
        return redirect(url_for("estimates.edit", estimate_id=object_id))
    return redirect(url_for("messaging.compose"))
