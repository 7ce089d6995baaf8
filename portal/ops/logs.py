"""One JSON object per request line, with a request id; never a path, query or body.

The route logged is the URL rule (`/invitation/<token>`), not the requested path, so tokens,
ids and query strings never reach a log line.
"""

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime

from flask import Flask, g, request
from flask_login import current_user

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_TOKEN_PATH = re.compile(r"/(invitation|reset|email-change)/[^\s/?\"]+")
log = logging.getLogger("portal.request")


class JsonFormatter(logging.Formatter):
    """Format records as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__  # the type only, never the text
        return json.dumps(entry, default=str)


class RedactTokens(logging.Filter):
    """Hide link tokens (invitation, reset, email change) in other loggers' lines (the dev
    server logs paths)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.args:
            try:
                text = record.msg % record.args
            except (TypeError, ValueError):
                return True
            record.msg, record.args = _TOKEN_PATH.sub(r"/\1/[redacted]", text), None
        elif isinstance(record.msg, str):
            record.msg = _TOKEN_PATH.sub(r"/\1/[redacted]", record.msg)
        return True


def init_app(app: Flask) -> None:
    logging.getLogger("werkzeug").addFilter(RedactTokens())
    if app.config.get("LOG_JSON"):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        for name in ("portal", "gunicorn.error"):
            logger = logging.getLogger(name)
            logger.handlers[:] = [handler]
            logger.setLevel(logging.INFO)
            logger.propagate = False
    app.before_request(_start)
    app.after_request(_finish)


def _start() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
    g.request_started = time.perf_counter()


def _finish(response):
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers["X-Request-ID"] = request_id
    started = g.get("request_started")
    duration = (time.perf_counter() - started) * 1000 if started else None
    user_id = None
    try:
        if current_user and current_user.is_authenticated:
            user_id = str(current_user.id)
    except Exception:  # logging must never break a response
        user_id = None
    log.info("request", extra={"fields": {
        "request_id": request_id,
        "user_id": user_id,
        "method": request.method,
        "route": request.url_rule.rule if request.url_rule else None,
        "endpoint": request.endpoint,
        "status": response.status_code,
        "duration_ms": round(duration, 2) if duration is not None else None,
    }})
    return response
