"""Policy pages: public texts and versions, the acceptance page, and the admin screens."""

import re
import uuid

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from markupsafe import Markup

from portal import practice
from portal.accounts import service as accounts_service
from portal.accounts import sessions
from portal.accounts.identity import names_of
from portal.errors import RuleError
from portal.forms import INVALID, EmptyForm, refuse, require_button
from portal.pages import allowed_before_consent, cacheable, public, read_only
from portal.paging import page_number
from portal.policies import service
from portal.policies.forms import AcceptForm, PublishForm, join_ids
from portal.policies.models import SUMMARY_MAX, TEXT_MAX, PolicyVersion
from portal.policies.rendering import load_default, text_hash
from portal.security import role_required, safe_next

bp = Blueprint("policies", __name__)

SETTINGS_SECTION = "policies/_settings_section.html"
_LEADING_H1 = re.compile(r"\A\s*<h1[^>]*>(.*?)</h1>\s*", re.DOTALL)


@bp.app_template_global("policy_acceptances")
def policy_acceptances(user) -> list[dict]:
    """Return what a user accepted, newest first, for the account page."""
    return [{"title": service.title_of(row.slug) if service.is_known(row.slug) else row.slug,
             "slug": row.slug, "number": row.number, "accepted_at": row.accepted_at}
            for row in service.acceptances_of(user)]


@bp.app_template_filter("policy_title")
def policy_title(slug: str) -> str:
    return service.title_of(slug) if service.is_known(slug) else slug


@bp.app_template_filter("policy_agreed")
def policy_agreed(slug: str) -> bool:
    """True when a client agrees to this policy; for the others they acknowledge receipt."""
    return slug in service.AGREED


# --- helpers ----------------------------------------------------------------------------

def _document(text: str) -> tuple[Markup | None, Markup]:
    """Render a text and split off its leading heading, so facts can sit under the title."""
    html = service.rendered(text)
    match = _LEADING_H1.match(html)
    if match is None:
        return None, _sanitized(html)
    return _sanitized(match.group(1)), _sanitized(html[match.end():])


def _sanitized(html: str) -> Markup:
    """Mark render_markdown's output safe for templates: nh3 already removed anything unsafe."""
    # render_markdown cleans with an allow-list (nh3), so this is not untrusted HTML.
    return Markup(html)  # noqa: S704  # nosec B704


def _absolute(path: str) -> str:
    return current_app.config["PORTAL_BASE_URL"].rstrip("/") + path


def _known_or_404(slug: str) -> None:
    if not service.is_known(slug):
        abort(404)


def _split(versions: list[PolicyVersion], on) -> tuple[PolicyVersion | None,
                                                         list[PolicyVersion]]:
    """From newest-first versions, return the current one and the upcoming ones (soonest first)."""
    current = next((v for v in versions if v.effective_date <= on), None)
    upcoming = sorted((v for v in versions if v.effective_date > on), key=lambda v: v.number)
    return current, upcoming


def _policy_page(slug: str, version: PolicyVersion | None, versions: list[PolicyVersion]):
    on = practice.today()
    current, upcoming = _split(versions, on)
    if version is None:
        heading, body = _document(load_default(slug))
        status = "unpublished"
    else:
        heading, body = _document(version.text)
        status = service.status_of(version, current, on)
    canonical = _absolute(url_for("policies.show", slug=slug)) \
        if version is None or status == "current" else None
    return render_template(
        "policies/show.html", slug=slug, title=service.title_of(slug), version=version,
        status=status, current=current, upcoming=upcoming[0] if upcoming else None,
        versions=versions, heading=heading, body=body, canonical=canonical, on=on)


# --- public pages -------------------------------------------------------------------------

@bp.route("/policies")
@public
@cacheable
@read_only
def index():
    """List the practice's policies with their current versions."""
    on = practice.today()
    entries = []
    for slug, versions in service.all_versions().items():
        if not service.is_known(slug):
            continue
        current, upcoming = _split(versions, on)
        entries.append({"slug": slug, "title": service.title_of(slug),
                        "description": service.DESCRIPTIONS.get(slug, ""),
                        "current": current, "upcoming": upcoming[0] if upcoming else None})
    return render_template("policies/index.html", entries=entries)


@bp.route("/policies/<slug>")
@public
@cacheable
@read_only
def show(slug: str):
    """Show the version of a policy in effect today."""
    _known_or_404(slug)
    versions = service.versions_of(slug)
    current, _ = _split(versions, practice.today())
    return _policy_page(slug, current, versions)


