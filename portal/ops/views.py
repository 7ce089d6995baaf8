"""Health endpoints for load balancers and orchestrators: no sign-in, no PHI."""

from flask import Blueprint, jsonify

from portal.ops import health
from portal.pages import public, read_only

bp = Blueprint("ops", __name__)


@bp.route("/healthz")
@public
@read_only
def healthz():
    """Say the process is alive (touches nothing else)."""
    return jsonify(status="ok")


@bp.route("/readyz")
@public
@read_only
def readyz():
    """Say whether this instance can serve: database, migrations at head, keys open."""
    checks = health.readiness()
    ready = all(c["ok"] for c in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    if not ready:
        body["failing"] = [name for name, c in checks.items() if not c["ok"]]
    return jsonify(body), 200 if ready else 503
