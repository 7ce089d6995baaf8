"""gunicorn settings for production: `gunicorn wsgi:app` picks this file up."""

import multiprocessing
import os

bind = os.environ.get("PORTAL_BIND", "127.0.0.1:8000")
# Workers: the usual 2 x cores + 1, capped so a small VM does not run out of memory.
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 9)))
threads = int(os.environ.get("PORTAL_THREADS", "1"))
timeout = 30  # a request taking longer is stuck; the worker is replaced
graceful_timeout = 20
keepalive = 5
max_requests = 2000  # recycle workers now and then
max_requests_jitter = 200
limit_request_line = 8190
# The app writes one JSON line per request (route template, status, duration, request id)
# and never the raw path; gunicorn's own access log would print paths with tokens in them.
accesslog = None
errorlog = "-"
loglevel = "info"
# Behind a TLS-terminating proxy on the same host, trust its X-Forwarded-* headers; set
# FORWARDED_ALLOW_IPS to the proxy's address otherwise, and PROXY_FIX_HOPS=1 for the app.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
raw_env = ["PORTAL_ENV=" + os.environ.get("PORTAL_ENV", "production")]