@bp.route("/policies/<slug>/v/<int(min=1, max=1000000):number>")
@public
@cacheable
@read_only
def version(slug: str, number: int):
    """Show one version of a policy, current, older or upcoming."""
    _known_or_404(slug)
    found = service.get_version(slug, number)
    if found is None:
        abort(404)
    return _policy_page(slug, found, service.versions_of(slug))


@bp.route("/sitemap.xml")
@public
@cacheable
@read_only
def sitemap():
    """List the public policy pages for search engines, with absolute URLs."""
    current = service.current_versions()
    dates = [v.effective_date for v in current.values()]
    urls = [(_absolute(url_for("policies.index")), max(dates) if dates else None)]
    for slug in service.POLICY_SLUGS:
        version = current.get(slug)
        urls.append((_absolute(url_for("policies.show", slug=slug)),
                     version.effective_date if version else None))
    response = make_response(render_template("policies/sitemap.xml", urls=urls))
    response.mimetype = "application/xml"
    return response


@bp.route("/robots.txt")
@public
@cacheable
@read_only
def robots():
    """Let search engines read the policy pages and nothing else."""
    lines = [
        "User-agent: *",
        f"Allow: {url_for('policies.index')}",
        f"Disallow: {url_for('policies.accept')}",
        f"Allow: {url_for('policies.sitemap')}",
        f"Allow: {url_for('static', filename='css/')}",
        "Disallow: /",
        "",
        f"Sitemap: {_absolute(url_for('policies.sitemap'))}",
        "",
    ]
    response = make_response("\n".join(lines))
    response.mimetype = "text/plain"
    return response


# --- accepting ----------------------------------------------------------------------------

@bp.route("/policies/accept", methods=["GET", "POST"])
@allowed_before_consent
def accept():
    """Ask a client to accept new or changed policies before going on.

    Shown again after a POST, the page is `INVALID` only when the answer was refused; when
    the policies changed meanwhile it simply shows the new ones.
    """
    user = current_user._get_current_object()
    form = AcceptForm()
    next_url = safe_next(form.next.data if request.method == "POST"
                         else request.args.get("next"))
    onward = next_url or url_for("main.home")
    pending = service.pending_for(user)
    if form.validate_on_submit():
        if form.decision.data == "decline":
            return _decline(user, form.version_ids or [v.id for v in pending])
        if not pending:
            return redirect(onward)  # a second click: already accepted
        if set(form.version_ids) != {v.id for v in pending}:
            flash("Something changed while you were reading. Please look over the policies "
                  "below again.", "info")
        else:
            try:
                service.accept(user, form.version_ids, ip=request.remote_addr)
            except RuleError as error:
                refuse(form, error)
            else:
                flash(f"Thank you. {service.confirmation(pending).thanks}", "success")
                return redirect(onward)
    elif request.method == "POST" and form.decision.errors:
        form.form_errors.append(form.decision.errors[0])
    if not pending:
        return redirect(onward)
    accepted = service.accepted_numbers(user.id)
    items = []
    for version in pending:
        _heading, body = _document(version.text)
        items.append({"version": version, "title": service.title_of(version.slug),
                      "description": service.DESCRIPTIONS.get(version.slug, ""),
                      "previous": accepted.get(version.slug), "body": body})
    form.versions.data = join_ids(v.id for v in pending)
    form.next.data = next_url or ""
    updating = any(item["previous"] for item in items)
    # No main navigation here: every item would only lead back to this page.
    return render_template("policies/accept.html", form=form, items=items, updating=updating,
                           words=service.confirmation(pending),
                           nav_links=[]), INVALID if form.errors else 200


def _decline(user, version_ids: list[uuid.UUID]):
    """Record the refusal, sign the client out and show how to reach the practice."""
    service.decline(user, version_ids)
    accounts_service.sign_out_this_browser(user)
    return sessions.forget_site_data(make_response(render_template("policies/declined.html")))


# --- admin --------------------------------------------------------------------------------

@bp.route("/admin/policies")
@role_required("admin")
def admin_index():
    """List every policy's versions with how many clients accepted each."""
    on = practice.today()
    by_slug = service.all_versions()
    policies = []
    current_by_slug = {}
    for slug, versions in by_slug.items():
        if not service.is_known(slug):
            continue
        current, upcoming = _split(versions, on)
        if current is not None:
            current_by_slug[slug] = current
        gated = slug in service.ALWAYS_ACCEPT or any(
            v.requires_acceptance and v.effective_date <= on for v in versions)
        policies.append({
            "slug": slug, "title": service.title_of(slug), "versions": versions,
            "current": current, "upcoming": upcoming, "gated": gated,
            "statuses": {v.id: service.status_of(v, current, on) for v in versions}})
    return render_template(
        "policies/admin_index.html", policies=policies, counts=service.acceptance_counts(),
        accepted_current=service.accepted_current_counts(current_by_slug),
        clients=service.active_client_count(), missing=service.missing_defaults(),
        updates=[u for u in service.standard_updates() if u.number > 1],
        customized=service.customized_behind(), form=EmptyForm())


@bp.route("/admin/policies/standard-texts", methods=["POST"])
@role_required("admin")
def admin_init():
    """Publish the standard versions the database lacks (version 1, then each update)."""
    require_button()
    published = service.ensure_defaults(current_user._get_current_object())
    if published:
        titles = ", ".join(f"{service.title_of(v.slug)} version {v.number}" for v in published)
        flash(f"Published the standard texts: {titles}.", "success")
    else:
        flash("Every policy already has the standard versions.", "info")
    return redirect(url_for("policies.admin_index"))


def _preview_digest(text: str, summary: str, effective_date, requires: bool) -> str:
    """Fingerprint everything the preview showed, so what is published is what was seen."""
    return text_hash("\n".join([text_hash(text), summary, effective_date.isoformat(),
                                "1" if requires else "0"]))


@bp.route("/admin/policies/<slug>/publish", methods=["GET", "POST"])
@role_required("admin")
def admin_publish(slug: str):
    """Write a new version, preview it as clients will see it, then publish it.

    A preview is a POST that succeeded (200); only a refused version is `INVALID`.
    """
    _known_or_404(slug)
    latest = service.latest_version(slug)
    form = PublishForm()
    preview = None
    if request.method == "GET":
        form.text.data = latest.text if latest else load_default(slug)
        form.effective_date.data = practice.today()
    elif form.validate_on_submit():
        requires = bool(form.requires_acceptance.data)
        try:
            text, summary, effective = service.check_new_version(
                slug, text=form.text.data, effective_date=form.effective_date.data,
                summary=form.summary.data)
        except RuleError as error:
            refuse(form, error)
        else:
            digest = _preview_digest(text, summary, effective, requires)
            wants_publish = request.form.get("action") == "publish"
            if wants_publish and form.preview_hash.data == digest:
                try:
                    published = service.publish(
                        current_user._get_current_object(), slug=slug, text=text,
                        effective_date=effective, summary=summary,
                        requires_acceptance=requires)
                except RuleError as error:
                    refuse(form, error)
                else:
                    flash(f"Published {service.title_of(slug)} version {published.number}. "
                          "It can no longer be changed.", "success")
                    return redirect(url_for("policies.admin_version", slug=slug,
                                            number=published.number))
            else:
                if wants_publish:
                    flash("Something changed after the preview. Check the new preview below, "
                          "then publish.", "info")
                heading, body = _document(text)
                preview = {"heading": heading, "body": body, "summary": summary,
                           "effective_date": effective, "requires": requires,
                           "hash": text_hash(text)}
                form.preview_hash.data = digest
    if preview is None:
        form.preview_hash.data = ""
    return render_template(
        "policies/admin_publish.html", form=form, slug=slug, title=service.title_of(slug),
        latest=latest, number=(latest.number + 1) if latest else 1, preview=preview,
        text_max=TEXT_MAX, summary_max=SUMMARY_MAX), INVALID if form.errors else 200


@bp.route("/admin/policies/<slug>/v/<int(min=1, max=1000000):number>")
@role_required("admin")
def admin_version(slug: str, number: int):
    """Show a published version, its fingerprint, and who accepted it."""
    _known_or_404(slug)
    found = service.get_version(slug, number)
    if found is None:
        abort(404)
    page = service.acceptances_for_version(found, page=page_number())
    users = [user for _, user, _ in page.rows]
    publisher = service.publisher_of(found)
    names = names_of(users + ([publisher] if publisher else []))
    current = service.current_version(slug)
    heading, body = _document(found.text)

    def page_url(n: int) -> str | None:
        return url_for("policies.admin_version", slug=slug, number=number, page=n) \
            if 1 <= n <= page.pages and n != page.page else None

    return render_template(
        "policies/admin_version.html", slug=slug, title=service.title_of(slug),
        version=found, status=service.status_of(found, current), publisher=publisher,
        names=names, page=page, heading=heading, body=body,
        prev_url=page_url(page.page - 1), next_url=page_url(page.page + 1))
